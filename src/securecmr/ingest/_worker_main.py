"""Entry point of an encoding worker process: ``python -m securecmr.ingest._worker_main``.

Speaks the length-prefixed JSON protocol of :func:`securecmr.ingest._worker.serve` on stdin/stdout.
"""

from __future__ import annotations

import sys

from ._worker import serve


def main() -> int:
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the protocol stream
    return serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    raise SystemExit(main())

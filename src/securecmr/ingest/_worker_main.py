"""Entry point of an encoding worker process: ``python -m securecmr.ingest._worker_main``.

Speaks the length-prefixed JSON protocol of :func:`securecmr.ingest._worker.serve` on stdin/stdout.
"""

from __future__ import annotations

import signal
import sys

from ._worker import serve


def main() -> int:
    # Ctrl-C goes to the whole process group: only the job reacts; it closes our pipes and we stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the protocol stream
    try:
        return serve(sys.stdin.buffer, out)
    except BrokenPipeError:  # the job went away while we were answering
        return 0


if __name__ == "__main__":
    raise SystemExit(main())

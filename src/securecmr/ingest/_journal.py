"""The job journal (what a crashed ingest needs to resume) and the rejects file.

The journal is an append-only JSONL file in ``<store>/ingest/``, one per (collection, manifest
sha256). Per batch it records, each line fsynced before the next step:

1. ``{"b": n, "adding": LINE, "n": COUNT}`` just before the batch's single ``Collection.add``
   (LINE: the manifest line of the first item being added);
2. ``{"b": n, "done": ADDED, "rejected": R}`` after that transaction committed.

``Collection.add`` is all-or-nothing, so after a crash a batch with an ``adding`` record and no
``done`` record was committed exactly when the id on LINE is in the collection (ids that were
already stored are rejected before the ``adding`` record is written). A resumed job therefore never
adds an item twice and never re-encodes a batch that reached the store. The journal holds only
batch numbers, line numbers, counts and the manifest's hash: no ids, paths or text.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, IntegrityError
from ..protect import atomic_write
from ._manifest import Reject

__all__ = ["Journal", "RejectsFile"]

_FORMAT = 1


def _read_lines(path: Path) -> list[bytes]:
    """Complete lines of an append-only file; a torn last line (crash mid-write) is cut off."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        atomic_write(path, data)
    return [ln for ln in data.split(b"\n") if ln.strip()]


class _Appender:
    def __init__(self, path: Path, *, truncate: bool) -> None:
        self.path = path
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
        self._fd = os.open(path, flags, 0o600)

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Journal:
    """Which batches of one manifest are in one collection. Use :meth:`open`."""

    def __init__(
        self, path: Path, header: dict[str, Any], records: list[dict[str, Any]], fresh: bool
    ) -> None:
        self.path = path
        self.header = header
        self.fresh = fresh
        self.done: dict[int, int] = {}
        self.adding: dict[int, tuple[int, int]] = {}  # batch -> (first line, count) being added
        self.complete = False
        for rec in records:
            if rec.get("complete"):
                self.complete = True
            elif "done" in rec:
                self.done[int(rec["b"])] = int(rec["done"])
                self.adding.pop(int(rec["b"]), None)
            elif "adding" in rec:
                self.adding[int(rec["b"])] = (int(rec["adding"]), int(rec["n"]))
        self._out = _Appender(path, truncate=False)

    def __repr__(self) -> str:
        return f"Journal(done={len(self.done)}, complete={self.complete})"

    @property
    def batch_size(self) -> int:
        return int(self.header["batch_size"])

    @classmethod
    def open(
        cls,
        directory: Path,
        cid: str,
        sha256: str,
        batch_size: int | None,
        *,
        resume: bool,
        default_size: int,
    ) -> Journal:
        """The journal of this manifest in this collection: resumed, or started anew.

        Without ``resume`` an unfinished job of the same manifest is an error (so a retry cannot
        silently start over); a finished one is replaced by a new job.
        """
        directory.mkdir(mode=0o700, exist_ok=True)
        path = directory / f"{cid}-{sha256[:24]}.jsonl"
        if path.exists():
            lines = _read_lines(path)
            try:
                recs = [json.loads(ln) for ln in lines]
                header = recs[0]
                if header.get("format") != _FORMAT or header.get("manifest_sha256") != sha256:
                    raise ValueError
            except (ValueError, IndexError, AttributeError):
                raise IntegrityError(
                    f"ingest journal {path.name} is corrupted; delete it to start the ingest over "
                    "(items already stored are then rejected as duplicates, never added twice)"
                ) from None
            unfinished = not any(r.get("complete") for r in recs[1:])
            if resume and unfinished:
                if batch_size is not None and batch_size != int(header["batch_size"]):
                    raise ConfigurationError(
                        f"the unfinished ingest of this manifest used batch_size={header['batch_size']}; "
                        "resume it with the same batch size"
                    )
                return cls(path, header, recs[1:], fresh=False)
            if unfinished:
                done = sum(1 for r in recs[1:] if "done" in r)
                raise ConfigurationError(
                    f"an unfinished ingest of this manifest into this collection exists ({done} batches "
                    "done); resume it (resume=True, CLI --resume) or delete "
                    f"{path} to start over"
                )
            if resume:  # finished: nothing to resume, report it as such
                return cls(path, header, recs[1:], fresh=False)
        header = {
            "format": _FORMAT,
            "manifest_sha256": sha256,
            "batch_size": int(batch_size or default_size),
            "started": time.time(),
        }
        atomic_write(path, json.dumps(header, separators=(",", ":")).encode() + b"\n")
        return cls(path, header, [], fresh=True)

    def mark_adding(self, batch: int, first_line: int, count: int) -> None:
        self._out.append([{"b": batch, "adding": first_line, "n": count}])
        self.adding[batch] = (first_line, count)

    def mark_done(self, batch: int, added: int, rejected: int | None = None) -> None:
        rec: dict[str, Any] = {"b": batch, "done": added}
        if rejected is not None:
            rec["rejected"] = rejected
        self._out.append([rec])
        self.adding.pop(batch, None)
        self.done[batch] = added

    def finish(self, batches: int) -> None:
        self._out.append([{"complete": True, "batches": batches, "finished": time.time()}])
        self.complete = True

    def close(self) -> None:
        self._out.close()


class RejectsFile:
    """The operator's list of manifest lines that were not ingested (JSONL: line, reason)."""

    def __init__(self, path: Path, *, fresh: bool) -> None:
        self.path = path
        self.lines: set[int] = set()
        if not fresh and path.exists():
            for ln in _read_lines(path):
                try:
                    self.lines.add(int(json.loads(ln)["line"]))
                except (ValueError, KeyError, TypeError):
                    continue
        self._out = _Appender(path, truncate=fresh)

    def __repr__(self) -> str:
        return f"RejectsFile(rejected={len(self.lines)})"

    def write(self, rejects: list[Reject]) -> None:
        new = [r for r in rejects if r.line not in self.lines]
        self._out.append([{"line": r.line, "reason": r.reason} for r in new])
        self.lines.update(r.line for r in new)

    def close(self) -> None:
        self._out.close()

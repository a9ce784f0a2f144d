"""``ingest``: a large manifest into a collection, encoded by worker processes (or Ray), committed
batch by batch under a job journal so that a crashed job resumes without duplicates."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import progress
from .._types import Item
from ..access import CollectionView
from ..errors import ConfigurationError, ManifestError
from ..store import CollectionOps
from ._engines import ENGINES, run_process, run_ray, run_serial
from ._journal import Journal, RejectsFile
from ._manifest import Reject, Row, iter_batches
from ._worker import BatchEncoder, BatchResult, WorkerConfig

__all__ = ["DEFAULT_BATCH_SIZE", "IngestReport", "ingest"]

DEFAULT_BATCH_SIZE = 128


@dataclass(frozen=True)
class IngestReport:
    """What one :func:`ingest` call did (counts only: no ids)."""

    added: int
    """Items stored by this call."""
    rejected: int
    """Manifest lines in the rejects file for this job (all runs of it)."""
    batches: int
    """Batches in the manifest."""
    resumed_batches: int
    """Batches already in the store from an earlier, interrupted run (not encoded again)."""
    seconds: float
    workers: int
    engine: str
    rejects_path: Path
    journal_path: Path

    @property
    def items_per_s(self) -> float:
        return self.added / self.seconds if self.seconds > 0 else 0.0


def _scan(path: Path) -> tuple[str, int]:
    """sha256 of the manifest and its number of non-blank lines, in one pass."""
    import hashlib

    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        for raw in fh:
            h.update(raw)
            if raw.strip():
                n += 1
    return h.hexdigest(), n


def _stored(ops: CollectionOps, item_id: Any) -> bool:
    engine = ops.engine
    with ops.lock.read():
        return engine.id_hmac(item_id) in engine.seq_of


def ingest(
    collection: Any,
    manifest: str | os.PathLike[str],
    *,
    workers: int | None = None,
    engine: str = "process",
    batch_size: int | None = None,
    resume: bool = False,
    store_content: bool = False,
    rejects: str | os.PathLike[str] | None = None,
    show_progress: bool | None = None,
) -> IngestReport:
    """Ingest a JSONL manifest (``id``, ``text`` / ``image`` / ``video``, ``labels``, ``attrs``,
    ``ref`` per line; media paths relative to the manifest) into ``collection``.

    ``collection`` is a :class:`securecmr.Collection` or a session's collection (then every batch is
    checked and audited as that user). Encoding runs in ``workers`` processes (default: one per
    CPU; ``0`` encodes in this process), each with its own single-threaded ONNX sessions, or, with
    ``engine="ray"``, in Ray Data actors (the ``scale`` extra). Each batch of ``batch_size`` lines
    (default 128) is one ``add`` transaction recorded in a job journal in the store directory:
    after a crash, ``resume=True`` skips the batches that reached the store and encodes only the
    rest, without duplicates. Bad lines (bad JSON, missing or corrupt file, empty text, repeated or
    already-stored id) are written to ``rejects`` (default ``<manifest>.rejects.jsonl``: line number
    and reason) and the job goes on.
    """
    inner = collection._port if isinstance(collection, CollectionView) else None
    if not isinstance(inner, CollectionOps):
        raise ConfigurationError("ingest() takes a securecmr Collection (store.collection(name))")
    if engine not in ENGINES:
        raise ConfigurationError(f"engine must be one of {ENGINES}, not {engine!r}")
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigurationError("workers must be an integer >= 0 (0: encode in this process)")
    if workers == 0 and engine == "ray":
        raise ConfigurationError("engine='ray' needs workers >= 1")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ConfigurationError("batch_size must be an integer >= 1")
    path = Path(manifest)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    inner.check_writable()

    t0 = time.perf_counter()
    sha, n_lines = _scan(path)
    journal = Journal.open(
        inner.directory / "ingest",
        inner.engine.cid,
        sha,
        batch_size,
        resume=resume,
        default_size=DEFAULT_BATCH_SIZE,
    )
    size = journal.batch_size
    rej_path = Path(rejects) if rejects is not None else path.with_name(path.name + ".rejects.jsonl")
    try:
        rejfile = RejectsFile(rej_path, fresh=journal.fresh)
    except BaseException:
        journal.close()
        raise
    n_batches = -(-n_lines // size)
    resumed = len(journal.done)
    added = 0
    planned: dict[int, tuple[list[Row], list[Reject]]] = {}

    def work() -> Iterator[tuple[int, list[dict[str, Any]]]]:
        nonlocal resumed
        for b, rows, bad in iter_batches(path, size):
            if b in journal.done:
                continue
            pending = journal.adding.get(b)
            if pending is not None:  # crashed around this batch's add: did the transaction commit?
                first, n = pending
                row = next((r for r in rows if r.line == first), None)
                if row is not None and _stored(inner, row.id):
                    journal.mark_done(b, n)  # yes (all or nothing): keep it, encode nothing
                    resumed += 1
                    continue
            keep = []
            for r in rows:
                if _stored(inner, r.id):
                    bad.append(Reject(r.line, "the id is already stored in the collection"))
                else:
                    keep.append(r)
            planned[b] = (keep, bad)
            yield b, [r.work() for r in keep]

    results: Iterator[BatchResult] | None = None
    try:
        if workers == 0:
            results = run_serial(BatchEncoder(inner.encoders.hasher, inner.bits, _model_dir()), work())
        else:
            from ..store._encode import hasher_to_bytes

            config = WorkerConfig(hasher_to_bytes(inner.encoders.hasher), inner.bits, str(_model_dir()))
            runner = run_ray if engine == "ray" else run_process
            results = runner(config, work(), workers)
        todo = n_batches - len(journal.done) - len(journal.adding)
        for res in progress(
            results,
            total=max(todo, 0),
            description="ingesting",
            show=show_progress,
            min_total=2,
            count=lambda res: min(size, max(n_lines - res.batch * size, 0)),  # lines, not batches
            units=min(max(todo, 0) * size, n_lines),
            unit="lines",
        ):
            keep, bad = planned.pop(res.batch)
            items = []
            for r in keep:
                codes = res.codes.get(r.line)
                if codes is None:
                    continue  # an encoding reject (in res.rejects)
                items.append(
                    Item(
                        id=r.id,
                        labels=r.labels,
                        attrs=r.attrs,
                        ref=r.ref,
                        text=r.text if store_content else None,
                        codes={m: np.frombuffer(c, dtype=np.uint8) for m, c in codes.items()},
                    )
                )
            rejects_here = sorted(
                bad + [Reject(line, reason) for line, reason in res.rejects], key=lambda r: r.line
            )
            rejfile.write(rejects_here)
            if items:
                first_line = next(r.line for r in keep if r.line in res.codes)
                journal.mark_adding(res.batch, first_line, len(items))
                collection.add(items, store_content=store_content)
                added += len(items)
            journal.mark_done(res.batch, len(items), len(rejects_here))
        if not journal.complete:
            journal.finish(n_batches)
    finally:
        closer = getattr(results, "close", None)
        if closer is not None:
            closer()  # stop the workers now, not when the generator is collected
        journal.close()
        rejfile.close()
    return IngestReport(
        added=added,
        rejected=len(rejfile.lines),
        batches=n_batches,
        resumed_batches=resumed,
        seconds=time.perf_counter() - t0,
        workers=workers,
        engine="serial" if workers == 0 else engine,
        rejects_path=rej_path,
        journal_path=journal.path,
    )


def _model_dir() -> Path:
    from ..encoders._manifest import resolve_dir

    return resolve_dir(None)

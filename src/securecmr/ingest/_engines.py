"""Where batches get encoded: the calling process, a local process pool, or Ray Data.

Each engine takes an iterator of ``(batch_no, rows)`` (rows as :meth:`Row.work` dicts) and yields a
:class:`BatchResult` per batch **in input order**, so items reach the store in manifest order
whatever the engine (search ties are broken by insertion order).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import selectors
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .._lazy import require
from ..errors import WorkerError
from ._worker import BatchEncoder, BatchResult, WorkerConfig, config_to_json, read_message, write_message

__all__ = ["ENGINES", "RayBatchEncoder", "run_process", "run_ray", "run_serial"]

ENGINES = ("process", "ray")

Work = Iterable[tuple[int, list[dict[str, Any]]]]


def run_serial(encoder: BatchEncoder, work: Work) -> Iterator[BatchResult]:
    """Encode in the calling process (``workers=0``)."""
    for batch, rows in work:
        yield encoder.encode(batch, rows)


class _Worker:
    """One encoding worker: ``python -m securecmr.ingest._worker_main`` over pipes (no pickle, no fork,
    and nothing of the caller's ``__main__`` is re-run). It exits on EOF, so it never outlives the
    job's process, even after ``kill -9``."""

    def __init__(self, config: WorkerConfig) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the directory holding the securecmr package
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("SECURECMR_NO_PROGRESS", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "securecmr.ingest._worker_main"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            bufsize=0,
        )
        self.outstanding: collections.deque[int] = collections.deque()
        self._send(config_to_json(config))

    def __repr__(self) -> str:
        return f"_Worker(pid={self.proc.pid}, outstanding={len(self.outstanding)})"

    def _send(self, obj: dict[str, Any]) -> None:
        try:
            write_message(self.proc.stdin, obj)
        except (BrokenPipeError, OSError):
            raise self._died() from None

    def _died(self) -> WorkerError:
        code = self.proc.poll()
        return WorkerError(
            f"an encoding worker exited unexpectedly (exit code {code}); batches already stored are "
            "kept: resume the job (resume=True, CLI --resume)"
        )

    def submit(self, batch: int, rows: list[dict[str, Any]]) -> None:
        self._send({"batch": batch, "rows": rows})
        self.outstanding.append(batch)

    def receive(self) -> BatchResult:
        msg = read_message(self.proc.stdout)
        if msg is None:
            self.proc.wait()
            raise self._died()
        self.outstanding.popleft()
        if not msg.get("ok"):
            raise _worker_error(str(msg.get("error")), str(msg.get("message")))
        return BatchResult.from_json(msg["result"])

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _worker_error(name: str, message: str) -> Exception:
    """Re-raise a worker's securecmr error as the same class; anything else as WorkerError."""
    from .. import errors

    cls = getattr(errors, name, None) if name in errors.__all__ else None
    if isinstance(cls, type) and issubclass(cls, errors.SecureCMRError):
        try:
            return cls(message)
        except TypeError:
            pass
    return WorkerError(f"an encoding worker failed ({name}: {message})")


def run_process(config: WorkerConfig, work: Work, workers: int) -> Iterator[BatchResult]:
    """``workers`` worker processes, each with its own single-threaded ONNX sessions (created once
    per process); at most two batches per worker are in flight, so memory stays bounded."""
    pool = [_Worker(config) for _ in range(workers)]
    sel = selectors.DefaultSelector()
    for w in pool:
        sel.register(w.proc.stdout, selectors.EVENT_READ, w)  # type: ignore[arg-type]
    source = iter(work)
    order: collections.deque[int] = collections.deque()  # batch numbers in submission order
    ready: dict[int, BatchResult] = {}
    more = True

    def fill() -> None:
        nonlocal more
        while more:
            w = min(pool, key=lambda x: len(x.outstanding))
            if len(w.outstanding) >= 2:
                return
            nxt = next(source, None)
            if nxt is None:
                more = False
                return
            w.submit(*nxt)
            order.append(nxt[0])

    try:
        fill()
        while order:
            if order[0] in ready:
                yield ready.pop(order.popleft())
                fill()
                continue
            for key, _ in sel.select():
                res = key.data.receive()
                ready[res.batch] = res
    finally:
        sel.close()
        for w in pool:
            w.close()


class RayBatchEncoder:
    """Ray Data actor for ``map_batches``: one :class:`BatchEncoder` (so one ONNX session per
    modality) per actor, built once in ``__init__`` and reused for every batch it gets."""

    def __init__(self, config: WorkerConfig) -> None:
        self._encoder = BatchEncoder.from_config(config)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        out = []
        for no, rows in zip(batch["batch"], batch["rows"], strict=True):
            res = self._encoder.encode(int(no), json.loads(rows))
            out.append(json.dumps(res.to_json()))
        return {"batch": np.asarray(batch["batch"], dtype=np.int64), "result": np.asarray(out, dtype=object)}


def run_ray(config: WorkerConfig, work: Work, workers: int) -> Iterator[BatchResult]:
    """Ray Data ``map_batches`` over an actor pool of ``workers`` :class:`RayBatchEncoder` actors
    (one CPU each). Uses the running Ray (``ray.init(address=...)`` for a cluster) or starts a local
    one with ``workers`` CPUs and shuts it down afterwards."""
    ray = require("ray", package="ray", extra="scale")
    ray_data = require("ray.data", package="ray[data]", extra="scale")

    records = [{"batch": b, "rows": json.dumps(rows)} for b, rows in work]
    if not records:
        return
    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
        started = True
    try:
        ctx = ray_data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        ds = ray_data.from_items(records, override_num_blocks=len(records)).map_batches(
            RayBatchEncoder,
            fn_constructor_kwargs={"config": config},
            batch_size=1,
            batch_format="numpy",
            compute=ray_data.ActorPoolStrategy(size=max(1, workers)),
            num_cpus=1,
        )
        order = iter([r["batch"] for r in records])
        want = next(order)
        early: dict[int, BatchResult] = {}
        for row in ds.iter_rows():  # preserve_order keeps this in order; re-order anyway if not
            res = BatchResult.from_json(json.loads(row["result"]))
            early[res.batch] = res
            while want is not None and want in early:
                yield early.pop(want)
                want = next(order, None)
    finally:
        if started:
            ray.shutdown()

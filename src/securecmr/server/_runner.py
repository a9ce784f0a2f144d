"""Runs every store call of the service on one dedicated thread, with a per-request deadline.

The store and its sessions are used from that one thread only, so requests are serialised at the
store while the event loop keeps accepting, parsing and answering (health checks stay live). A
request whose deadline passes while it waits is never started (503 ``timeout``, nothing done); a
read that overruns is answered 503 and its result dropped; a write that has started is always
awaited, so a write is never reported as failed when it committed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ._problems import HTTPProblem

__all__ = ["StoreRunner"]

T = TypeVar("T")


class _NotStarted(Exception):
    pass


class StoreRunner:
    """One worker thread in front of one store."""

    def __init__(self, timeout: float, *, search_threads: int | None = 1) -> None:
        self.timeout = float(timeout)
        self._pool = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="securecmr-store",
            initializer=_omp_threads,
            initargs=(search_threads,),
        )
        self._closed = False

    def _timeout_problem(self) -> HTTPProblem:
        return HTTPProblem(
            503,
            "timeout",
            f"the request did not complete within {self.timeout:g} s; retry later",
            error="SecureCMRError",
            headers={"Retry-After": "1"},
        )

    async def call(self, fn: Callable[[], T], *, write: bool = False) -> T:
        if self._closed:
            raise HTTPProblem(503, "shutting-down", "the server is shutting down", error="SecureCMRError")
        deadline = time.monotonic() + self.timeout
        started = threading.Event()

        def run() -> T:
            if time.monotonic() > deadline:
                raise _NotStarted
            started.set()
            return fn()

        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, run)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout=self.timeout)
        except _NotStarted:
            raise self._timeout_problem() from None
        except TimeoutError:
            if write and started.is_set():
                return await fut  # a started write finishes and is reported truthfully
            fut.add_done_callback(_swallow)
            raise self._timeout_problem() from None

    def run_sync(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the store thread and wait (start-up and shutdown)."""
        return self._pool.submit(fn).result()

    def close(self, final: Callable[[], Any] | None = None) -> None:
        """Run ``final`` (closing the store) after every queued call, then stop the thread."""
        self._closed = True
        if final is not None:
            self._pool.submit(final).result()
        self._pool.shutdown(wait=True)


def _omp_threads(n: int | None) -> None:
    """OpenMP threads of faiss searches made on this thread (an OpenMP setting is per thread)."""
    if n is None:
        return
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss is a core dependency
        return
    faiss.omp_set_num_threads(int(n))


def _swallow(fut: Any) -> None:
    if not fut.cancelled():
        fut.exception()

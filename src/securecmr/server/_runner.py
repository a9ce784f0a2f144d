"""Runs every store call of the service on one dedicated thread, with a per-request deadline.

The store and its sessions are used from that one thread only, so requests are serialised at the
store while the event loop keeps accepting, parsing and answering (health checks stay live). A
request whose deadline passes while it waits is never started (503 ``timeout``, nothing done); a
read that overruns is answered 503 and its result dropped; a write that has started is always
awaited, so a write is never reported as failed when it committed.

A short read (a search by code or vector: no model runs) may run ``inline`` on the event loop's
thread when the store is idle, which saves the two thread wake-ups of a hand-off; one lock keeps
store calls one at a time either way.
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
        self._lock = threading.Lock()

    def _timeout_problem(self) -> HTTPProblem:
        return HTTPProblem(
            503,
            "timeout",
            f"the request did not complete within {self.timeout:g} s; retry later",
            error="SecureCMRError",
            headers={"Retry-After": "1"},
        )

    async def call(self, fn: Callable[[], T], *, write: bool = False, inline: bool = False) -> T:
        if self._closed:
            raise HTTPProblem(503, "shutting-down", "the server is shutting down", error="SecureCMRError")
        if inline and not write and self._lock.acquire(blocking=False):
            try:
                return fn()
            finally:
                self._lock.release()
        deadline = time.monotonic() + self.timeout
        started = threading.Event()

        def run() -> T:
            if time.monotonic() > deadline:
                raise _NotStarted
            started.set()
            with self._lock:
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

    def configure_loop_thread(self, search_threads: int | None) -> None:
        """Apply the faiss thread setting to the calling (event loop) thread too, for inline reads."""
        _omp_threads(search_threads)

    def close(self, final: Callable[[], Any] | None = None) -> None:
        """Run ``final`` (closing the store) after every queued call, then stop the thread."""
        self._closed = True
        if final is not None:

            def locked() -> Any:
                with self._lock:
                    return final()

            self._pool.submit(locked).result()
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

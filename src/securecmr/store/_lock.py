"""The store's writer lock: an ``flock`` on ``store.lock`` taken for the length of one write call.

Any number of processes may open a store for writing; their writes are serialised call by call
(readers never take it). Inside one process the lock is re-entrant and also serialises threads, so
a write call may run other write steps (a purge before an add, an audit checkpoint) under it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import StoreLockedError
from ._rwlock import RWLock

__all__ = ["StoreLock", "WriterLock"]

_POLL = 0.005


class WriterLock:
    """``hold()`` waits up to ``timeout`` seconds for the lock (StoreLockedError after that)."""

    def __init__(self, path: Path, timeout: float = 0.0) -> None:
        self.path = path
        self.timeout = max(float(timeout), 0.0)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._wait_fd = os.open(path.with_name(path.name + ".wait"), os.O_RDWR | os.O_CREAT, 0o600)
        self._mutex = threading.RLock()
        self._depth = 0

    def __repr__(self) -> str:
        return f"WriterLock({str(self.path)!r}, held={self._depth > 0})"

    @property
    def held(self) -> bool:
        """Whether this process holds the lock now (inside a write call)."""
        return self._depth > 0

    @property
    def nested(self) -> bool:
        """Whether the current hold is inside another one of this thread."""
        return self._depth > 1

    @contextlib.contextmanager
    def hold(self, timeout: float | None = None) -> Iterator[None]:
        wait = self.timeout if timeout is None else max(float(timeout), 0.0)
        deadline = time.monotonic() + wait
        self._mutex.acquire()  # threads of this process queue up (their calls are finite)
        try:
            if self._depth == 0:
                self._flock(deadline)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd >= 0:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._mutex.release()

    def _try(self, fd: int, mode: int) -> bool:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _flock(self, deadline: float) -> None:
        """Take the lock. A process that finds others waiting queues behind them (a shared lock on
        ``store.lock.wait`` marks the waiters), so one that writes in a tight loop cannot starve
        the rest by taking the lock again the moment it lets go."""
        if self._fd < 0:
            raise StoreLockedError("the store is closed")
        nobody_waiting = self._try(self._wait_fd, fcntl.LOCK_EX)
        if nobody_waiting:
            fcntl.flock(self._wait_fd, fcntl.LOCK_UN)
            if self._try(self._fd, fcntl.LOCK_EX):
                return
        fcntl.flock(self._wait_fd, fcntl.LOCK_SH)
        try:
            while not self._try(self._fd, fcntl.LOCK_EX):
                if time.monotonic() >= deadline:
                    raise self._locked()
                time.sleep(_POLL)
        finally:
            fcntl.flock(self._wait_fd, fcntl.LOCK_UN)

    def _locked(self) -> StoreLockedError:
        return StoreLockedError(
            "another process (or thread) is writing to this store; retry, or open it with timeout= "
            "to wait longer"
        )

    def release(self) -> None:
        """Close the lock file (the store is closing)."""
        with self._mutex:
            if self._fd >= 0:
                os.close(self._fd)
                os.close(self._wait_fd)
                self._fd = -1


class StoreLock:
    """The store's lock: the in-process readers-writer lock (searches share it, a write holds it
    alone) plus, for writes, the inter-process :class:`WriterLock`. Before a call runs, what other
    processes changed is loaded (``stale()`` is a cheap check, ``sync()`` the reload, run under
    the write side so no search sees half of it)."""

    def __init__(
        self,
        writer: WriterLock | None,
        stale: Callable[[], bool],
        sync: Callable[[], None],
        after_write: Callable[[], None] | None = None,
    ) -> None:
        self._rw = RWLock()
        self._writer = writer
        self._stale = stale
        self._sync = sync
        self._after_write = after_write
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"StoreLock({self._rw!r})"

    @contextlib.contextmanager
    def local(self) -> Iterator[bool]:
        """This process's exclusive side only (no inter-process lock, no reload): True when taken,
        False when this thread already reads (it would wait on itself)."""
        if getattr(self._local, "reads", 0):
            yield False
            return
        with self._rw.write():
            yield True

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        depth = getattr(self._local, "reads", 0)
        stale = False
        if depth == 0:  # not while this thread already reads (it would wait on itself)
            with self._rw.read():  # the check runs SQL on the shared connection: never beside a write
                stale = self._stale()
        if stale:
            with self._rw.write():
                if self._stale():
                    self._sync()
        self._local.reads = depth + 1
        try:
            with self._rw.read():
                yield
        finally:
            self._local.reads = depth

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        if self._writer is None:  # a readonly store: nothing is written to the store files
            with self._rw.write():
                yield
            return
        with self._writer.hold(), self._rw.write():
            if self._stale():
                self._sync()
            yield
            if self._after_write is not None and not self._writer.nested:
                self._after_write()

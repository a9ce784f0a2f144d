"""The single-writer lock (fcntl), shared by processes on one machine."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from ..errors import StoreLockedError

__all__ = ["WriterLock"]


class WriterLock:
    def __init__(self, path: Path, timeout: float = 0.0) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self._fd)
                    raise StoreLockedError(
                        "another process has this store open for writing; close it, open with "
                        "readonly=True, or pass timeout= to wait"
                    ) from None
                time.sleep(0.05)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

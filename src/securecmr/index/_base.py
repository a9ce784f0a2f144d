"""The IndexBackend protocol: exact top-k Hamming search over packed binary codes.

Contract: results are sorted by (distance, row position) ascending, so among equal distances the
earlier-added row comes first. ``remove(rows)`` deletes rows and keeps the order of the rest.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["IndexBackend", "sort_results"]


@runtime_checkable
class IndexBackend(Protocol):
    bits: int

    def __len__(self) -> int: ...

    def add(self, codes: np.ndarray) -> None: ...

    def remove(self, rows: np.ndarray) -> None: ...

    def codes(self) -> np.ndarray:
        """All stored codes in row order."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances int32 (nq, k), rows int64 (nq, k)); missing slots have row -1."""
        ...


def sort_results(dist: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order each result row by (distance, row) with -1 rows last."""
    big = np.where(rows < 0, np.iinfo(np.int64).max, rows)
    key_d = np.where(rows < 0, np.iinfo(np.int32).max, dist)
    order = np.lexsort((big, key_d), axis=1)
    return np.take_along_axis(dist, order, 1), np.take_along_axis(rows, order, 1)

"""The IndexBackend protocol: exact top-k Hamming search over packed binary codes.

Contract: results are sorted by (distance, row position) ascending, so among equal distances the
earlier-added row comes first. ``remove(rows)`` deletes rows and keeps the order of the rest.
A backend may also offer ``search_one(query, k) -> [(distance, row), ...]`` (same order, missing
rows left out): the store uses it for single queries when present.
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
    """Order each result row by (distance, row) with -1 rows last (their distance becomes int32 max)."""
    if dist.shape[0] == 1 and dist.shape[1] <= 64:  # one query: sorting Python pairs is cheaper
        pairs = sorted(
            (d, r) if r >= 0 else (_I32_MAX, _MISSING)
            for d, r in zip(dist[0].tolist(), rows[0].tolist(), strict=True)
        )
        return (
            np.array([[p[0] for p in pairs]], dtype=np.int32).reshape(1, -1),
            np.array([[p[1] if p[1] != _MISSING else -1 for p in pairs]], dtype=np.int64).reshape(1, -1),
        )
    rows = np.asarray(rows, dtype=np.int64)
    missing = rows < 0
    # one int64 key per slot: distance in the high bits, row position in the low 40 bits
    key = (np.asarray(dist, dtype=np.int64) << _ROW_BITS) | rows
    if missing.any():
        key[missing] = _MISSING
    key.sort(axis=1)
    out_rows = key & _ROW_MASK
    out_dist = (key >> _ROW_BITS).astype(np.int32)
    gone = key == _MISSING
    if gone.any():
        out_rows[gone] = -1
        out_dist[gone] = _I32_MAX
    return out_dist, out_rows


_ROW_BITS = 40  # row positions below 2**40; distances (at most a few thousand bits) fit above them
_ROW_MASK = (1 << _ROW_BITS) - 1
_MISSING = int(np.iinfo(np.int64).max)
_I32_MAX = int(np.iinfo(np.int32).max)

"""Reference backend: brute-force Hamming distances in numpy (for tests and small collections)."""

from __future__ import annotations

import numpy as np

from ._base import IndexBase, sort_results

__all__ = ["BruteForceIndex"]

_POP = np.array([bin(i).count("1") for i in range(256)], dtype=np.int32)


class BruteForceIndex(IndexBase):
    def __init__(self, bits: int) -> None:
        self.bits = bits
        self._codes = np.zeros((0, bits // 8), dtype=np.uint8)

    def __repr__(self) -> str:
        return f"BruteForceIndex(bits={self.bits}, n={len(self)})"

    def __len__(self) -> int:
        return int(self._codes.shape[0])

    def add(self, codes: np.ndarray, keys: np.ndarray | None = None) -> None:
        self._codes = np.vstack([self._codes, np.ascontiguousarray(codes, dtype=np.uint8)])

    def remove(self, rows: np.ndarray) -> None:
        self._codes = np.delete(self._codes, rows, axis=0)

    def codes(self) -> np.ndarray:
        return self._codes

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        nq = queries.shape[0]
        dist = np.full((nq, k), np.iinfo(np.int32).max, dtype=np.int32)
        rows = np.full((nq, k), -1, dtype=np.int64)
        if n == 0 or k == 0:
            return dist, rows
        for q in range(nq):
            d = _POP[np.bitwise_xor(self._codes, queries[q])].sum(axis=1)
            order = np.lexsort((np.arange(n), d))[:k]
            dist[q, : order.size] = d[order]
            rows[q, : order.size] = order
        return sort_results(dist, rows)

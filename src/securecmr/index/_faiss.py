"""faiss ``IndexBinaryFlat`` backend (exact, heap-based; earlier rows win ties)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._lazy import require
from ._base import IndexBackend, IndexBase, sort_results

__all__ = ["FaissBinaryIndex"]


class FaissBinaryIndex(IndexBase):
    def __init__(self, bits: int) -> None:
        self.bits = bits
        self._faiss: Any = require("faiss", package="faiss-cpu", extra="index")
        self._index: Any = self._faiss.IndexBinaryFlat(bits)

    def __repr__(self) -> str:
        return f"FaissBinaryIndex(bits={self.bits}, n={len(self)})"

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, codes: np.ndarray, keys: np.ndarray | None = None) -> None:
        if codes.shape[0]:
            self._index.add(np.ascontiguousarray(codes, dtype=np.uint8))

    def remove(self, rows: np.ndarray) -> None:
        if len(rows):
            self._index.remove_ids(self._faiss.IDSelectorBatch(np.asarray(rows, dtype=np.int64)))

    def codes(self) -> np.ndarray:
        n = len(self)
        return self._faiss.vector_to_array(self._index.xb).reshape(n, self.bits // 8)

    def subset(self, rows: np.ndarray) -> IndexBackend:
        sub = FaissBinaryIndex(self.bits)
        sub.add(np.take(self.codes(), np.asarray(rows, dtype=np.int64), axis=0))
        return sub

    def search_one(self, query: np.ndarray, k: int) -> list[tuple[int, int]]:
        """One query's top ``k`` as sorted (distance, row) pairs (no arrays to build for one query)."""
        dist, rows = self._index.search(np.ascontiguousarray(query, dtype=np.uint8).reshape(1, -1), k)
        return sorted(p for p in zip(dist[0].tolist(), rows[0].tolist(), strict=True) if p[1] >= 0)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        dist, rows = self._index.search(np.ascontiguousarray(queries, dtype=np.uint8), k)
        return sort_results(dist.astype(np.int32, copy=False), rows.astype(np.int64, copy=False))

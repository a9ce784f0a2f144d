"""The IndexBackend protocol: exact top-k Hamming search over packed binary codes.

Contract: results are sorted by (distance, row position) ascending, so among equal distances the
earlier-added row comes first. ``remove(rows)`` deletes rows and keeps the order of the rest.

The protocol declares every method the engine calls; :class:`IndexBase` gives the natural
defaults (``search_one`` through ``search``, ``sync`` by adding every code, no-op ``commit`` and
``compact``, ``subset`` as an in-memory copy of some rows), so a backend implements only what it
does differently. A backend that filters natively (Milvus) sets ``pushdown`` and implements
``search_filtered``; the engine then hands it the allowed items instead of building a subset.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigurationError

__all__ = ["IndexBackend", "IndexBase", "sort_results", "topk_rows"]


@runtime_checkable
class IndexBackend(Protocol):
    bits: int
    persistent: bool  # rows carry keys (``add(codes, keys)``); ``sync``/``commit`` keep the backend current
    pushdown: bool  # ``search_filtered`` filters inside the backend

    def __len__(self) -> int: ...

    def add(self, codes: np.ndarray, keys: np.ndarray | None = None) -> None: ...

    def remove(self, rows: np.ndarray) -> None: ...

    def codes(self) -> np.ndarray:
        """All stored codes in row order."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances int32 (nq, k), rows int64 (nq, k)); missing slots have row -1."""
        ...

    def search_one(self, query: np.ndarray, k: int) -> list[tuple[int, int]]:
        """One query's top ``k`` as sorted (distance, row) pairs, missing rows left out."""
        ...

    def search_filtered(
        self, queries: np.ndarray, k: int, *, seqs: np.ndarray | None = None, modality: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`search`, among the codes of items ``seqs`` and of ``modality`` (``pushdown``)."""
        ...

    def subset(self, rows: np.ndarray) -> IndexBackend:
        """A new in-memory index over the codes of ``rows`` (sorted), in that order."""
        ...

    def sync(self, codes: np.ndarray, keys: np.ndarray, gen: int) -> bool:
        """Load the durable record's codes (row keys and generation for a persistent backend);
        True when the backend had to be rebuilt."""
        ...

    def commit(self, gen: int) -> None:
        """The engine committed generation ``gen`` (a persistent backend records it)."""
        ...

    def compact(self) -> dict[str, Any] | None:
        """Drop deleted rows from the backend's own files (after ``store.compact()``); an external
        index returns what the erasure receipt should say about it."""
        ...


class IndexBase:
    """Defaults for the optional parts of :class:`IndexBackend`."""

    bits: int
    persistent = False
    pushdown = False

    def __len__(self) -> int:
        raise NotImplementedError

    def add(self, codes: np.ndarray, keys: np.ndarray | None = None) -> None:
        raise NotImplementedError

    def codes(self) -> np.ndarray:
        raise NotImplementedError

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def search_one(self, query: np.ndarray, k: int) -> list[tuple[int, int]]:
        dist, rows = self.search(np.ascontiguousarray(query, dtype=np.uint8).reshape(1, -1), k)
        return [(d, r) for d, r in zip(dist[0].tolist(), rows[0].tolist(), strict=True) if r >= 0]

    def search_filtered(
        self, queries: np.ndarray, k: int, *, seqs: np.ndarray | None = None, modality: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        raise ConfigurationError(f"{type(self).__name__} does not filter natively (pushdown is False)")

    def subset(self, rows: np.ndarray) -> IndexBackend:
        from ._brute import BruteForceIndex

        sub = BruteForceIndex(self.bits)
        sub.add(np.take(self.codes(), np.asarray(rows, dtype=np.int64), axis=0))
        return sub

    def sync(self, codes: np.ndarray, keys: np.ndarray, gen: int) -> bool:
        if codes.shape[0]:
            self.add(codes)
        return bool(codes.shape[0])

    def commit(self, gen: int) -> None:
        return None

    def compact(self) -> dict[str, Any] | None:
        return None


def topk_rows(
    dist: np.ndarray, rows: np.ndarray, row_seq: np.ndarray, k: int, distinct: bool
) -> list[tuple[list[int], list[int], np.ndarray]]:
    """Per query: the first ``k`` items of one sorted (distance, row) answer as (seqs, distances,
    rows), missing rows dropped and, when ``distinct``, each item kept at its best (first) row only.
    The one place where top-k rows become top-k items."""
    out = []
    for q in range(rows.shape[0]):
        r = rows[q]
        valid = r >= 0
        r, d = r[valid], dist[q][valid]
        seqs = row_seq[r]
        if distinct and seqs.size > 1:
            _, first = np.unique(seqs, return_index=True)
            first.sort()
            first = first[:k]
            r, d, seqs = r[first], d[first], seqs[first]
        out.append((seqs[:k].tolist(), d[:k].tolist(), r[:k]))
    return out


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

"""Policy-filtered Hamming search: evaluate the policy into an allowed-row set, search only those.

:class:`AllowedSetCache` remembers, per (policy, user attributes, collection version), the allowed
rows and a packed copy of their codes, so a user's repeated searches cost a search over the
allowed subset only. Results never include a row outside the set, so a hidden item never takes
one of the ``k`` places, and the ranking equals brute force over the authorised items
(up to the order of equal distances).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._lazy import require
from ._policy import AttributeTable, Policy

__all__ = ["AllowedSet", "AllowedSetCache", "binary_index", "hamming_topk"]


def _faiss() -> Any:
    faiss = require("faiss", package="faiss-cpu")
    return faiss


def hamming_topk(index: Any, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of a faiss binary index: (distances, row indices), without the -1 padding."""
    k = min(int(k), int(index.ntotal))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.uint8)
    d, i = index.search(q, k)
    keep = i[0] >= 0
    return d[0][keep].astype(np.int64), i[0][keep].astype(np.int64)


def binary_index(codes: np.ndarray) -> Any:
    """A faiss exact binary index over packed ``codes`` (n, bytes)."""
    faiss = _faiss()
    index = faiss.IndexBinaryFlat(int(codes.shape[1]) * 8)
    if codes.shape[0]:
        index.add(np.ascontiguousarray(codes, dtype=np.uint8))
    return index


class AllowedSet:
    """The rows a policy admits for one user, and their codes packed contiguously."""

    __slots__ = ("index", "rows")

    def __init__(self, rows: np.ndarray, codes: np.ndarray | None) -> None:
        self.rows = rows
        self.index = binary_index(codes) if codes is not None else None

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` over the allowed rows: (distances, rows of the full collection)."""
        if self.index is None or len(self) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        d, local = hamming_topk(self.index, query, k)
        return d, self.rows[local]


class AllowedSetCache:
    """A small LRU of :class:`AllowedSet` keyed by (collection key, version, policy, user attributes)."""

    def __init__(self, max_entries: int = 32, *, min_fraction: float = 0.05, sample_size: int = 2048) -> None:
        self.max_entries = max_entries
        self.min_fraction = min_fraction
        self.sample_size = sample_size
        self._entries: OrderedDict[tuple[Any, ...], AllowedSet] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self,
        collection_key: Any,
        version: Any,
        policy: Policy,
        user: Mapping[str, Any],
        table: AttributeTable,
        codes: np.ndarray | None = None,
        live: np.ndarray | None = None,
    ) -> AllowedSet:
        """The allowed set, computed on a miss. ``live`` masks out deleted rows; ``codes`` (n, bytes)
        are gathered for the allowed rows so the search touches nothing else."""
        ukey = json.dumps(dict(user), sort_keys=True, default=str)
        key = (collection_key, version, policy.source, ukey)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
        mask = policy.mask(table, user)
        if live is not None:
            mask &= live[: mask.shape[0]]
        rows = np.flatnonzero(mask)
        sub = np.take(codes, rows, axis=0) if codes is not None else None
        entry = AllowedSet(rows, sub)
        with self._lock:
            # entries for older versions of the same collection are dead: drop them
            for old in [k for k in self._entries if k[0] == collection_key and k[1] != version]:
                del self._entries[old]
            self._entries[key] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return entry

    def search(
        self,
        collection_key: Any,
        version: Any,
        policy: Policy,
        user: Mapping[str, Any],
        table: AttributeTable,
        codes: np.ndarray,
        index: Any,
        query: np.ndarray,
        k: int,
        live: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` authorised rows: (distances, rows).

        A cached allowed set is searched directly. Otherwise, when a sample says the policy admits at
        least ``min_fraction`` of the items, the full ``index`` is searched for ``k / fraction`` (x2)
        candidates and the policy is evaluated on those rows only; candidates come in the index's
        global (distance, row) order, so the first ``k`` authorised candidates are the authorised
        top ``k``. If too few candidates pass, or the policy is selective, the allowed set is built
        (and cached for the user's next queries) and searched.
        """
        ukey = json.dumps(dict(user), sort_keys=True, default=str)
        key = (collection_key, version, policy.source, ukey)
        with self._lock:
            cached = self._entries.get(key)
        n = len(table)
        if cached is None and n > 0:
            frac = self._estimate(policy, user, table, live)
            if frac >= self.min_fraction:
                fetch = min(n, int(np.ceil(2 * k / frac)) + 32)
                d, rows = hamming_topk(index, query, fetch)
                sub = table.take(rows)
                ok = policy.mask(sub, user)
                if live is not None:
                    ok &= live[rows]
                if int(ok.sum()) >= k or fetch >= n:
                    return d[ok][:k], rows[ok][:k]
        entry = cached or self.get(collection_key, version, policy, user, table, codes, live)
        return entry.search(query, k)

    def _estimate(
        self, policy: Policy, user: Mapping[str, Any], table: AttributeTable, live: np.ndarray | None
    ) -> float:
        n = len(table)
        m = min(n, self.sample_size)
        rows = np.linspace(0, n - 1, m).astype(np.intp)
        ok = policy.mask(table.take(rows), user)
        if live is not None:
            ok &= live[rows]
        return float(ok.mean())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

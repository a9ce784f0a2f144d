"""Retrieval metrics on packed binary codes (Hamming ranking) and on float vectors (cosine ranking).

Tie rule: the database is ranked by Hamming distance with a *stable* sort, so items at the same
distance keep database order (ties broken by database index), as most hashing papers report.
Relevance: a database item is relevant to a query when they share at least one label (labels are
(n,) integer ids or (n, L) multi-hot rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError

__all__ = [
    "float_mean_average_precision",
    "hamming_distance",
    "mean_average_precision",
    "precision_at_k",
    "precision_recall_curve",
    "recall_at_k",
    "relevance",
]

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)


def _codes(codes: Any, name: str) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.ndim != 2 or arr.dtype != np.uint8:
        raise ShapeError(
            f"{name} must be packed uint8 codes of shape (n, bits // 8), got {arr.dtype} {arr.shape}"
        )
    return arr


def hamming_distance(query_codes: Any, db_codes: Any) -> np.ndarray:
    """(nq, ndb) Hamming distances between packed uint8 codes."""
    q, d = _codes(query_codes, "query_codes"), _codes(db_codes, "db_codes")
    if q.shape[1] != d.shape[1]:
        raise ShapeError(f"query codes have {q.shape[1] * 8} bits but database codes have {d.shape[1] * 8}")
    out = np.zeros((q.shape[0], d.shape[0]), dtype=np.int32)
    for j in range(q.shape[1]):
        out += _POPCOUNT[np.bitwise_xor(q[:, j][:, None], d[:, j][None, :])]
    return out


def _multi_hot(labels: Any, name: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim == 1:
        return arr
    if arr.ndim == 2:
        return arr.astype(bool)
    raise ShapeError(f"{name} must be (n,) ids or (n, L) multi-hot, got shape {arr.shape}")


def relevance(query_labels: Any, db_labels: Any) -> np.ndarray:
    """(nq, ndb) boolean: shares at least one label."""
    q, d = _multi_hot(query_labels, "query_labels"), _multi_hot(db_labels, "db_labels")
    if q.ndim != d.ndim:
        raise ShapeError("query_labels and db_labels must both be ids or both multi-hot")
    if q.ndim == 1:
        return np.asarray(q[:, None] == d[None, :])
    if q.shape[1] != d.shape[1]:
        raise ShapeError("query_labels and db_labels have different numbers of labels")
    return np.asarray((q.astype(np.float32) @ d.T.astype(np.float32)) > 0)


def _check_rows(n_scores: tuple[int, int], ql: Any, dl: Any) -> None:
    if len(ql) != n_scores[0]:
        raise ShapeError(f"query_labels has {len(ql)} rows but there are {n_scores[0]} queries")
    if len(dl) != n_scores[1]:
        raise ShapeError(f"db_labels has {len(dl)} rows but the database has {n_scores[1]} items")


def _map_from_dist(dist: np.ndarray, rel: np.ndarray, top_k: int | None) -> float:
    order = np.argsort(dist, axis=1, kind="stable")
    if top_k is not None:
        if top_k < 1:
            raise ShapeError("top_k must be >= 1")
        order = order[:, :top_k]
    hits = np.take_along_axis(rel, order, axis=1).astype(np.float64)
    cum = np.cumsum(hits, axis=1)
    ranks = np.arange(1, hits.shape[1] + 1)
    n_rel = hits.sum(axis=1)
    ap = np.where(n_rel > 0, (cum / ranks * hits).sum(axis=1) / np.maximum(n_rel, 1), 0.0)
    return float(ap.mean()) if len(ap) else 0.0


def mean_average_precision(
    query_codes: Any, db_codes: Any, query_labels: Any, db_labels: Any, top_k: int | None = None
) -> float:
    """MAP (or MAP@top_k) of Hamming ranking, ties broken by database order.

    AP of a query = mean of precision@r over the ranks r (within the top ``top_k`` if given) that hold
    a relevant item; a query with no relevant item there scores 0.
    """
    dist = hamming_distance(query_codes, db_codes)
    _check_rows(dist.shape, query_labels, db_labels)
    return _map_from_dist(dist, relevance(query_labels, db_labels), top_k)


def float_mean_average_precision(
    query_vectors: Any, db_vectors: Any, query_labels: Any, db_labels: Any, top_k: int | None = None
) -> float:
    """MAP of cosine-similarity ranking of real-valued vectors (the float reference); stable ties."""
    q = np.asarray(query_vectors, dtype=np.float64)
    d = np.asarray(db_vectors, dtype=np.float64)
    if q.ndim != 2 or d.ndim != 2 or q.shape[1] != d.shape[1]:
        raise ShapeError("query_vectors and db_vectors must be 2-D with the same width")
    q = q / (np.linalg.norm(q, axis=1, keepdims=True) + 1e-12)
    d = d / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-12)
    dist = -(q @ d.T)
    _check_rows(dist.shape, query_labels, db_labels)
    return _map_from_dist(dist, relevance(query_labels, db_labels), top_k)


def precision_at_k(query_codes: Any, db_codes: Any, query_labels: Any, db_labels: Any, k: int = 100) -> float:
    """Mean fraction of relevant items among the first ``k`` of the Hamming ranking (stable ties)."""
    dist = hamming_distance(query_codes, db_codes)
    _check_rows(dist.shape, query_labels, db_labels)
    if k < 1:
        raise ShapeError("k must be >= 1")
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    rel = relevance(query_labels, db_labels)
    return float(np.take_along_axis(rel, order, axis=1).mean()) if len(order) else 0.0


def precision_recall_curve(
    query_codes: Any, db_codes: Any, query_labels: Any, db_labels: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of Hamming-radius retrieval for radius 0..bits.

    At radius r every database item within distance r is returned; precision = relevant returned /
    returned (queries returning nothing are left out of that radius's mean; 0 if none return
    anything), recall = relevant returned / relevant. Returns ``(precision, recall)``, each (bits + 1,).
    """
    dist = hamming_distance(query_codes, db_codes)
    _check_rows(dist.shape, query_labels, db_labels)
    rel = relevance(query_labels, db_labels)
    bits = np.asarray(query_codes).shape[1] * 8
    n_rel = rel.sum(axis=1)
    precision = np.zeros(bits + 1)
    recall = np.zeros(bits + 1)
    for r in range(bits + 1):
        within = dist <= r
        returned = within.sum(axis=1)
        good = (within & rel).sum(axis=1)
        some = returned > 0
        precision[r] = float((good[some] / returned[some]).mean()) if some.any() else 0.0
        has = n_rel > 0
        recall[r] = float((good[has] / n_rel[has]).mean()) if has.any() else 0.0
    return precision, recall


def recall_at_k(query_codes: Any, db_codes: Any, k: int = 10) -> float:
    """Paired (one-to-one) retrieval: query ``i``'s only match is database item ``i``; the fraction of
    queries whose match is within the first ``k`` of the Hamming ranking (stable ties)."""
    dist = hamming_distance(query_codes, db_codes)
    if dist.shape[0] != dist.shape[1]:
        raise ShapeError("recall_at_k needs as many queries as database items (row i matches row i)")
    if k < 1:
        raise ShapeError("k must be >= 1")
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return float((order == np.arange(len(order))[:, None]).any(axis=1).mean()) if len(order) else 0.0

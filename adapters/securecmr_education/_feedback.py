"""Relevance feedback: Rocchio refinement of a query vector in the embedding space, before hashing.

The student marks results relevant or not; the query moves towards the relevant results and away
from the others (Rocchio, "Relevance feedback in information retrieval", 1971; the defaults
alpha=1, beta=0.75, gamma=0.15 are the SMART system's)::

    q' = alpha * q + beta * mean(relevant) - gamma * mean(nonrelevant)      (all rows unit-normalised)

and ``q'`` is renormalised, then hashed by the collection like any query. Only the vectors of the
judged results are needed, never the stored codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from securecmr.errors import ConfigurationError, EmptyInputError, ShapeError

__all__ = ["Rocchio"]


def _unit_rows(x: Any, name: str, dim: int | None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2 or (dim is not None and a.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, dim)"
        raise ShapeError(f"{name} must be vectors of shape {want}, got {a.shape}")
    if not np.isfinite(a).all():
        raise ShapeError(f"{name} contains NaN or infinite values")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if (norms < 1e-12).any():
        raise ShapeError(f"{name} contains an all-zero vector")
    return np.asarray(a / norms)


class Rocchio:
    """Rocchio query refinement. Parameters: ``alpha`` (weight of the original query), ``beta``
    (relevant results), ``gamma`` (non-relevant results); all >= 0, ``alpha + beta > 0``."""

    def __init__(self, alpha: float = 1.0, beta: float = 0.75, gamma: float = 0.15) -> None:
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma

    def __repr__(self) -> str:
        return f"Rocchio(alpha={self.alpha}, beta={self.beta}, gamma={self.gamma})"

    def _check(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not np.isfinite(v) or v < 0:
                raise ConfigurationError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.alpha + self.beta <= 0:
            raise ConfigurationError("alpha + beta must be > 0")

    def refine(
        self,
        query: Any,
        relevant: Sequence[Any] | np.ndarray = (),
        nonrelevant: Sequence[Any] | np.ndarray = (),
    ) -> np.ndarray:
        """The refined unit query vector (float32, the query's width). ``relevant`` / ``nonrelevant``:
        vectors of judged results (lists of rows or 2-D arrays); either may be empty."""
        self._check()
        q = _unit_rows(query, "query", None)
        if q.shape[0] != 1:
            raise ShapeError("refine takes one query vector")
        dim = q.shape[1]
        out = self.alpha * q[0]
        if len(relevant):
            out = out + self.beta * _unit_rows(np.asarray(relevant), "relevant", dim).mean(axis=0)
        if len(nonrelevant):
            out = out - self.gamma * _unit_rows(np.asarray(nonrelevant), "nonrelevant", dim).mean(axis=0)
        n = float(np.linalg.norm(out))
        if n < 1e-9:
            raise EmptyInputError("the feedback cancels the query out; mark fewer results non-relevant")
        return (out / n).astype(np.float32)

    def refine_many(
        self, queries: np.ndarray, relevant: Sequence[np.ndarray], nonrelevant: Sequence[np.ndarray]
    ) -> np.ndarray:
        """Refine each row of ``queries`` with its own judged vectors (lists aligned with the rows;
        an entry may be an empty ``(0, dim)`` array)."""
        q = np.asarray(queries)
        if q.ndim != 2 or len(relevant) != len(q) or len(nonrelevant) != len(q):
            raise ShapeError("queries must be 2-D, with one relevant and one nonrelevant entry per row")
        return np.stack([self.refine(q[i], relevant[i], nonrelevant[i]) for i in range(len(q))])

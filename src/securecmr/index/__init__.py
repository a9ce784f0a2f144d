"""Exact Hamming index backends behind one :class:`IndexBackend` protocol."""

from __future__ import annotations

from ._base import IndexBackend
from ._brute import BruteForceIndex
from ._faiss import FaissBinaryIndex

__all__ = ["BACKENDS", "BruteForceIndex", "FaissBinaryIndex", "IndexBackend", "make_index"]

BACKENDS = ("faiss", "brute")


def make_index(backend: str, bits: int) -> IndexBackend:
    from ..errors import ConfigurationError

    if backend == "faiss":
        return FaissBinaryIndex(bits)
    if backend == "brute":
        return BruteForceIndex(bits)
    raise ConfigurationError(f"unknown index backend {backend!r}; choose one of {BACKENDS}")

"""Exact Hamming index backends behind one :class:`IndexBackend` protocol."""

from __future__ import annotations

from typing import Any

from ._base import IndexBackend, IndexBase, topk_rows
from ._brute import BruteForceIndex
from ._faiss import FaissBinaryIndex
from ._milvus import INDEX_TYPES, MilvusConnection, MilvusIndex, milvus_names, row_keys
from ._milvus_server import LocalMilvusServer

__all__ = [
    "BACKENDS",
    "INDEX_TYPES",
    "BruteForceIndex",
    "FaissBinaryIndex",
    "IndexBackend",
    "IndexBase",
    "LocalMilvusServer",
    "MilvusConnection",
    "MilvusIndex",
    "make_index",
    "milvus_names",
    "row_keys",
    "topk_rows",
]

BACKENDS = ("faiss", "brute", "milvus")


def make_index(backend: str, bits: int, **options: Any) -> IndexBackend:
    """A new index; ``milvus`` takes ``connection=``, ``collection=``, ``tenant=``, ``state=`` and
    ``readonly=`` (the store fills them in)."""
    from ..errors import ConfigurationError

    if backend == "faiss":
        return FaissBinaryIndex(bits)
    if backend == "brute":
        return BruteForceIndex(bits)
    if backend == "milvus":
        return MilvusIndex(bits, **options)
    raise ConfigurationError(f"unknown index backend {backend!r}; choose one of {BACKENDS}")

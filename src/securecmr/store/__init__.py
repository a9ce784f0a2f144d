"""The embedded store: SQLite (WAL) durable record, sealed rows, exact Hamming index."""

from __future__ import annotations

from .._types import Hit, Item
from ._collection import Collection
from ._ops import CollectionOps
from ._store import PROTECTION_MODES, Store

__all__ = ["PROTECTION_MODES", "Collection", "CollectionOps", "Hit", "Item", "Store"]

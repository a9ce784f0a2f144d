"""The embedded store: SQLite (WAL) durable record, sealed rows, exact Hamming index."""

from __future__ import annotations

from ._collection import Collection
from ._store import PROTECTION_MODES, Store
from ._types import Hit, Item

__all__ = ["PROTECTION_MODES", "Collection", "Hit", "Item", "Store"]

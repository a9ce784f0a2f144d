"""The public :class:`Collection`: the operator's handle on one collection.

Its calls (add, search, search_batch, get, ids, delete, hold, release) come from
:class:`securecmr.access.CollectionView` and take the same gate as a session's: the operator
(principal ``@operator``) is authenticated by the passphrase that opened the store, and every
call, reads included, is validated and leaves exactly one audit record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._validate import canonical_id
from ..access import CollectionView, Gate, Principal
from ._encode import Encoders
from ._engine import CollectionEngine
from ._ops import CollectionOps

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["Collection"]


class Collection(CollectionView):
    """A named collection of items in one Hamming space. Get it from ``store.collection(name)``."""

    def __init__(self, gate: Gate, ops: CollectionOps, principal: Principal, store: Store) -> None:
        super().__init__(gate, ops, ops.name, principal)
        self._ops = ops
        self._store = store

    @property
    def _engine(self) -> CollectionEngine:
        return self._ops.engine

    @property
    def _encoders(self) -> Encoders:
        return self._ops.encoders

    def __repr__(self) -> str:
        return (
            f"Collection({self.name!r}, bits={self.bits}, protection={self.protection!r}, items={len(self)})"
        )

    def __len__(self) -> int:
        return self._ops.size()

    @property
    def protection(self) -> str:
        return self._ops.engine.protection

    @property
    def ttl_hours(self) -> float | None:
        return self._ops.ttl_hours

    @property
    def hasher(self) -> Any:
        return self._ops.encoders.hasher

    def id_hmac(self, item_id: str | int) -> str:
        """The keyed HMAC (hex) under which ``item_id`` is stored."""
        return self._ops.engine.id_hmac(canonical_id(item_id)).hex()

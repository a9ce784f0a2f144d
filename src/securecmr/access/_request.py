"""The typed request every collection call becomes, and the ports the gate drives.

A public call (``Collection.search``, a session's ``add``, the CLI, the HTTP service) builds one
:class:`Request`; :class:`~securecmr.access._gate.Gate` runs it through authenticate -> validate
-> authorise -> guard -> engine -> score privacy -> audit -> observe. The gate reaches the
collection only through :class:`CollectionPort` and the query monitor only through
:class:`MonitorPort`, so nothing is found by probing attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from .._types import Hit, Item

__all__ = ["Action", "CollectionPort", "ItemFilter", "MonitorPort", "Query", "Request"]

Action = Literal["search", "search_batch", "get", "ids", "add", "upsert", "delete", "hold", "release"]
QueryKind = Literal["text", "image", "video", "vector", "code"]
QUERY_KINDS: tuple[QueryKind, ...] = ("text", "image", "video", "vector", "code")
READS: frozenset[str] = frozenset({"search", "search_batch", "get", "ids"})


@dataclass(frozen=True, slots=True)
class Query:
    """One query: its kind (text, image, video, vector or a packed code) and value."""

    kind: QueryKind
    value: Any
    query_modality: str = "text"


@dataclass(frozen=True, slots=True)
class Request:
    """One call on one collection, as the caller gave it (the gate canonicalises it)."""

    action: Action
    query: Query | None = None  # search
    codes: Any = None  # search_batch: packed codes (n, bits // 8)
    k: Any = 10
    modality: str | None = None
    items: Any = ()  # add: Items (or one Item)
    ids: Any = None  # get/delete/hold/release
    where: Mapping[str, Any] | None = None  # delete
    filter: str | None = None  # search, search_batch, ids: a policy expression ANDed with the policy
    store_content: bool = False  # add
    by: str | None = None  # delete: who the erasure receipt names (default: the principal)


@dataclass(frozen=True, slots=True)
class ItemFilter:
    """What a principal may see: ``allows(attrs)`` for one item, ``mask(table)`` for all of them,
    both the same compiled policy; ``key`` names it for the engine's cache of allowed sets."""

    key: tuple[str, str]
    allows: Callable[[Mapping[str, Any]], bool]
    mask: Callable[[Any], np.ndarray]


WriteHook = Callable[[int], None]  # runs inside the write's transaction with the count; raising rolls back


class CollectionPort(Protocol):
    """What the gate needs from a stored collection (the store's ``CollectionOps`` implements it).

    Every method takes the store's readers-writer lock itself: a read sees one committed version,
    and a write checks visibility and commits under one exclusive hold.
    """

    @property
    def name(self) -> str: ...

    @property
    def bits(self) -> int: ...

    @property
    def policy_source(self) -> str | None: ...

    def size(self) -> int: ...

    def check_writable(self) -> None: ...

    def encode_query(self, query: Query) -> np.ndarray:
        """The packed raw code (bits // 8,) of a query (runs the encoder for raw media)."""
        ...

    def check_codes(self, codes: Any) -> np.ndarray:
        """Packed query codes (n, bits // 8) checked for shape and dtype."""
        ...

    def salted(self, raw: np.ndarray) -> bytes:
        """A query code in the collection's salted space (what the monitor logs)."""
        ...

    def prepare(self, raw: np.ndarray) -> np.ndarray:
        """Raw query codes (n, bits // 8) in the collection's salted space (what is searched and logged)."""
        ...

    def search(
        self, prepared: np.ndarray, k: int, *, modality: str | None, visible: ItemFilter | None
    ) -> list[list[Hit]]:
        """Per query of :meth:`prepare`'s output, the top ``k`` hits the filter lets through."""
        ...

    def get(self, ids: Sequence[str | int], *, visible: ItemFilter | None) -> list[Hit]: ...

    def ids(self, *, visible: ItemFilter | None) -> list[str | int]: ...

    def add(
        self, items: Sequence[Item], *, store_content: bool, visible: ItemFilter | None, audit: WriteHook
    ) -> int: ...

    def upsert(
        self, items: Sequence[Item], *, store_content: bool, visible: ItemFilter | None, audit: WriteHook
    ) -> int: ...

    def delete(
        self,
        ids: Sequence[str | int] | None,
        where: Mapping[str, Any] | None,
        *,
        by: str | None,
        visible: ItemFilter | None,
        audit: WriteHook,
    ) -> int: ...

    def hold(
        self, ids: Sequence[str | int], on: bool, *, visible: ItemFilter | None, audit: WriteHook
    ) -> int: ...


class MonitorPort(Protocol):
    """The query monitor's hooks around a search (the store's ``StoreMonitor``)."""

    def before_search(self, principal: str, k: int) -> int: ...

    def after_search(
        self,
        principal: str,
        *,
        collection: str,
        k: int,
        code: bytes,
        result_ids: Sequence[object] = (),
        scores: Sequence[float] = (),
        collection_size: int = 0,
        bits: int = 0,
        tenant: str | None = None,
        denied: bool = False,
        reason: str | None = None,
    ) -> Any: ...

"""The typed call surface shared by the operator's ``Collection`` and a session's
``GuardedCollection``: each method builds one :class:`Request` and hands it to the gate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._types import Hit, Item
from ._gate import Gate, Principal
from ._request import CollectionPort, Query, Request

__all__ = ["CollectionView"]


class CollectionView:
    """Search, add, read, delete and hold items of one collection as one principal.

    Every call is authenticated, validated, authorised, guarded, audited (exactly one record) and
    observed by the gate; nothing here can skip a step.
    """

    def __init__(self, gate: Gate, port: CollectionPort, name: str, principal: Principal) -> None:
        self._gate = gate
        self._port = port
        self._principal = principal
        self.name = name

    def _run(self, req: Request) -> Any:
        return self._gate.run(self._principal, self._port, self.name, req)

    @property
    def bits(self) -> int:
        return self._port.bits

    @property
    def policy(self) -> str | None:
        """The record-level policy source given at creation (enforced on every session call)."""
        return self._port.policy_source

    # ------------------------------------------------------------------ reads
    def search(
        self,
        *,
        text: str | None = None,
        image: Any = None,
        video: Any = None,
        vector: Any = None,
        code: Any = None,
        k: int = 10,
        modality: str | None = None,
        query_modality: str = "text",
        where: str | None = None,
    ) -> list[Hit]:
        """The ``k`` nearest items the caller may see, by minimum Hamming distance over their codes;
        ties go to the item added first. Give exactly one query; ``modality`` restricts matches to
        codes of one modality; ``where`` (a policy expression over ``item.*``, e.g.
        ``"item.site == 'north' and item.year >= 2024"``) keeps only matching items. It is ANDed
        with the collection's and role's policies, so it narrows what the caller may see and never
        widens it."""
        given = [
            Query(kind, value, query_modality)  # type: ignore[arg-type]
            for kind, value in (
                ("text", text),
                ("image", image),
                ("video", video),
                ("vector", vector),
                ("code", code),
            )
            if value is not None
        ]
        query = given[0] if len(given) == 1 else None
        result: list[Hit] = self._run(Request("search", query=query, k=k, modality=modality, filter=where))
        return result

    def search_batch(
        self, *, codes: Any, k: int = 10, modality: str | None = None, where: str | None = None
    ) -> list[list[Hit]]:
        """Search many packed query codes (n, bits // 8) at once; one audit record for the batch.
        ``where`` filters as in :meth:`search`."""
        result: list[list[Hit]] = self._run(
            Request("search_batch", codes=codes, k=k, modality=modality, filter=where)
        )
        return result

    def get(self, item_id: str | int) -> Hit:
        """The stored record of one item (labels, attrs, ref) as a Hit with score 1; an item the
        caller may not see reads exactly like a missing one (ItemNotFoundError)."""
        hits: list[Hit] = self._run(Request("get", ids=[item_id]))
        return hits[0]

    def ids(self, *, where: str | None = None) -> list[str | int]:
        """The ids of the items the caller may see (and ``where`` admits), in insertion order."""
        result: list[str | int] = self._run(Request("ids", filter=where))
        return result

    # ------------------------------------------------------------------ writes
    def add(self, items: Iterable[Item] | Item, *, store_content: bool = False) -> int:
        """Add items in one transaction (all or nothing); returns the number added. A bad item
        refuses the whole batch, naming its position. Raw text is kept (sealed) only with
        ``store_content=True``; images and video never are, only their ``ref``."""
        added: int = self._run(Request("add", items=items, store_content=store_content))
        return added

    def upsert(self, items: Iterable[Item] | Item, *, store_content: bool = False) -> int:
        """Add items, replacing stored items of the same ids (their old codes and payloads go), in
        one transaction; returns the number written. Needs the add and delete permissions; an id
        that names an item outside the caller's policy refuses the batch."""
        written: int = self._run(Request("upsert", items=items, store_content=store_content))
        return written

    def delete(
        self,
        ids: Iterable[str | int] | str | int | None = None,
        *,
        where: Mapping[str, Any] | None = None,
        by: str | None = None,
    ) -> int:
        """Delete by id (ItemNotFoundError if any is unknown or hidden; nothing deleted) or by
        attribute equality filter ``where``. Deleted rows are gone from search at once;
        ``store.compact()`` scrubs them from the files and issues the erasure receipt, which names
        ``by`` (default: the caller)."""
        deleted: int = self._run(Request("delete", ids=ids, where=where, by=by))
        return deleted

    def hold(self, ids: Iterable[str | int] | str | int) -> int:
        """Put items under legal hold: exempt from TTL purges and refused by delete; returns how
        many (an item the caller may not see reads exactly like a missing one)."""
        held: int = self._run(Request("hold", ids=ids))
        return held

    def release(self, ids: Iterable[str | int] | str | int) -> int:
        """Release a legal hold; returns how many."""
        released: int = self._run(Request("release", ids=ids))
        return released

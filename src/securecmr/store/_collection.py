"""The public :class:`Collection`: add, search, delete, legal hold (delegates to the engine)."""

from __future__ import annotations

import contextlib
import gc
import operator
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigurationError, EmptyInputError, ShapeError
from ._encode import Encoders
from ._engine import CollectionEngine
from ._types import MODALITIES, Hit, Item

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["Collection"]

_QUERY_KEYS = ("text", "image", "video", "vector", "code")
_GC_PAUSE_ITEMS = 10_000
_ITEM_FIELDS = operator.attrgetter(
    "id", "codes", "vectors", "text", "image", "video", "labels", "attrs", "ref"
)


class Collection:
    """A named collection of items in one Hamming space. Get it from ``store.collection(name)``."""

    def __init__(self, store: Store, engine: CollectionEngine, encoders: Encoders) -> None:
        self._store = store
        self._engine = engine
        self._encoders = encoders
        self.name = engine.name

    def __repr__(self) -> str:
        return (
            f"Collection({self.name!r}, bits={self.bits}, protection={self.protection!r}, items={len(self)})"
        )

    def __len__(self) -> int:
        return len(self._engine)

    @property
    def bits(self) -> int:
        return self._engine.bits

    @property
    def version(self) -> tuple[str, int] | None:
        """Changes on every add and delete (record-level policy masks are cached by it)."""
        v = getattr(self._engine, "version", None)
        return None if v is None else (self._engine.cid, int(v))

    @property
    def protection(self) -> str:
        return self._engine.protection

    @property
    def ttl_hours(self) -> float | None:
        ttl = self._engine.config.get("ttl_hours")
        return None if ttl is None else float(ttl)

    @property
    def policy(self) -> str | None:
        """The record-level policy source given at creation (enforced by sessions)."""
        return self._engine.config.get("policy")

    @property
    def hasher(self) -> Any:
        return self._encoders.hasher

    def id_hmac(self, item_id: str | int) -> str:
        """The keyed HMAC (hex) under which ``item_id`` is stored."""
        return self._engine.id_hmac(item_id).hex()

    # ------------------------------------------------------------------ add
    def add(self, items: Iterable[Item], *, store_content: bool = False, context: Any = None) -> int:
        """Add items in one transaction (all or nothing); returns the number added.

        Raw text is kept (sealed) only with ``store_content=True``; images and video never are,
        only their ``ref``.
        """
        self._store._check_writable()
        items = list(items)
        if not items:
            raise EmptyInputError("empty batch: give at least one item")
        with _gc_paused(len(items) >= _GC_PAUSE_ITEMS), self._store._writing():
            return self._add(items, store_content=store_content, context=context)

    def _add(self, items: list[Item], *, store_content: bool, context: Any) -> int:
        if not set(map(type, items)) <= {Item} and not all(isinstance(it, Item) for it in items):
            raise ConfigurationError("add() takes securecmr.Item objects")
        ids: list[Any] = []
        metas: list[dict[str, Any] | None] = []
        given: dict[str, tuple[list[int], list[Any]]] = {}  # modality -> (item positions, codes)
        slow: list[int] = []  # items with vectors or raw content to encode
        add_id, add_meta = ids.append, metas.append
        for i, (item_id, codes, vectors, text, image, video, labels, attrs, ref) in enumerate(
            map(_ITEM_FIELDS, items)
        ):
            add_id(item_id)
            if codes:
                for m, c in codes.items():
                    col = given.get(m)
                    if col is None:
                        col = given[m] = ([], [])
                    col[0].append(i)
                    col[1].append(c)
            if vectors or text is not None or image is not None or video is not None:
                slow.append(i)
            if labels or attrs or ref is not None or (store_content and text is not None):
                meta: dict[str, Any] = {
                    "labels": [str(x) for x in labels] if labels else [],
                    "attrs": dict(attrs) if attrs else {},
                    "ref": ref,
                }
                if store_content and text is not None:
                    meta["text"] = text
                add_meta(meta)
            else:
                add_meta(None)  # no payload
        columns = {m: self._code_column(_modality(m), *col) for m, col in given.items()}
        if slow:
            self._encode_slow(items, slow, columns)
        now = self._store._now()
        self._store._purge_collection(self._engine, now)
        added = self._engine.add_columns(ids, columns, metas, now=now, ttl_hours=self.ttl_hours)
        if context is None:  # operator call (sessions audit their own calls)
            self._store._audit_op("add", collection=self.name, result_ids=ids, detail={"count": added})
        return added

    def _code_column(self, modality: str, pos: list[int], codes: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """(positions, packed codes (n, bits // 8)) of precomputed codes, checked in one go."""
        nb = self.bits // 8
        try:
            arr = np.asarray(codes)
        except ValueError:  # ragged
            arr = np.zeros(0)
        if arr.dtype != np.uint8 or arr.ndim < 2 or arr.shape[0] != len(codes) or arr[0].size != nb:
            arr = np.stack([self._encoders.code(modality, code=c) for c in codes])  # names the bad one
        return np.asarray(pos, dtype=np.int64), arr.reshape(len(codes), nb)

    def _encode_slow(
        self, items: list[Item], slow: list[int], columns: dict[str, tuple[np.ndarray, np.ndarray]]
    ) -> None:
        """Codes from vectors (per item) and from raw text/image/video (batched per modality), for
        the modalities an item does not already have a code for."""
        have = {m: set(col[0].tolist()) for m, col in columns.items()}
        extra: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        raw_batches: dict[str, list[int]] = {m: [] for m in MODALITIES}
        for i in slow:
            it = items[i]
            for m, v in (it.vectors or {}).items():
                if i not in have.get(_modality(m), ()):
                    col = extra.setdefault(m, ([], []))
                    col[0].append(i)
                    col[1].append(self._encoders.code(m, vector=v))
                    have.setdefault(m, set()).add(i)
            for m in MODALITIES:
                if getattr(it, m) is not None and i not in have.get(m, ()):
                    raw_batches[m].append(i)
        for m, idx in raw_batches.items():
            if idx:
                enc = self._encoders.codes_for(m, [getattr(items[i], m) for i in idx])
                col = extra.setdefault(m, ([], []))
                col[0].extend(idx)
                col[1].extend(np.asarray(enc, dtype=np.uint8).reshape(len(idx), -1))
        nb = self.bits // 8
        for m, (pos, codes) in extra.items():
            mat = np.asarray(codes, dtype=np.uint8).reshape(len(pos), nb)
            if m in columns:
                old_pos, old_codes = columns[m]
                columns[m] = (
                    np.concatenate([old_pos, np.asarray(pos, dtype=np.int64)]),
                    np.concatenate([old_codes, mat]),
                )
            else:
                columns[m] = (np.asarray(pos, dtype=np.int64), mat)

    # ------------------------------------------------------------------ search
    def query_code(
        self,
        *,
        text: str | None = None,
        image: Any = None,
        video: Any = None,
        vector: Any = None,
        code: Any = None,
        query_modality: str = "text",
        salted: bool = False,
    ) -> np.ndarray:
        """The packed code of a query; ``salted=True`` gives it in the collection's salted space."""
        if code is not None and text is None and image is None and video is None and vector is None:
            raw = self._encoders.code("text", code=code).reshape(1, -1)  # precomputed: the common path
            return self._engine.prepare_queries(raw)[0] if salted else raw[0]
        given = {
            k: v
            for k, v in (
                ("text", text),
                ("image", image),
                ("video", video),
                ("vector", vector),
                ("code", code),
            )
            if v is not None
        }
        if len(given) != 1:
            raise ConfigurationError("give exactly one of text=, image=, video=, vector=, code=")
        ((kind, value),) = given.items()
        if kind == "code":
            raw = self._encoders.code("text", code=value)
        elif kind == "vector":
            raw = self._encoders.code(_modality(query_modality), vector=value)
        else:
            if kind == "text" and (not isinstance(value, str) or not value.strip()):
                raise EmptyInputError("empty text query")
            raw = self._encoders.codes_for(kind, [value])[0]
        raw = raw.reshape(1, -1)
        return self._engine.prepare_queries(raw)[0] if salted else raw[0]

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
        context: Any = None,
    ) -> list[Hit]:
        """The ``k`` nearest items by minimum Hamming distance over their codes; ties go to the item
        added first. ``modality`` restricts matches to codes of one modality."""
        if code is not None and text is None and image is None and video is None and vector is None:
            if not isinstance(k, int) or k < 0:
                raise ConfigurationError("k must be a non-negative integer")
            engine = self._engine  # one precomputed code: the short path
            raw = self._encoders.code("text", code=code).reshape(1, -1)
            mod = None if modality is None else MODALITIES.index(_modality(modality))
            hits = engine.hits(engine.search_codes(engine.prepare_queries(raw), k, modality=mod)[0])
        else:
            q = self.query_code(
                text=text, image=image, video=video, vector=vector, code=code, query_modality=query_modality
            )
            hits = self._search([q], k, modality=modality)[0]
        if context is None:  # operator call (sessions audit their own calls)
            query = next(v for v in (text, image, video, vector, code) if v is not None)
            self._store._audit_op(
                "search", collection=self.name, query=query, result_ids=[h.id for h in hits], detail={"k": k}
            )
        return hits

    def search_batch(
        self, *, codes: Any, k: int = 10, modality: str | None = None, context: Any = None
    ) -> list[list[Hit]]:
        """Search many packed codes at once (vectorised; the fast path for bulk queries)."""
        arr = np.asarray(codes)
        if arr.ndim != 2 or arr.dtype != np.uint8:
            raise ShapeError(f"codes must be a packed uint8 array of shape (n, {self.bits // 8})")
        if arr.shape[0] == 0:
            raise EmptyInputError("empty batch of query codes")
        return self._search(list(arr), k, modality=modality)

    def search_allowed(
        self,
        allowed_rows: Any,
        *,
        k: int = 10,
        modality: str | None = None,
        query_modality: str = "text",
        **query: Any,
    ) -> list[Hit]:
        """Like :meth:`search`, restricted to rows of :meth:`attribute_rows` (used by sessions)."""
        q = self.query_code(
            query_modality=query_modality, **{k_: v for k_, v in query.items() if k_ in _QUERY_KEYS}
        )
        seqs = self._row_seqs()[np.asarray(allowed_rows, dtype=np.int64)]
        return self._search([q], k, modality=modality, allowed=seqs)[0]

    def _row_seqs(self) -> np.ndarray:
        return self._engine.live_seqs()

    def attribute_rows(self) -> tuple[Any, list[Any]]:
        """(AttributeTable of every item's attrs, ids) in row order, for record-level policies."""
        from ..access import AttributeTable

        seqs = self._engine.all_seqs()
        metas = self._engine.metas(seqs)
        table = AttributeTable()
        table.append([metas.get(s, {}).get("attrs", {}) for s in seqs])
        return table, self._engine.item_ids(seqs)

    def _search(
        self,
        queries: list[np.ndarray],
        k: int,
        *,
        modality: str | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[list[Hit]]:
        if not isinstance(k, int) or k < 0:
            raise ConfigurationError("k must be a non-negative integer")
        salted = self._engine.prepare_queries(np.asarray(queries, dtype=np.uint8))
        mod = None if modality is None else MODALITIES.index(_modality(modality))
        results = self._engine.search_codes(salted, k, allowed=allowed, modality=mod)
        return [self._engine.hits(r) for r in results]

    # ------------------------------------------------------------------ read / delete / hold
    def get(self, item_id: str | int) -> Hit:
        """The stored record of one item (labels, attrs, ref) as a Hit with score 1."""
        (seq,) = self._engine.seqs_for_ids([item_id])
        meta = self._engine.metas([seq])[seq]
        return Hit(
            id=item_id,
            score=1.0,
            distance=0,
            modality="",
            labels=tuple(meta.get("labels", ())),
            attrs=dict(meta.get("attrs", {})),
            ref=meta.get("ref"),
        )

    def ids(self) -> list[Any]:
        return self._engine.item_ids(self._engine.all_seqs())

    def delete(
        self,
        ids: Iterable[str | int] | str | int | None = None,
        *,
        where: Mapping[str, Any] | None = None,
        by: str | None = None,
        context: Any = None,
    ) -> int:
        """Delete by id (ItemNotFoundError if any is unknown; nothing deleted) or by attribute
        equality filter ``where``. Deleted rows are gone from search at once; ``store.compact()``
        scrubs them from the files and issues the erasure receipt."""
        with self._store._writing():
            return self._delete(ids, where, by, context)

    def _delete(
        self,
        ids: Iterable[str | int] | str | int | None,
        where: Mapping[str, Any] | None,
        by: str | None,
        context: Any,
    ) -> int:
        if (ids is None) == (where is None):
            raise ConfigurationError("give ids or where=, not both")
        if ids is not None:
            ids = [ids] if isinstance(ids, str | int) else list(ids)
            if not ids:
                raise EmptyInputError("empty list of ids")
            seqs = self._engine.seqs_for_ids(ids)
        else:
            all_seqs = self._engine.all_seqs()
            metas = self._engine.metas(all_seqs)
            seqs = [
                s
                for s in all_seqs
                if all(
                    metas.get(s, {}).get("attrs", {}).get(key) == val for key, val in (where or {}).items()
                )
            ]
        deleted = self._engine.delete_seqs(seqs, now=self._store._now(), by=by)
        if context is None:  # operator call (sessions audit their own calls)
            self._store._audit_op(
                "delete",
                collection=self.name,
                result_ids=list(ids or ()),
                detail={"count": deleted, "where": where is not None},
            )
        return deleted

    def hold(self, ids: Iterable[str | int]) -> None:
        """Put items under legal hold: exempt from TTL purges and refused by delete."""
        with self._store._writing():
            self._engine.set_hold(self._engine.seqs_for_ids(list(ids)), True)

    def release(self, ids: Iterable[str | int]) -> None:
        """Release a legal hold."""
        with self._store._writing():
            self._engine.set_hold(self._engine.seqs_for_ids(list(ids)), False)


@contextlib.contextmanager
def _gc_paused(pause: bool) -> Iterator[None]:
    """Pause the cyclic garbage collector during a bulk add: the batch allocates millions of
    short-lived objects and each collection would walk all of them (nothing cyclic is made)."""
    was = gc.isenabled()
    if pause and was:
        gc.disable()
    try:
        yield
    finally:
        if pause and was:
            gc.enable()


def _modality(m: str) -> str:
    if m not in MODALITIES:
        raise ConfigurationError(f"unknown modality {m!r}; use one of {MODALITIES}")
    return m

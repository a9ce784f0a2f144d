"""One collection's side of the gate: encode, check and run calls on the engine under the store's
readers-writer lock (implements ``securecmr.access.CollectionPort``)."""

from __future__ import annotations

import contextlib
import gc
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._types import MODALITIES, Hit, Item
from .._validate import check_modality
from ..access import ItemFilter, Query
from ..errors import (
    ConfigurationError,
    DuplicateItemError,
    EmptyInputError,
    ItemNotFoundError,
    PermissionDeniedError,
    ShapeError,
)
from ._encode import Encoders
from ._engine import CollectionEngine
from ._lock import StoreLock

__all__ = ["CollectionOps"]

_GC_PAUSE_ITEMS = 10_000
_ITEM_FIELDS = operator.attrgetter(
    "id", "codes", "vectors", "text", "image", "video", "labels", "attrs", "ref"
)


class CollectionOps:
    """The engine-facing half of a collection: every method holds the store's lock itself."""

    def __init__(
        self,
        engine: CollectionEngine,
        encoders: Encoders,
        lock: StoreLock,
        *,
        now: Callable[[], float],
        check_writable: Callable[[], None],
        purge: Callable[[CollectionEngine, float], int],
        check_open: Callable[[], None] | None = None,
    ) -> None:
        self._check_open = check_open or (lambda: None)
        self.engine = engine
        self.encoders = encoders
        self.lock = lock
        self._now = now
        self._check_writable = check_writable
        self._purge = purge

    def __repr__(self) -> str:
        return f"CollectionOps({self.engine.name!r})"

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def bits(self) -> int:
        return self.engine.bits

    @property
    def policy_source(self) -> str | None:
        src = self.engine.config.get("policy")
        return None if src is None else str(src)

    @property
    def ttl_hours(self) -> float | None:
        ttl = self.engine.config.get("ttl_hours")
        return None if ttl is None else float(ttl)

    @property
    def directory(self) -> Path:
        """The store directory (ingest keeps its job journal there)."""
        if self.engine.directory is None:
            raise ConfigurationError("this collection has no store directory")
        return self.engine.directory

    def size(self) -> int:
        self._check_open()
        return len(self.engine)

    def check_writable(self) -> None:
        self._check_writable()

    # ------------------------------------------------------------------ queries
    def encode_query(self, query: Query) -> np.ndarray:
        self._check_open()
        enc = self.encoders
        if query.kind == "code":
            return enc.code("text", code=query.value)
        if query.kind == "vector":
            return enc.code(check_modality(query.query_modality, MODALITIES), vector=query.value)
        if query.kind == "text" and (not isinstance(query.value, str) or not query.value.strip()):
            raise EmptyInputError("empty text query")
        return np.asarray(enc.codes_for(query.kind, [query.value])[0], dtype=np.uint8)

    def check_codes(self, codes: Any) -> np.ndarray:
        self._check_open()
        arr = np.asarray(codes)
        nb = self.bits // 8
        if arr.ndim != 2 or arr.dtype != np.uint8 or arr.shape[1] != nb:
            raise ShapeError(f"codes must be a packed uint8 array of shape (n, {nb})")
        if arr.shape[0] == 0:
            raise EmptyInputError("empty batch of query codes")
        return np.ascontiguousarray(arr)

    def salted(self, raw: np.ndarray) -> bytes:
        return self.engine.prepare_queries(np.asarray(raw, dtype=np.uint8).reshape(1, -1))[0].tobytes()

    def prepare(self, raw: np.ndarray) -> np.ndarray:
        return self.engine.prepare_queries(raw)

    def search(
        self, prepared: np.ndarray, k: int, *, modality: str | None, visible: ItemFilter | None
    ) -> list[list[Hit]]:
        self._check_open()
        engine = self.engine
        mod = None if modality is None else MODALITIES.index(check_modality(modality, MODALITIES))
        salted = prepared
        with self.lock.read():
            subset = None
            if visible is not None:
                subset = engine.subset(visible.key, visible.mask, mod)
            elif mod is not None:
                subset = engine.subset(("modality", ""), None, mod)
            results = engine.search_codes(salted, k, subset=subset)
            return [engine.hits(r) for r in results]

    # ------------------------------------------------------------------ reads
    def _visible_seqs(self, ids: Sequence[str | int], visible: ItemFilter | None) -> list[int]:
        """The items' sequence numbers; ItemNotFoundError for a missing or hidden one (the same
        error, so a policy-bound caller cannot tell them apart). Call with the lock held."""
        seqs = self.engine.seqs_for_ids(ids)
        if visible is not None:
            metas = self.engine.metas(seqs)
            for s in seqs:
                if not visible.allows((metas.get(s) or {}).get("attrs") or {}):
                    raise ItemNotFoundError(
                        "no such item in this collection; check the id (nothing was changed)"
                    )
        return seqs

    def get(self, ids: Sequence[str | int], *, visible: ItemFilter | None) -> list[Hit]:
        self._check_open()
        with self.lock.read():
            seqs = self._visible_seqs(ids, visible)
            metas = self.engine.metas(seqs)
        out = []
        for item_id, s in zip(ids, seqs, strict=True):
            meta = metas.get(s) or {}
            out.append(
                Hit(
                    id=item_id,
                    score=1.0,
                    distance=0,
                    modality="",
                    labels=tuple(meta.get("labels", ())),
                    attrs=dict(meta.get("attrs") or {}),
                    ref=meta.get("ref"),
                )
            )
        return out

    def ids(self, *, visible: ItemFilter | None) -> list[str | int]:
        self._check_open()
        engine = self.engine
        with self.lock.read():
            seqs = engine.all_seqs()
            if visible is not None:
                mask = np.asarray(visible.mask(engine.attribute_index()), dtype=bool)
                seqs = [s for s, ok in zip(seqs, mask.tolist(), strict=True) if ok]
            return engine.item_ids(seqs)

    # ------------------------------------------------------------------ writes
    def add(
        self,
        items: Sequence[Item],
        *,
        store_content: bool,
        visible: ItemFilter | None,
        audit: Callable[[int], None],
    ) -> int:
        if visible is not None:
            for i, it in enumerate(items):
                if not visible.allows(it.attrs):
                    raise PermissionDeniedError(
                        f"item {i}: its attrs are outside your policy; nothing was added"
                    )
        with _gc_paused(len(items) >= _GC_PAUSE_ITEMS):
            ids, columns, metas, kept = self._prepare(list(items), store_content=store_content)
            with self.lock.write():
                now = self._now()
                self._purge(self.engine, now)
                try:
                    return self.engine.add_columns(
                        ids,
                        columns,
                        metas,
                        now=now,
                        ttl_hours=self.ttl_hours,
                        before_commit=lambda: audit(len(ids)),
                        kept=kept or None,
                    )
                except DuplicateItemError:
                    raise DuplicateItemError(
                        "an id in the batch is already stored; nothing was added"
                    ) from None

    def upsert(
        self,
        items: Sequence[Item],
        *,
        store_content: bool,
        visible: ItemFilter | None,
        audit: Callable[[int], None],
    ) -> int:
        """Add items, replacing stored items of the same ids, in one transaction (all or nothing:
        a failure leaves the old items as they were)."""
        if visible is not None:
            for i, it in enumerate(items):
                if not visible.allows(it.attrs):
                    raise PermissionDeniedError(
                        f"item {i}: its attrs are outside your policy; nothing was changed"
                    )
        with _gc_paused(len(items) >= _GC_PAUSE_ITEMS):
            ids, columns, metas, kept = self._prepare(list(items), store_content=store_content)
            engine = self.engine
            with self.lock.write():
                now = self._now()
                self._purge(engine, now)
                seq_of = engine.seq_of
                old = [q for q in (seq_of.get(engine.id_hmac(i)) for i in ids) if q is not None]
                if visible is not None and old:
                    metas_old = engine.metas(old)
                    if not all(visible.allows((metas_old.get(q) or {}).get("attrs") or {}) for q in old):
                        raise PermissionDeniedError(
                            "an id in the batch names an item outside your policy; nothing was changed"
                        )
                return engine.add_columns(
                    ids,
                    columns,
                    metas,
                    now=now,
                    ttl_hours=self.ttl_hours,
                    before_commit=lambda: audit(len(ids)),
                    replace=old,
                    by="upsert",
                    kept=kept or None,
                )

    def delete(
        self,
        ids: Sequence[str | int] | None,
        where: Mapping[str, Any] | None,
        *,
        by: str | None,
        visible: ItemFilter | None,
        audit: Callable[[int], None],
    ) -> int:
        engine = self.engine
        with self.lock.write():
            if ids is not None:
                seqs = self._visible_seqs(ids, visible)
            else:
                all_seqs = engine.all_seqs()
                metas = engine.metas(all_seqs)
                cond = dict(where or {})
                seqs = []
                for s in all_seqs:
                    attrs = (metas.get(s) or {}).get("attrs") or {}
                    if all(key in attrs and attrs[key] == val for key, val in cond.items()) and (
                        visible is None or visible.allows(attrs)
                    ):
                        seqs.append(s)
            return engine.delete_seqs(
                seqs, now=self._now(), by=by, before_commit=lambda: audit(len(set(seqs)))
            )

    def hold(
        self, ids: Sequence[str | int], on: bool, *, visible: ItemFilter | None, audit: Callable[[int], None]
    ) -> int:
        with self.lock.write():
            seqs = self._visible_seqs(ids, visible)
            self.engine.set_hold(seqs, on, before_commit=lambda: audit(len(seqs)))
            return len(seqs)

    # ------------------------------------------------------------------ encoding a batch
    def _prepare(self, items: list[Item], *, store_content: bool) -> tuple[
        list[Any],
        dict[str, tuple[np.ndarray, np.ndarray]],
        list[dict[str, Any] | None],
        dict[str, tuple[np.ndarray, np.ndarray]] | None,
    ]:
        """(ids, {modality: (item positions, packed codes)}, sealed payloads, features to keep or
        None) of canonical items."""
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
                meta: dict[str, Any] = {"labels": list(labels), "attrs": attrs, "ref": ref}
                if store_content and text is not None:
                    meta["text"] = text
                add_meta(meta)
            else:
                add_meta(None)  # no payload
        columns = {m: self._code_column(check_modality(m, MODALITIES), *col) for m, col in given.items()}
        keep = bool(self.engine.config.get("keep_features", False))
        kept: dict[str, tuple[np.ndarray, np.ndarray]] | None = {} if keep else None
        if slow:
            self._encode_slow(items, slow, columns, kept)
        return ids, columns, metas, kept

    def _code_column(self, modality: str, pos: list[int], codes: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """(positions, packed codes (n, bits // 8)) of precomputed codes, checked in one go."""
        nb = self.bits // 8
        try:
            arr = np.asarray(codes)
        except ValueError:  # ragged
            arr = np.zeros(0)
        if arr.dtype != np.uint8 or arr.ndim < 2 or arr.shape[0] != len(codes) or arr[0].size != nb:
            arr = np.stack([self.encoders.code(modality, code=c) for c in codes])  # names the bad one
        return np.asarray(pos, dtype=np.int64), arr.reshape(len(codes), nb)

    def _encode_slow(
        self,
        items: list[Item],
        slow: list[int],
        columns: dict[str, tuple[np.ndarray, np.ndarray]],
        kept: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        """Codes from vectors (per item) and from raw text/image/video (batched per modality), for
        the modalities an item does not already have a code for; with ``kept``, also the features
        to keep (kind ``"<modality>:<dim>"`` -> (item positions, rows))."""
        have = {m: set(col[0].tolist()) for m, col in columns.items()}
        extra: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        raw_batches: dict[str, list[int]] = {m: [] for m in MODALITIES}
        keep_parts: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        for i in slow:
            it = items[i]
            for m, v in (it.vectors or {}).items():
                check_modality(m, MODALITIES)
                if i not in have.get(m, ()):
                    col = extra.setdefault(m, ([], []))
                    col[0].append(i)
                    col[1].append(self.encoders.code(m, vector=v))
                    have.setdefault(m, set()).add(i)
                    if kept is not None:
                        row = np.asarray(v, dtype=np.float32).reshape(1, -1)
                        part = keep_parts.setdefault(f"{m}:{row.shape[1]}", ([], []))
                        part[0].append(np.asarray([i], dtype=np.int64))
                        part[1].append(row)
            for m in MODALITIES:
                if getattr(it, m) is not None and i not in have.get(m, ()):
                    raw_batches[m].append(i)
        for m, idx in raw_batches.items():
            if idx:
                got: dict[str, np.ndarray] | None = {} if kept is not None else None
                enc = self.encoders.codes_for(m, [getattr(items[i], m) for i in idx], got)
                for kind, rows in (got or {}).items():
                    part = keep_parts.setdefault(kind, ([], []))
                    part[0].append(np.asarray(idx, dtype=np.int64))
                    part[1].append(np.asarray(rows, dtype=np.float32))
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
        if kept is not None:
            for kind, (pos_parts, row_parts) in keep_parts.items():
                kept[kind] = (np.concatenate(pos_parts), np.concatenate(row_parts))


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

"""One collection's engine: sealed row blocks in SQLite (see ``_blocks``), codes in an in-memory
exact index loaded from a sealed segment or rebuilt from the durable blocks on open. Search ranks
items by the minimum Hamming distance over their codes, ties broken by insertion order."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _encode_str
from pathlib import Path
from struct import error as struct_error
from typing import Any, Protocol

import numpy as np

from .._types import MODALITIES, Hit
from ..errors import (
    ConfigurationError,
    DecryptionError,
    DuplicateItemError,
    EmptyInputError,
    IntegrityError,
    ItemNotFoundError,
    LegalHoldError,
    ShapeError,
    StoreError,
)
from ..index import IndexBackend, make_index, row_keys, topk_rows
from ..protect._atomic import read_checked_view, write_checked
from ..protect._crypto import HmacSha256, Sealer, hkdf
from ..protect._keyring import CollectionKeys
from ..protect._salt import Salt
from ._blocks import (
    BLOCK_ROWS,
    block_aad,
    code_rows,
    pack_body,
    pack_core,
    popcount,
    unpack_body,
    unpack_core,
)
from ._db import DB_FILE
from ._features import FeatureVault, Kept
from ._roots import MOD, RootKeeper, compare

__all__ = ["CollectionEngine"]

_TAG = 16
_EMPTY_META: dict[str, Any] = {}
_JSON = {"separators": (",", ":")}


class AttributeIndex(Protocol):
    """Item attributes column-wise in live-item order, for record-level policies (the access
    layer's ``AttributeTable``; the store hands the engine its factory)."""

    def __len__(self) -> int: ...

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None: ...

    def take(self, rows: np.ndarray) -> AttributeIndex: ...


@dataclass(frozen=True)
class Subset:
    """The index rows one search may return (an authorised set, a modality, or both), built for
    one version of the collection: ``rows`` (sorted index rows), ``seqs`` (their items), and
    either a packed copy of their codes (``index``, for a selective set), a row mask over the full
    index (``mask``, for a permissive one), or neither (the backend filters, ``pushdown``)."""

    version: int
    rows: np.ndarray
    seqs: np.ndarray
    modality: int | None
    index: IndexBackend | None
    mask: np.ndarray | None

    @property
    def fraction(self) -> float:
        return 1.0 if self.mask is None else float(self.rows.size) / max(1, self.mask.size)


_DENSE = 0.5  # a subset with at least this fraction of the rows searches the full index, filtered
_SUBSET_CACHE = 32


class CollectionEngine:
    """All state and I/O of one collection (the facade and access layers sit above).

    Not thread-safe by itself: the store holds a readers-writer lock around every call, so a
    search sees one committed version (before or after a concurrent write, never a mix)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        store_id: str,
        cid: str,
        name: str,
        config: dict[str, Any],
        keys: CollectionKeys,
        *,
        backend: str = "faiss",
        directory: Path | None = None,
        index_options: dict[str, Any] | None = None,
        attributes: Callable[[], AttributeIndex] | None = None,
        keys_source: Callable[[], CollectionKeys] | None = None,
        roots: RootKeeper | None = None,
        exclusive: bool = False,
    ) -> None:
        self.directory = directory
        self._backend, self._index_options = backend, index_options
        self._keys_source = keys_source
        self._reload_needed = False
        self._roots = roots
        self._exclusive = exclusive  # the caller holds the store exclusively while we load
        self._root: dict[str, Any] | None = None  # the sealed root this process last verified
        self._next_roots: dict[str, dict[str, Any]] | None = None
        self.conn, self.store_id, self.cid, self.name, self.config = conn, store_id, cid, name, config
        self.bits = int(config["bits"])
        self.protection = str(config["protection"])
        self.encrypted = "encrypted" in self.protection
        self.keys = keys
        self._hmac = HmacSha256(hkdf(keys.salt, "securecmr/id-hmac"))
        self.salt = Salt(keys.salt, self.bits) if "salted" in self.protection else None
        self.index = make_index(backend, self.bits, **(index_options or {}))
        self.code_seq = np.zeros(0, dtype=np.int64)  # per index row: the item's sequence number
        self.code_mod = np.zeros(0, dtype=np.int8)  # per index row: the code's modality
        self._ids: list[Any] = []  # item id by sequence number (None where there is no item)
        self._live = np.zeros(0, dtype=np.int64)  # sequence numbers of stored items, ascending
        self._seq_of: dict[bytes, int] = {}
        self._hm_chunks: list[tuple[bytes, np.ndarray]] = []  # (packed id HMACs, seqs) not in _seq_of yet
        self._bids = np.zeros(0, dtype=np.int64)  # first sequence number of each block, ascending
        self._spans = np.zeros(0, dtype=np.int64)
        self._legacy = False  # format-1 rows (one per item) present
        self.max_codes = 1
        self.version = 0  # bumped on every add/delete: access caches policy masks by it
        self._meta_cache: dict[int, dict[str, Any]] = {}
        self._hit_parts: dict[int, tuple[Any, tuple[str, ...], dict[str, Any] | None, Any]] = {}
        self.gen = 0
        self.segment_gen = -1
        self._sealers: dict[tuple[int, bytes], Sealer] = {}
        self._tags: dict[tuple[int, bytes], HmacSha256] = {}
        self._attr_factory = attributes
        self._attrs: AttributeIndex | None = None  # in live order; built on first use
        self._attr_pending: list[list[Mapping[str, Any]]] = []  # added since built, to append
        self._cache_lock = threading.Lock()  # readers share the caches below
        self._subsets: OrderedDict[Hashable, Subset] = OrderedDict()
        self._row_item: tuple[int, np.ndarray] | None = None  # (version, live position per index row)
        self.vault = FeatureVault(conn, store_id, cid, name, keys)  # kept encoder features
        self._load()
        self._exclusive = False
        if not len(self) and attributes is not None:
            self._attrs = attributes()

    def __repr__(self) -> str:
        return f"CollectionEngine({self.name!r}, bits={self.bits}, protection={self.protection!r})"

    # ------------------------------------------------------------------ other processes
    def sync(self) -> bool:
        """Reload if another process changed this collection since we loaded it (the store calls
        this under its write lock when ``PRAGMA data_version`` moved); False when its row is gone
        (the collection was dropped)."""
        row = self.conn.execute("SELECT gen FROM collections WHERE cid=?", (self.cid,)).fetchone()
        if row is None:
            return False
        if int(row[0]) != self.gen or self._reload_needed:
            self._reload()
        return True

    def force_reload(self) -> None:
        """Reload at the next sync (the keyring changed)."""
        self._reload_needed = True

    def stale(self) -> bool:
        """Whether another process changed this collection since we loaded it."""
        row = self.conn.execute("SELECT gen FROM collections WHERE cid=?", (self.cid,)).fetchone()
        return row is None or int(row[0]) != self.gen

    def _fresh_keys(self) -> bool:
        """Take the keyring's current keys for this collection; whether they changed."""
        if self._keys_source is None:
            return False
        keys = self._keys_source()
        if keys.data == self.keys.data and keys.salt == self.keys.salt:
            return False
        self.keys = keys
        self._sealers, self._tags = {}, {}
        self.vault = FeatureVault(self.conn, self.store_id, self.cid, self.name, keys)
        return True

    def _reload(self) -> None:
        """Load the collection again from the durable record (and the keyring's current keys)."""
        if self._keys_source is not None:
            self.keys = self._keys_source()
            self._hmac = HmacSha256(hkdf(self.keys.salt, "securecmr/id-hmac"))
            self.salt = Salt(self.keys.salt, self.bits) if "salted" in self.protection else None
            self.vault = FeatureVault(self.conn, self.store_id, self.cid, self.name, self.keys)
        self._clear_memory()
        self._exclusive = True  # sync runs under the store's write lock
        try:
            self._load()
        finally:
            self._exclusive = False
        self.version += 1
        if not len(self) and self._attr_factory is not None:
            self._attrs = self._attr_factory()

    def _clear_memory(self) -> None:
        self._sealers, self._tags = {}, {}
        self.index = make_index(self._backend, self.bits, **(self._index_options or {}))
        self.code_seq = np.zeros(0, dtype=np.int64)
        self.code_mod = np.zeros(0, dtype=np.int8)
        self._ids, self._seq_of, self._hm_chunks = [], {}, []
        self._meta_cache, self._hit_parts = {}, {}
        self.max_codes = 1
        self._reload_needed = False
        self._attrs, self._attr_pending = None, []
        with self._cache_lock:
            self._subsets.clear()
        self._row_item = None

    def __len__(self) -> int:
        return int(self._live.size)

    # ------------------------------------------------------------------ ids
    @property
    def seq_of(self) -> dict[bytes, int]:
        """Id HMAC -> sequence number. Loads and bulk adds only queue their HMACs; the mapping is
        built on first use (searching never needs it)."""
        if self._hm_chunks:
            table = self._seq_of
            for hm, seqs in self._hm_chunks:
                table.update(zip([hm[i : i + 32] for i in range(0, len(hm), 32)], seqs.tolist(), strict=True))
            self._hm_chunks = []
        return self._seq_of

    def id_hmac(self, item_id: Any) -> bytes:
        """The keyed HMAC under which an external id is stored."""
        return self._hmac.digest(_id_bytes(item_id))

    @property
    def id_of(self) -> Mapping[int, Any]:
        """Sequence number -> item id (a read-only view)."""
        return _IdView(self._ids, self._live)

    def item_id(self, seq: int) -> Any:
        return self._ids[seq]

    def item_ids(self, seqs: Iterable[int]) -> list[Any]:
        ids = self._ids
        return [ids[s] for s in seqs]

    # ------------------------------------------------------------------ keys and sealing
    def _aad(self, seq: int, field: str, kv: int) -> bytes:  # format-1 rows
        return f"securecmr/v1|{self.store_id}|{self.cid}|{seq}|{field}|{kv}".encode()

    def _sealer(self, kv: int) -> Sealer:
        key = self.keys.data.get(kv)
        if key is None:
            raise IntegrityError(f"{DB_FILE}: a row of collection {self.name!r} names an unknown key version")
        cached = self._sealers.get((kv, key))
        if cached is None:
            cached = self._sealers[(kv, key)] = Sealer(hkdf(key, "securecmr/rows"))
        return cached

    def _tagger(self, kv: int) -> HmacSha256:
        key = self.keys.data.get(kv)
        if key is None:
            raise IntegrityError(f"{DB_FILE}: a row of collection {self.name!r} names an unknown key version")
        cached = self._tags.get((kv, key))
        if cached is None:
            cached = self._tags[(kv, key)] = HmacSha256(hkdf(key, "securecmr/tags"))
        return cached

    def _block_aad(self, bid: int, span: int, n: int, kv: int, expires: float | None, field: str) -> bytes:
        return block_aad(self.store_id, self.cid, bid, span, n, kv, expires, field)

    def _seal_block(
        self, bid: int, span: int, n: int, kv: int, expires: float | None, core: bytes, body: bytes
    ) -> tuple[bytes, bytes]:
        sealer = self._sealer(kv)
        aad = self._block_aad(bid, span, n, kv, expires, "core")
        if self.encrypted:
            sealed_core = sealer.seal(core, aad)
        else:
            sealed_core = core + self._tagger(kv).digest(aad + core)[:_TAG]
        return sealed_core, sealer.seal(body, self._block_aad(bid, span, n, kv, expires, "body"))

    def _open_block_core(
        self, bid: int, span: int, n: int, kv: int, expires: float | None, blob: bytes
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        aad = self._block_aad(bid, span, n, kv, expires, "core")
        try:
            if self.encrypted:
                plain = self._sealer(kv).open(blob, aad)
            else:
                plain, tag = bytes(blob[:-_TAG]), bytes(blob[-_TAG:])
                if self._tagger(kv).digest(aad + plain)[:_TAG] != tag:
                    raise DecryptionError("tag mismatch")
            seqs, masks, codes = unpack_core(plain, self.bits // 8)
        except (DecryptionError, ValueError, struct_error):
            raise self._bad_block() from None
        if seqs.shape[0] != n:
            raise self._bad_block()
        return seqs, masks, codes

    def _open_block_body(
        self, bid: int, span: int, n: int, kv: int, expires: float | None, blob: bytes
    ) -> tuple[np.ndarray, bytes, bytes, bytes]:
        try:
            plain = self._sealer(kv).open(blob, self._block_aad(bid, span, n, kv, expires, "body"))
            out = unpack_body(plain)
        except (DecryptionError, ValueError, struct_error):
            raise self._bad_block() from None
        if out[0].shape[0] != n:
            raise self._bad_block()
        return out

    def _bad_block(self) -> IntegrityError:
        return IntegrityError(
            f"{DB_FILE}: a block of collection {self.name!r} does not authenticate (altered or swapped); "
            "restore a snapshot"
        )

    def _open_core(self, seq: int, kv: int, blob: bytes) -> bytes:  # format-1 rows
        if self.encrypted:
            return self._sealer(kv).open(blob, self._aad(seq, "core", kv))
        body, tag = bytes(blob[:-_TAG]), bytes(blob[-_TAG:])
        if self._tagger(kv).digest(self._aad(seq, "core", kv) + body)[:_TAG] != tag:
            raise DecryptionError("tag mismatch")
        return body

    # ------------------------------------------------------------------ segment cache
    def _segment_path(self) -> Path:
        if self.directory is None:
            raise StoreError("this engine has no directory for index segments")
        return self.directory / "index" / f"{self.cid}.seg"

    def _segment_aad(self, gen: int, kv: int) -> bytes:
        return f"securecmr/segment|{self.store_id}|{self.cid}|{gen}|{kv}".encode()

    def _hmacs_in_order(self) -> bytes:
        """The id HMACs of the stored items, in sequence order, packed."""
        if not self._seq_of:  # every HMAC is still queued, in sequence order
            return b"".join(hm for hm, _ in self._hm_chunks)
        inv = {q: h for h, q in self.seq_of.items()}
        return b"".join([inv[q] for q in self._live.tolist()])

    def save_segment(self) -> None:
        """Write the sealed index segment (codes, ids, HMACs) for the current generation."""
        if self.segment_gen == self.gen or self.directory is None:
            return
        seqs = self._live
        ids = self.item_ids(seqs.tolist())
        id_array = _int_ids(ids)  # integer ids travel as an int64 array (no JSON to parse on open)
        header = json.dumps(
            {
                "gen": self.gen,
                "n": int(seqs.size),
                "m": int(self.code_seq.size),
                "max_codes": self.max_codes,
                **({"ids": ids} if id_array is None else {"int_ids": True}),
            }
        ).encode()
        body = b"".join(
            [
                len(header).to_bytes(8, "big"),
                header,
                seqs.tobytes(),
                self._hmacs_in_order(),
                self.code_seq.tobytes(),
                self.code_mod.tobytes(),
                np.ascontiguousarray(self.index.codes()).tobytes(),
                b"" if id_array is None else id_array.tobytes(),
            ]
        )
        kv = self.keys.current
        sealed = kv.to_bytes(4, "big") + Sealer(hkdf(self.keys.data[kv], "securecmr/segment")).seal(
            body, self._segment_aad(self.gen, kv)
        )
        self._segment_path().parent.mkdir(exist_ok=True)
        write_checked(self._segment_path(), sealed)
        self.segment_gen = self.gen

    def _load_segment(self) -> bool:
        if self.directory is None:
            return False
        path = self._segment_path()
        if not path.exists():
            return False
        try:
            data = read_checked_view(path)
            kv = int.from_bytes(data[:4], "big")
            key = self.keys.data.get(kv)
            if key is None:
                return False
            body = Sealer(hkdf(key, "securecmr/segment")).open(data[4:], self._segment_aad(self.gen, kv))
        except (IntegrityError, DecryptionError):
            return False  # stale, tampered or from another generation: rebuild from the durable record
        hl = int.from_bytes(body[:8], "big")
        header = json.loads(body[8 : 8 + hl])
        n, m, nb = int(header["n"]), int(header["m"]), self.bits // 8
        off = 8 + hl
        seqs = np.frombuffer(body, np.int64, n, off).copy()
        off += 8 * n
        hm = body[off : off + 32 * n]
        off += 32 * n
        ids = header.get("ids")
        self.code_seq = np.frombuffer(body, np.int64, m, off).copy()
        off += 8 * m
        self.code_mod = np.frombuffer(body, np.int8, m, off).copy()
        off += m
        codes = np.frombuffer(body, np.uint8, m * nb, off).reshape(m, nb)
        off += m * nb
        if ids is None:
            ids = np.frombuffer(body, "<i8", n, off).tolist()
        self._set_items(seqs, ids, hm)
        self.max_codes = int(header["max_codes"])
        self._fill_index(codes)
        self.segment_gen = self.gen
        return True

    # ------------------------------------------------------------------ load
    def _set_items(self, seqs: np.ndarray, ids: list[Any], hm: bytes) -> None:
        if len(ids) != seqs.size:
            raise IntegrityError(
                f"{DB_FILE}: collection {self.name!r} lists a different number of ids and rows"
            )
        self._live = seqs
        if not seqs.size:
            self._ids = []
        elif int(seqs[-1]) - int(seqs[0]) + 1 == seqs.size:  # nothing deleted in between: one slice
            self._ids = [None] * int(seqs[0]) + list(ids)
        else:
            table = np.full(int(seqs[-1]) + 1, None, dtype=object)
            table[seqs] = np.fromiter(ids, dtype=object, count=len(ids))
            self._ids = table.tolist()
        self._seq_of, self._hm_chunks = {}, [(hm, seqs)]

    def _load_block_list(self) -> None:
        rows = self.conn.execute(
            "SELECT bid, span FROM blocks WHERE cid=? ORDER BY bid", (self.cid,)
        ).fetchall()
        arr = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
        self._bids, self._spans = arr[:, 0].copy(), arr[:, 1].copy()

    def _load(self) -> None:
        """Load the collection and check it against its sealed state root (retried when another
        process committed in the middle, so what is checked is what was loaded)."""
        if self._exclusive:  # nobody else uses the connection now: one read transaction
            self.conn.execute("BEGIN")
            try:
                self._load_rows()
                if self._check_root(self.conn):
                    return
            finally:
                self.conn.execute("COMMIT")
        for _ in range(20):
            self._load_rows()
            if self._check_root():
                return
            self._clear_memory()  # another process wrote between our reads: load again
        raise StoreError(f"collection {self.name!r} kept changing while it was loaded; retry")

    def _check_root(self, conn: sqlite3.Connection | None = None) -> bool:
        """Compare the rows (in one snapshot) with the sealed root: IntegrityError naming what
        differs; False when that snapshot is newer than what was loaded."""
        roots = self._roots
        if roots is None:
            return True
        sealed, now = roots.snapshot(self.cid, conn)
        if now is None:
            raise IntegrityError(
                f"{DB_FILE}: the row of collection {self.name!r} is missing; restore a snapshot"
            )
        if now["gen"] != self.gen:
            return False
        compare(self.name, sealed, now)
        self._root = sealed
        return True

    def _root_begin(self) -> None:
        """First step of a write's transaction: the counters and the stored root must be the ones
        this process verified (else the rows were edited while the store was open)."""
        if self._roots is None:
            return
        exp = self._root
        row = self.conn.execute("SELECT gen, next_seq FROM collections WHERE cid=?", (self.cid,)).fetchone()
        if exp is None or row is None:
            raise IntegrityError(
                f"{DB_FILE}: the row of collection {self.name!r} is missing; restore a snapshot"
            )
        if int(row[0]) != exp["gen"] or int(row[1]) != exp["next_seq"]:
            raise IntegrityError(
                f"{DB_FILE}: the counters of collection {self.name!r} were edited while the store was open "
                f"(gen {row[0]}, next_seq {row[1]}; sealed {exp['gen']}, {exp['next_seq']}); "
                "restore a snapshot"
            )
        roots = self._roots.load(self.conn)
        if roots is None or roots.get(self.cid) != exp:
            raise IntegrityError(
                f"{DB_FILE}: the sealed state of collection {self.name!r} changed outside this store; "
                "restore a snapshot"
            )
        self._next_roots = roots

    def restate_root(self) -> dict[str, Any] | None:
        """Inside a transaction that rewrote this collection's configuration or block cores (a hasher
        switch): check that the stored root is the one verified, then seal the rows as they now are.
        Returns the new root (the caller keeps it as ``_root`` once the transaction commits)."""
        if self._roots is None:
            return None
        roots = self._roots.load(self.conn)
        if roots is None or roots.get(self.cid) != self._root:
            raise IntegrityError(
                f"{DB_FILE}: the sealed state of collection {self.name!r} changed outside this store; "
                "restore a snapshot"
            )
        now = self._roots.measure(self.conn, self.cid)
        if now is None:
            raise IntegrityError(f"{DB_FILE}: the row of collection {self.name!r} is missing")
        roots[self.cid] = new = dict(now, name=self.name)
        self._roots.save(self.conn, roots)
        return new

    def _root_end(
        self,
        *,
        gen: int | None = None,
        next_seq: int | None = None,
        add_blocks: Sequence[tuple[int, int, int, int, float | None]] = (),
        drop_blocks: Sequence[tuple[int, int, int, int, float | None]] = (),
        add_holds: Sequence[int] = (),
        drop_holds: Sequence[int] = (),
        legacy: int | None = None,
    ) -> dict[str, Any] | None:
        """Last step of a write's transaction: store the new root (returned; kept after COMMIT)."""
        if self._roots is None or self._root is None or self._next_roots is None:
            return None
        r, cid, keeper = dict(self._root), self.cid, self._roots
        if gen is not None:
            r["gen"] = gen
        if next_seq is not None:
            r["next_seq"] = next_seq
        blocks = r["blocks"]
        for b in add_blocks:
            blocks += keeper.block_term(cid, *b)
        for b in drop_blocks:
            blocks -= keeper.block_term(cid, *b)
        r["blocks"], r["nblocks"] = blocks % MOD, r["nblocks"] + len(add_blocks) - len(drop_blocks)
        holds = r["holds"]
        for q in add_holds:
            holds += keeper.hold_term(cid, q)
        for q in drop_holds:
            holds -= keeper.hold_term(cid, q)
        r["holds"], r["nholds"] = holds % MOD, r["nholds"] + len(add_holds) - len(drop_holds)
        if legacy is not None:
            r["legacy"] = legacy
        roots = self._next_roots
        roots[cid] = r
        keeper.save(self.conn, roots)
        self._next_roots = None
        return r

    def _load_rows(self) -> None:
        try:
            (self.gen,) = self.conn.execute("SELECT gen FROM collections WHERE cid=?", (self.cid,)).fetchone()
            self.segment_gen = -1
            self._legacy = (
                self.conn.execute("SELECT 1 FROM items WHERE cid=? LIMIT 1", (self.cid,)).fetchone()
                is not None
            )
            self._load_block_list()
            if self._load_segment():
                return
            self._rebuild()
        except sqlite3.DatabaseError:
            raise IntegrityError(f"{DB_FILE}: the database file is corrupted; restore a snapshot") from None

    def _rebuild(self) -> None:
        """Load every item from the durable record (format-1 rows, then blocks)."""
        nb = self.bits // 8
        seq_parts: list[np.ndarray] = []
        mask_parts: list[np.ndarray] = []
        code_parts: list[np.ndarray] = []
        ids: list[Any] = []
        hms: list[bytes] = []
        if self._legacy:
            rows = self._legacy_rows(with_meta=False)
            seq_parts.append(np.asarray([r[0] for r in rows], dtype=np.int64))
            mask_parts.append(np.asarray([r[3] for r in rows], dtype=np.uint8))
            code_parts.append(np.frombuffer(b"".join(r[4] for r in rows), dtype=np.uint8).reshape(-1, nb))
            ids.extend(r[2] for r in rows)
            hms.extend(r[1] for r in rows)
        cur = self.conn.execute(
            "SELECT bid, span, n, kv, expires, core, body FROM blocks WHERE cid=? ORDER BY bid", (self.cid,)
        )
        for bid, span, n, kv, expires, core, body in cur:
            seqs, masks, codes = self._open_block_core(bid, span, n, kv, expires, core)
            bseqs, hm, ids_json, _ = self._open_block_body(bid, span, n, kv, expires, body)
            if not np.array_equal(seqs, bseqs):
                raise self._bad_block()
            seq_parts.append(seqs)
            mask_parts.append(masks)
            code_parts.append(codes)
            ids.extend(json.loads(ids_json))
            hms.append(hm)
        seqs = np.concatenate(seq_parts) if seq_parts else np.zeros(0, dtype=np.int64)
        masks = np.concatenate(mask_parts) if mask_parts else np.zeros(0, dtype=np.uint8)
        codes = np.concatenate(code_parts) if code_parts else np.zeros((0, nb), dtype=np.uint8)
        if seqs.size > 1 and not bool(np.all(np.diff(seqs) > 0)):
            raise IntegrityError(f"{DB_FILE}: collection {self.name!r} holds a row twice; restore a snapshot")
        self._set_items(seqs, ids, b"".join(hms))
        self.code_seq, self.code_mod = code_rows(seqs, masks, len(MODALITIES))
        self.max_codes = max(1, int(popcount(masks).max())) if masks.size else 1
        self._fill_index(codes)

    # ------------------------------------------------------------------ index hooks
    def _fill_index(self, codes: np.ndarray) -> None:
        """Put every code of the durable record in the index; a persistent backend (Milvus) checks
        what it already holds and rebuilds only when that is stale."""
        self.index.sync(codes, row_keys(self.code_seq, self.code_mod), self.gen)

    def _index_add(self, codes: np.ndarray, seqs: np.ndarray, mods: np.ndarray) -> None:
        self.index.add(codes, row_keys(seqs, mods) if self.index.persistent else None)

    def _index_check(self) -> None:
        check = getattr(self.index, "check_writable", None)  # an external index that is behind
        if check is not None:
            check()

    def _changed(self) -> None:
        """A write committed: a new version (subsets of the old one are dropped)."""
        self.version += 1
        self.gen += 1
        with self._cache_lock:
            self._subsets.clear()
        self.index.commit(self.gen)

    def _legacy_rows(self, *, with_meta: bool) -> list[tuple[Any, ...]]:
        """Format-1 rows, decrypted: (seq, hmac, id, mask, codes, meta, expires, hold)."""
        rows = []
        cur = self.conn.execute(
            "SELECT seq, id_hmac, rid, core, meta, kv, expires, hold FROM items WHERE cid=? ORDER BY seq",
            (self.cid,),
        )
        try:
            for seq, hm, rid, core, meta, kv, expires, hold in cur:
                sealer = self._sealer(kv)
                item_id = json.loads(sealer.open(rid, self._aad(seq, "rid", kv) + bytes(hm)))
                body = self._open_core(seq, kv, core)
                payload = json.loads(sealer.open(meta, self._aad(seq, "meta", kv))) if with_meta else None
                rows.append((seq, bytes(hm), item_id, body[0], body[1:], payload, expires, hold))
        except (DecryptionError, json.JSONDecodeError, UnicodeDecodeError):
            raise IntegrityError(
                f"{DB_FILE}: a row of collection {self.name!r} does not authenticate (altered or swapped); "
                "restore a snapshot"
            ) from None
        return rows

    def _to_blocks(self) -> None:
        """Convert this collection's format-1 rows into blocks (one transaction; writers only)."""
        if not self._legacy:
            return
        rows = self._legacy_rows(with_meta=True)
        kv = self.keys.current
        groups: list[list[tuple[Any, ...]]] = []
        for r in rows:
            if groups and len(groups[-1]) < BLOCK_ROWS and groups[-1][0][6] == r[6]:
                groups[-1].append(r)
            else:
                groups.append([r])
        inserts = []
        for g in groups:
            seqs = np.asarray([r[0] for r in g], dtype=np.int64)
            masks = np.asarray([r[3] for r in g], dtype=np.uint8)
            bid, span, n, expires = int(seqs[0]), int(seqs[-1] - seqs[0] + 1), len(g), g[0][6]
            codes = np.frombuffer(b"".join(r[4] for r in g), dtype=np.uint8).reshape(-1, self.bits // 8)
            core = pack_core(seqs, masks, codes)
            body = pack_body(
                seqs,
                b"".join(r[1] for r in g),
                json.dumps([r[2] for r in g], **_JSON).encode(),  # type: ignore[arg-type]
                json.dumps([r[5] for r in g], **_JSON).encode(),  # type: ignore[arg-type]
            )
            sc, sb = self._seal_block(bid, span, n, kv, expires, core, body)
            inserts.append((self.cid, bid, span, n, kv, expires, sc, sb))
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self._root_begin()
            held = {int(r[0]) for r in self.conn.execute("SELECT seq FROM holds WHERE cid=?", (self.cid,))}
            self.conn.executemany("INSERT INTO blocks VALUES (?,?,?,?,?,?,?,?)", inserts)
            self.conn.executemany(
                "INSERT OR IGNORE INTO holds VALUES (?,?)", [(self.cid, r[0]) for r in rows if r[7]]
            )
            self.conn.execute("DELETE FROM items WHERE cid=?", (self.cid,))
            root = self._root_end(
                add_blocks=[r[1:6] for r in inserts],
                add_holds=sorted({int(r[0]) for r in rows if r[7]} - held),
                legacy=0,
            )
            self.conn.execute("COMMIT")
            self._root = root
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self._legacy = False
        self._load_block_list()

    # ------------------------------------------------------------------ write
    def add_columns(
        self,
        ids: Sequence[Any],
        codes: Mapping[str, tuple[np.ndarray, np.ndarray]],
        metas: Sequence[dict[str, Any] | None],
        *,
        now: float,
        ttl_hours: float | None,
        before_commit: Callable[[], None] | None = None,
        replace: Iterable[int] = (),
        by: str | None = None,
        kept: Kept | None = None,
    ) -> int:
        """Insert items in one transaction (all or nothing). ``codes`` maps a modality to (item
        positions, raw packed codes (len, bits // 8)); ``metas`` are the items' sealed payloads
        (labels, attrs, ref, text), None for an item with none. ``before_commit`` runs inside the
        transaction (the audit record); if it raises, nothing is stored."""
        n = len(ids)
        if n == 0:
            raise EmptyInputError("empty batch: give at least one item")
        if len(metas) != n:
            raise ConfigurationError("one payload per item is needed")
        nb = self.bits // 8
        hmacs = self._hmac.digest_many(map(_id_bytes, ids))
        if len(set(hmacs)) != n:
            raise DuplicateItemError("the batch repeats an id; nothing was added")
        plan = None
        replaced = sorted({int(q) for q in replace})
        if replaced:  # an upsert: the stored items of these ids go in the same transaction
            plan = self._plan_delete(replaced, force=False)
        clash = bool(len(self)) and not self.seq_of.keys().isdisjoint(hmacs)
        if clash and (plan is None or not (set(hmacs) & self.seq_of.keys()) <= set(plan.erased)):
            raise DuplicateItemError("an id in the batch is already stored; nothing was added")
        masks = np.zeros(n, dtype=np.uint8)
        pos_parts, mod_parts, code_parts = [], [], []
        for j, mname in enumerate(MODALITIES):
            if mname not in codes:
                continue
            pos, mat = codes[mname]
            pos = np.asarray(pos, dtype=np.int64)
            if mat.dtype != np.uint8 or mat.ndim != 2 or mat.shape != (pos.shape[0], nb):
                raise ShapeError(
                    f"{mname} codes must be packed uint8 of shape (n, {nb}) for {self.bits} bits"
                )
            if pos.size and (pos.min() < 0 or pos.max() >= n or np.bincount(pos, minlength=n).max() > 1):
                raise ConfigurationError(f"bad item positions for {mname} codes")
            masks[pos] |= np.uint8(1 << j)
            pos_parts.append(pos)
            mod_parts.append(np.full(pos.shape[0], j, dtype=np.int8))
            code_parts.append(self.salt.apply(mat) if self.salt is not None else mat)
        unknown = set(codes) - set(MODALITIES)
        if unknown:
            raise ConfigurationError(f"unknown modality {sorted(unknown)[0]!r}; use one of {MODALITIES}")
        if not masks.all():
            raise EmptyInputError("an item has no text, image, video, vectors or codes; nothing was added")
        all_pos = np.concatenate(pos_parts)
        all_mod = np.concatenate(mod_parts)
        all_codes = np.concatenate(code_parts) if len(code_parts) > 1 else code_parts[0]
        if len(pos_parts) > 1 or (all_pos.size > 1 and not bool(np.all(np.diff(all_pos) > 0))):
            order = np.lexsort((all_mod, all_pos))  # index rows in (item, modality) order
            all_pos, all_mod, all_codes = all_pos[order], all_mod[order], all_codes[order]
        all_codes = np.ascontiguousarray(all_codes)
        try:
            ids_json = [json.dumps(list(ids[a : a + BLOCK_ROWS])).encode() for a in range(0, n, BLOCK_ROWS)]
            metas_json = [
                json.dumps(list(metas[a : a + BLOCK_ROWS]), **_JSON).encode()  # type: ignore[arg-type]
                for a in range(0, n, BLOCK_ROWS)
            ]
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"labels, attrs and ref must be JSON-serialisable ({exc})") from None
        kv = self.keys.current
        expires = None if ttl_hours is None else now + float(ttl_hours) * 3600.0
        self._index_check()  # an external index that cannot take the items refuses them here
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self._root_begin()
            if plan is not None:
                self._delete_rows(plan, now=now, by=by)
            (start,) = self.conn.execute(
                "SELECT next_seq FROM collections WHERE cid=?", (self.cid,)
            ).fetchone()
            seqs = np.arange(start, start + n, dtype=np.int64)
            bounds = np.searchsorted(all_pos, np.arange(0, n + BLOCK_ROWS, BLOCK_ROWS))
            inserts = []
            for b, a in enumerate(range(0, n, BLOCK_ROWS)):
                e = min(n, a + BLOCK_ROWS)
                core = pack_core(seqs[a:e], masks[a:e], all_codes[bounds[b] : bounds[b + 1]])
                body = pack_body(seqs[a:e], b"".join(hmacs[a:e]), ids_json[b], metas_json[b])
                bid = start + a
                sc, sb = self._seal_block(bid, e - a, e - a, kv, expires, core, body)
                inserts.append((self.cid, bid, e - a, e - a, kv, expires, sc, sb))
            self.conn.executemany("INSERT INTO blocks VALUES (?,?,?,?,?,?,?,?)", inserts)
            if kept:  # the encoder features to keep, sealed in the same transaction (see _features)
                self.conn.executemany(
                    "INSERT INTO features VALUES (?,?,?,?)", self.vault.rows_for_add(start, seqs, kept, kv)
                )
            self.conn.execute(
                "UPDATE collections SET next_seq=?, gen=gen+1 WHERE cid=?", (start + n, self.cid)
            )
            root = self._root_end(
                gen=self.gen + (2 if plan is not None else 1),
                next_seq=start + n,
                add_blocks=[*(plan.added if plan is not None else ()), *(r[1:6] for r in inserts)],
                drop_blocks=plan.dropped if plan is not None else (),
                drop_holds=plan.holds if plan is not None else (),
            )
            if before_commit is not None:
                before_commit()
            self.conn.execute("COMMIT")
            self._root = root
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        # the rows are durable: mirror them in memory
        if plan is not None:
            self._mirror_delete(plan)
        if len(self._ids) < start:
            self._ids.extend([None] * (start - len(self._ids)))
        del self._ids[start:]
        self._ids.extend(ids)
        if self._seq_of and not self._hm_chunks:
            self._seq_of.update(zip(hmacs, seqs.tolist(), strict=True))
        else:
            self._hm_chunks.append((b"".join(hmacs), seqs))
        self._live = np.concatenate([self._live, seqs])
        self._bids = np.concatenate([self._bids, np.arange(start, start + n, BLOCK_ROWS, dtype=np.int64)])
        self._spans = np.concatenate(
            [self._spans, np.diff(np.append(np.arange(0, n, BLOCK_ROWS), n)).astype(np.int64)]
        )
        self.max_codes = max(self.max_codes, int(popcount(masks).max()))
        self._index_add(all_codes, seqs[all_pos], all_mod)
        self.code_seq = np.concatenate([self.code_seq, seqs[all_pos]])
        self.code_mod = np.concatenate([self.code_mod, all_mod])
        if self._attrs is not None:
            self._attr_pending.append([(m or _EMPTY_META).get("attrs") or _EMPTY_META for m in metas])
        self._changed()
        return n

    def _fetch_blocks(self, bids: Iterable[int], columns: str) -> list[tuple[Any, ...]]:
        bids = sorted(set(int(b) for b in bids))
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(bids), 500):
            chunk = bids[i : i + 500]
            q = (
                f"SELECT bid, span, n, kv, expires, {columns} FROM blocks WHERE cid=? "
                f"AND bid IN ({','.join('?' * len(chunk))})"
            )
            out += self.conn.execute(q, (self.cid, *chunk)).fetchall()
        return out

    def _blocks_of(self, seqs: np.ndarray) -> np.ndarray:
        """The block (its bid) holding each sequence number; -1 where none does."""
        pos = np.searchsorted(self._bids, seqs, side="right") - 1
        ok = pos >= 0
        ok[ok] &= seqs[ok] < self._bids[pos[ok]] + self._spans[pos[ok]]
        return np.where(ok, self._bids[np.maximum(pos, 0)] if self._bids.size else -1, -1)

    def delete_seqs(
        self,
        seqs: Iterable[int],
        *,
        now: float,
        by: str | None,
        force: bool = False,
        before_commit: Callable[[], None] | None = None,
    ) -> int:
        """Delete items in one transaction; ``before_commit`` runs inside it (see add_columns)."""
        seqs = sorted({int(s) for s in seqs})
        if not seqs:
            if before_commit is not None:
                before_commit()
            return 0
        plan = self._plan_delete(seqs, force=force)
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self._root_begin()
            self._delete_rows(plan, now=now, by=by)
            root = self._root_end(
                gen=self.gen + 1, add_blocks=plan.added, drop_blocks=plan.dropped, drop_holds=plan.holds
            )
            if before_commit is not None:
                before_commit()
            self.conn.execute("COMMIT")
            self._root = root
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self._mirror_delete(plan)
        return len(seqs)

    def _plan_delete(self, seqs: list[int], *, force: bool) -> _DeletePlan:
        """The re-sealed blocks, removed blocks and erased HMACs that deleting ``seqs`` (sorted,
        distinct) takes; nothing is written."""
        self._to_blocks()
        holds = self._held(seqs)
        if holds and not force:
            raise LegalHoldError(
                f"{len(holds)} item(s) are under legal hold; release them first (nothing deleted)"
            )
        gone_seqs = np.asarray(seqs, dtype=np.int64)
        bids = self._blocks_of(gone_seqs)
        if (bids < 0).any():
            raise IntegrityError(
                f"{DB_FILE}: an item of collection {self.name!r} has no block; restore a snapshot"
            )
        kv_new = self.keys.current
        updates, removals, erased = [], [], []
        dropped: list[tuple[int, int, int, int, float | None]] = []
        added: list[tuple[int, int, int, int, float | None]] = []
        for bid, span, n, kv, expires, core, body in self._fetch_blocks(bids.tolist(), "core, body"):
            bseqs, masks, codes = self._open_block_core(bid, span, n, kv, expires, core)
            bseqs2, hm, ids_json, metas_json = self._open_block_body(bid, span, n, kv, expires, body)
            if not np.array_equal(bseqs, bseqs2):
                raise self._bad_block()
            gone = np.isin(bseqs, gone_seqs)
            erased += [bytes(hm[32 * i : 32 * i + 32]) for i in np.flatnonzero(gone).tolist()]
            keep = ~gone
            if not keep.any():
                removals.append((self.cid, bid))
                dropped.append((bid, span, n, kv, expires))
                continue
            keep_codes = np.repeat(keep, popcount(masks))
            kept = np.flatnonzero(keep).tolist()
            ids = json.loads(ids_json)
            metas = json.loads(metas_json)
            nn = len(kept)
            new_core = pack_core(bseqs[keep], masks[keep], codes[keep_codes])
            new_body = pack_body(
                bseqs[keep],
                b"".join(hm[32 * i : 32 * i + 32] for i in kept),
                json.dumps([ids[i] for i in kept]).encode(),
                json.dumps([metas[i] for i in kept], **_JSON).encode(),  # type: ignore[arg-type]
            )
            sc, sb = self._seal_block(bid, span, nn, kv_new, expires, new_core, new_body)
            updates.append((nn, kv_new, sc, sb, self.cid, bid))
            dropped.append((bid, span, n, kv, expires))
            added.append((bid, span, nn, kv_new, expires))
        if len(erased) != len(seqs):
            raise IntegrityError(f"{DB_FILE}: an item of collection {self.name!r} is missing from its block")
        f_updates, f_removals = self.vault.erase(gone_seqs, bids, kv_new)  # kept features go with them
        return _DeletePlan(
            seqs, gone_seqs, holds, updates, removals, erased, f_updates, f_removals, dropped, added
        )

    def _delete_rows(self, plan: _DeletePlan, *, now: float, by: str | None) -> None:
        """The SQL of a planned delete (the caller holds the transaction)."""
        self.conn.executemany(
            "UPDATE blocks SET n=?, kv=?, core=?, body=? WHERE cid=? AND bid=?", plan.updates
        )
        self.conn.executemany("DELETE FROM blocks WHERE cid=? AND bid=?", plan.removals)
        self.conn.executemany("UPDATE features SET kv=?, blob=? WHERE cid=? AND bid=?", plan.feature_updates)
        self.conn.executemany("DELETE FROM features WHERE cid=? AND bid=?", plan.feature_removals)
        if plan.holds:
            self.conn.executemany(
                "DELETE FROM holds WHERE cid=? AND seq=?", [(self.cid, s) for s in plan.holds]
            )
        self.conn.execute("UPDATE collections SET gen=gen+1 WHERE cid=?", (self.cid,))
        self.conn.executemany(
            "INSERT INTO erased (cid, id_hmac, at, by) VALUES (?,?,?,?)",
            [(self.cid, h, now, by) for h in plan.erased],
        )

    def _mirror_delete(self, plan: _DeletePlan) -> None:
        """Mirror a committed delete in memory (index, ids, caches)."""
        seqs, gone_seqs, removals, erased = plan.seqs, plan.gone_seqs, plan.removals, plan.erased
        if self._attrs is not None:
            self._flush_attrs()
            self._attrs = self._attrs.take(np.flatnonzero(~np.isin(self._live, gone_seqs)))
        rows = np.flatnonzero(np.isin(self.code_seq, gone_seqs))
        self.index.remove(rows)
        self.code_seq = np.delete(self.code_seq, rows)
        self.code_mod = np.delete(self.code_mod, rows)
        seq_of = self.seq_of
        for h in erased:
            seq_of.pop(h, None)
        for s in seqs:
            self._ids[s] = None
            self._meta_cache.pop(s, None)
            self._hit_parts.pop(s, None)
        self._live = self._live[~np.isin(self._live, gone_seqs)]
        if removals:
            dead = np.isin(self._bids, np.asarray([b for _, b in removals], dtype=np.int64))
            self._bids, self._spans = self._bids[~dead], self._spans[~dead]
        self._changed()

    def seqs_for_ids(self, ids: Iterable[Any]) -> list[int]:
        out = []
        seq_of = self.seq_of
        for item_id in ids:
            seq = seq_of.get(self.id_hmac(item_id))
            if seq is None:
                raise ItemNotFoundError("no such item in this collection; check the id (nothing was changed)")
            out.append(seq)
        return out

    def _held(self, seqs: list[int]) -> list[int]:
        held = {r[0] for r in self.conn.execute("SELECT seq FROM holds WHERE cid=?", (self.cid,))}
        if self._legacy:
            held |= {
                r[0] for r in self.conn.execute("SELECT seq FROM items WHERE cid=? AND hold=1", (self.cid,))
            }
        return [s for s in seqs if s in held]

    def set_hold(
        self, seqs: list[int], hold: bool, *, before_commit: Callable[[], None] | None = None
    ) -> None:
        self._to_blocks()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self._root_begin()
            held = set(self._held(seqs))
            self.conn.executemany(
                "INSERT OR IGNORE INTO holds VALUES (?,?)"
                if hold
                else "DELETE FROM holds WHERE cid=? AND seq=?",
                [(self.cid, s) for s in seqs],
            )
            changed = sorted({s for s in seqs if (s in held) != hold})
            root = self._root_end(add_holds=changed if hold else (), drop_holds=() if hold else changed)
            if before_commit is not None:
                before_commit()
            self.conn.execute("COMMIT")
            self._root = root
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def expired(self, now: float) -> list[int]:
        self._to_blocks()
        rows = self.conn.execute(
            "SELECT bid, span FROM blocks WHERE cid=? AND expires IS NOT NULL AND expires <= ?",
            (self.cid, now),
        ).fetchall()
        if not rows:
            return []
        held = {r[0] for r in self.conn.execute("SELECT seq FROM holds WHERE cid=?", (self.cid,))}
        out: list[int] = []
        for bid, span in rows:
            lo, hi = np.searchsorted(self._live, [bid, bid + span])
            out += [s for s in self._live[lo:hi].tolist() if s not in held]
        return out

    # ------------------------------------------------------------------ read
    def metas(self, seqs: Iterable[int]) -> dict[int, dict[str, Any]]:
        seqs = list(seqs)
        cache = self._meta_cache
        want = [s for s in seqs if s not in cache]
        if want:
            try:
                self._fetch_metas(want)
            except IntegrityError:
                if not self._fresh_keys():
                    raise
                self._fetch_metas(want)  # another process re-sealed the rows since our last look
            if self._legacy and any(s not in cache for s in want):
                self._fetch_legacy_metas([s for s in want if s not in cache])
            if any(s not in cache for s in want):  # a writer converted or rewrote blocks since we loaded
                self._load_block_list()
                self._fetch_metas([s for s in want if s not in cache])
        return {s: cache[s] for s in seqs if s in cache}

    def _fetch_metas(self, want: list[int]) -> None:
        if not self._bids.size or not want:
            return
        wanted = set(want)
        bids = self._blocks_of(np.asarray(sorted(wanted), dtype=np.int64))
        cache = self._meta_cache
        for bid, span, n, kv, expires, body in self._fetch_blocks(bids[bids >= 0].tolist(), "body"):
            bseqs, _, _, metas_json = self._open_block_body(bid, span, n, kv, expires, body)
            metas = json.loads(metas_json)
            for s, meta in zip(bseqs.tolist(), metas, strict=True):
                if s in wanted:
                    cache[s] = _EMPTY_META if meta is None else meta

    def _fetch_legacy_metas(self, want: list[int]) -> None:
        for i in range(0, len(want), 500):
            chunk = want[i : i + 500]
            q = f"SELECT seq, meta, kv FROM items WHERE cid=? AND seq IN ({','.join('?' * len(chunk))})"
            for seq, blob, kv in self.conn.execute(q, (self.cid, *chunk)):
                try:
                    self._meta_cache[seq] = json.loads(
                        self._sealer(kv).open(blob, self._aad(seq, "meta", kv))
                    )
                except DecryptionError:
                    raise IntegrityError(
                        f"{DB_FILE}: a payload of collection {self.name!r} does not authenticate; "
                        "restore a snapshot"
                    ) from None

    def all_seqs(self) -> list[int]:
        return self._live.tolist()

    def live_seqs(self) -> np.ndarray:
        """Sequence numbers of the stored items, ascending (row order of attribute tables)."""
        return self._live

    def prepare_queries(self, codes: np.ndarray) -> np.ndarray:
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[1] != self.bits // 8:
            raise ShapeError(
                f"query codes must be packed uint8 of shape (n, {self.bits // 8}) for {self.bits} bits"
            )
        return self.salt.apply(codes) if self.salt is not None else codes

    # ------------------------------------------------------------------ search
    def attribute_index(self) -> AttributeIndex:
        """Every live item's attrs, in live order (built once, then kept current by writes)."""
        with self._cache_lock:
            if self._attrs is None:
                if self._attr_factory is None:
                    raise StoreError("this engine was opened without an attribute index")
                table = self._attr_factory()
                seqs = self._live.tolist()
                metas = self.metas(seqs)
                table.append([(metas.get(q) or _EMPTY_META).get("attrs") or _EMPTY_META for q in seqs])
                self._attrs = table
                self._attr_pending = []
            self._flush_attrs()
            return self._attrs

    def _flush_attrs(self) -> None:
        if self._attrs is not None and self._attr_pending:
            rows = [r for chunk in self._attr_pending for r in chunk]
            self._attr_pending = []
            self._attrs.append(rows)

    def _rows_item(self) -> np.ndarray:
        """The live position of each index row's item (cached per version)."""
        cached = self._row_item
        if cached is None or cached[0] != self.version:
            cached = self._row_item = (self.version, np.searchsorted(self._live, self.code_seq))
        return cached[1]

    def subset(
        self,
        key: Hashable,
        item_mask: Callable[[AttributeIndex], np.ndarray] | None,
        modality: int | None = None,
    ) -> Subset:
        """The rows a search restricted by ``item_mask`` (a bool per live item, from the attribute
        index) and ``modality`` may return, cached under ``key`` for this version. A selective set
        gets a packed copy of its codes (searched alone); a permissive one a mask over the index."""
        full = (self.version, key, modality)
        with self._cache_lock:
            hit = self._subsets.get(full)
            if hit is not None:
                self._subsets.move_to_end(full)
                return hit
        m = int(self.code_seq.size)
        ok = np.ones(m, dtype=bool)
        if item_mask is not None:
            items = np.asarray(item_mask(self.attribute_index()), dtype=bool)
            if items.shape != (self._live.size,):
                raise StoreError("an item mask must have one entry per stored item")
            ok &= items[self._rows_item()]
        if modality is not None:
            ok &= self.code_mod == modality
        rows = np.flatnonzero(ok)
        seqs = np.unique(self.code_seq[rows])
        index: IndexBackend | None = None
        mask: np.ndarray | None = None
        if not self.index.pushdown:
            if rows.size >= _DENSE * m:
                mask = ok
            else:
                index = self.index.subset(rows)
        entry = Subset(self.version, rows, seqs, modality, index, mask)
        with self._cache_lock:
            if self.version == full[0]:
                self._subsets[full] = entry
                while len(self._subsets) > _SUBSET_CACHE:
                    self._subsets.popitem(last=False)
        return entry

    def search_codes(
        self, salted: np.ndarray, k: int, *, subset: Subset | None = None
    ) -> list[list[tuple[int, int, int]]]:
        """Per query: [(seq, distance, modality)] for the top ``k`` items (among ``subset``), by
        (minimum distance over the item's codes, insertion order). Exact: the first ``k *
        max_codes`` rows always hold ``k`` distinct items, so no query is searched twice."""
        nq = salted.shape[0]
        if k <= 0 or len(self.index) == 0 or (subset is not None and subset.rows.size == 0):
            return [[] for _ in range(nq)]
        if subset is not None and subset.version != self.version:
            raise StoreError("internal: a subset of another version of the collection")
        per = k * self.max_codes
        distinct = self.max_codes > 1
        n_rows = len(self.index)
        if subset is None:
            if nq == 1:  # one query: no arrays to build
                pairs = self.index.search_one(salted[0], min(n_rows, per))
                dist = np.asarray([[d for d, _ in pairs]], dtype=np.int32).reshape(1, -1)
                rows = np.asarray([[r for _, r in pairs]], dtype=np.int64).reshape(1, -1)
            else:
                dist, rows = self.index.search(salted, min(n_rows, per))
        elif subset.index is not None:
            dist, local = subset.index.search(salted, min(subset.rows.size, per))
            rows = np.where(local >= 0, subset.rows[np.maximum(local, 0)], -1)
        elif subset.mask is not None:
            dist, rows = self._search_dense(salted, min(subset.rows.size, per), subset.mask, subset.fraction)
        else:  # the backend filters (pushdown); the rows it returns are checked again here
            dist, rows = self.index.search_filtered(
                salted, min(subset.rows.size, per), seqs=subset.seqs, modality=subset.modality
            )
            allowed_rows = np.zeros(n_rows, dtype=bool)
            allowed_rows[subset.rows] = True
            rows = np.where((rows >= 0) & allowed_rows[np.maximum(rows, 0)], rows, -1)
        out = []
        mods = self.code_mod
        for seqs, dists, rws in topk_rows(dist, rows, self.code_seq, k, distinct):
            out.append(list(zip(seqs, dists, mods[rws].tolist(), strict=True)))
        return out

    def _search_dense(
        self, salted: np.ndarray, need: int, mask: np.ndarray, fraction: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``need`` rows among a permissive subset: the full index over-fetched by the
        inverse of the subset's fraction and filtered by its mask, fetching more only when a query
        came back short. Rows stay in the index's (distance, row) order."""
        n_rows = len(self.index)
        fetch = min(n_rows, int(need / max(fraction, 1e-9) * 1.5) + 32)
        while True:
            dist, rows = self.index.search(salted, fetch)
            ok = (rows >= 0) & mask[np.maximum(rows, 0)]
            counts = ok.sum(axis=1)
            if fetch >= n_rows or bool((counts >= need).all()):
                break
            fetch = min(n_rows, fetch * 4)
        out_d = np.full((salted.shape[0], need), np.iinfo(np.int32).max, dtype=np.int32)
        out_r = np.full((salted.shape[0], need), -1, dtype=np.int64)
        for q in range(salted.shape[0]):
            keep = np.flatnonzero(ok[q])[:need]
            out_d[q, : keep.size] = dist[q, keep]
            out_r[q, : keep.size] = rows[q, keep]
        return out_d, out_r

    def hits(self, results: list[tuple[int, int, int]]) -> list[Hit]:
        parts = self._hit_parts
        missing = [s for s, _, _ in results if s not in parts]
        if missing:
            metas = self.metas(missing)
            ids = self._ids
            for s in missing:
                meta = metas.get(s, _EMPTY_META)
                parts[s] = (ids[s], tuple(meta.get("labels", ())), meta.get("attrs") or None, meta.get("ref"))
        bits = float(self.bits)
        out = []
        for seq, d, m in results:
            item_id, labels, attrs, ref = parts[seq]
            out.append(
                Hit(item_id, 1.0 - d / bits, d, MODALITIES[m], labels, dict(attrs) if attrs else {}, ref)
            )
        return out

    # ------------------------------------------------------------------ rotation
    def reseal(self, new_kv: int) -> None:
        """Re-encrypt every block under data key ``new_kv`` (one transaction)."""
        self.segment_gen = -1
        self._to_blocks()
        updates = []
        dropped: list[tuple[int, int, int, int, float | None]] = []
        added: list[tuple[int, int, int, int, float | None]] = []
        for bid, span, n, kv, expires, core, body in self.conn.execute(
            "SELECT bid, span, n, kv, expires, core, body FROM blocks WHERE cid=?", (self.cid,)
        ).fetchall():
            seqs, masks, codes = self._open_block_core(bid, span, n, kv, expires, core)
            bseqs, hm, ids_json, metas_json = self._open_block_body(bid, span, n, kv, expires, body)
            sc, sb = self._seal_block(
                bid,
                span,
                n,
                new_kv,
                expires,
                pack_core(seqs, masks, codes),
                pack_body(bseqs, hm, ids_json, metas_json),
            )
            updates.append((new_kv, sc, sb, self.cid, bid))
            dropped.append((bid, span, n, kv, expires))
            added.append((bid, span, n, new_kv, expires))
        f_updates = self.vault.reseal_rows(new_kv)
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self._root_begin()
            self.conn.executemany("UPDATE blocks SET kv=?, core=?, body=? WHERE cid=? AND bid=?", updates)
            self.conn.execute("UPDATE collections SET gen=gen+1 WHERE cid=?", (self.cid,))
            root = self._root_end(gen=self.gen + 1, add_blocks=added, drop_blocks=dropped)
            self.conn.executemany("UPDATE features SET kv=?, blob=? WHERE cid=? AND bid=?", f_updates)
            self.conn.execute("COMMIT")
            self._root = root
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self._meta_cache, self._hit_parts = {}, {}
        self._changed()


@dataclass
class _DeletePlan:
    """What deleting some items rewrites (computed before the transaction that applies it)."""

    seqs: list[int]
    gone_seqs: np.ndarray
    holds: list[int]
    updates: list[tuple[Any, ...]]
    removals: list[tuple[str, int]]
    erased: list[bytes]
    feature_updates: list[tuple[Any, ...]]
    feature_removals: list[tuple[Any, ...]]
    dropped: list[tuple[int, int, int, int, float | None]]  # (bid, span, n, kv, expires) before
    added: list[tuple[int, int, int, int, float | None]]  # ... and after (state-root terms)


def _int_ids(ids: list[Any]) -> np.ndarray | None:
    """``ids`` as an int64 array when every one is a plain int that fits, else None."""
    if not all(type(i) is int for i in ids):
        return None
    try:
        return np.asarray(ids, dtype="<i8")
    except OverflowError:
        return None


class _IdView(Mapping[int, Any]):
    __slots__ = ("_ids", "_live")

    def __init__(self, ids: list[Any], live: np.ndarray) -> None:
        self._ids, self._live = ids, live

    def __getitem__(self, seq: int) -> Any:
        item = self._ids[seq] if 0 <= seq < len(self._ids) else None
        if item is None:
            raise KeyError(seq)
        return item

    def __iter__(self) -> Iterator[int]:
        return iter(self._live.tolist())

    def __len__(self) -> int:
        return int(self._live.size)


def _id_bytes(item_id: Any) -> bytes:
    """The JSON text of an id (what its HMAC covers; same bytes as ``json.dumps``)."""
    kind = type(item_id)
    if kind is int:
        return int.__repr__(item_id).encode()
    if kind is str or isinstance(item_id, str):
        return _encode_str(item_id).encode()
    if isinstance(item_id, int) and not isinstance(item_id, bool):
        return int.__repr__(item_id).encode()
    raise ShapeError("item ids must be strings or integers")

"""The public :class:`Store`: an embedded, protected store in a local directory."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import check_optional_ttl_hours, check_policy_source
from ..access import OPERATOR, AccessControl, AccessMixin, AttributeTable, Gate, Principal, compile_policy
from ..access._session import split_qualified
from ..errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigurationError,
    DecryptionError,
    IndexUnavailableError,
    IntegrityError,
    KeyringError,
    StoreClosedError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
)
from ..index import BACKENDS, INDEX_TYPES, MilvusConnection, milvus_names
from ..monitor import MonitorMixin, open_store_monitor
from ..protect import (
    KEYRING_FILE,
    CollectionKeys,
    KeyProvider,
    Keyring,
    Sealer,
    atomic_write,
    ensure_dir,
    hkdf,
    provider_for,
)
from ._blocks import has_expired
from ._collection import Collection
from ._db import DB_FILE, connect
from ._encode import Encoders, default_hasher, hasher_from_bytes, hasher_to_bytes
from ._engine import CollectionEngine
from ._lock import StoreLock, WriterLock
from ._ops import CollectionOps
from ._roots import RootKeeper
from ._snapshot import pack, store_files, unpack
from ._state import AuditAnchorRow, StoreState

__all__ = ["PROTECTION_MODES", "Store"]

PROTECTION_MODES = ("none", "salted", "encrypted", "salted+encrypted")
_MARKER = "SECURECMR_STORE"


class Store(AccessMixin, MonitorMixin):
    """An embedded store. Use :meth:`create` / :meth:`open`; close it (or use ``with``).

    Any number of processes may open one store. Write calls are serialised between them by an
    ``flock`` on ``store.lock`` held for the length of the call (StoreLockedError when another
    process holds it longer than ``timeout``); readers never wait for each other. Every call first
    looks (cheaply) whether another process changed the store and loads what changed: users and
    revocations, collections, items, keys."""

    def __init__(
        self,
        path: Path,
        ring: Keyring,
        provider: KeyProvider,
        conn: sqlite3.Connection,
        lock: WriterLock | None,
        clock: Callable[[], float],
        backend: str,
        milvus: MilvusConnection | None = None,
    ) -> None:
        self.path = path
        self._ring = ring
        self._provider = provider
        self._conn = conn
        self._lock = lock
        self._clock = clock
        self._backend = backend
        self._milvus = milvus
        self._collections: dict[str, Collection] = {}
        self._collections_lock = threading.Lock()
        self._ring_file = str(path / KEYRING_FILE)
        self._ring_stat = _stat_key(self._ring_file)
        self._data_version = self._db_version()
        # searches share it, writes hold it alone (and the inter-process writer lock): one
        # consistent version per call, with other processes' changes loaded first
        self._rw = StoreLock(lock, self._stale, self._sync, after_write=self._after_write)
        self._closed = False
        self._config_sealer = Sealer(hkdf(ring.secret, "securecmr/config"))
        self._state = StoreState(
            path,
            hkdf(ring.secret, "securecmr/state"),
            ring.store_id,
            readonly=lock is None,
            required=bool(ring.state),
        )
        self._anchor = AuditAnchorRow(self._state)
        if ring.state:  # the sealed entries must all be there (a deleted one is named)
            self._state.get("audit")
            self._state.get("registry")
        self._roots = RootKeeper(ring.secret, ring.store_id, path) if ring.state else None
        if self._roots is not None:
            self._roots.check_collections(full=True)
        self._access = AccessControl(
            path / "access",
            hkdf(ring.secret, "securecmr/access"),
            clock=clock,
            readonly=lock is None,
            guard=self._rw.write,
            anchor=self._anchor,
            registry_floor=self._registry_floor,
            on_registry_save=self._registry_saved,
            log_id=ring.store_id,
            audit_state=None if self._roots is None else self._roots.epoch,
        )
        if self._roots is not None:
            sealed = self._access.audit.checkpointed_state()
            if sealed is not None and sealed > self._roots.epoch():
                raise IntegrityError(
                    f"{DB_FILE}: the database is older than the audit log (state {self._roots.epoch()}, "
                    f"checkpointed {sealed}): store.db was rolled back; restore the newest copy"
                )
        self._monitor = open_store_monitor(
            path / "monitor",
            hkdf(ring.secret, "securecmr/monitor"),
            store_id=ring.store_id,
            clock=clock,
            audit=self._access.audit,
        )
        self._gate = Gate(self._access, self._monitor)
        self._operator = Principal(OPERATOR)

    def __repr__(self) -> str:
        if self._closed:
            return f"Store({str(self.path)!r}, closed)"
        return f"Store({str(self.path)!r}, collections={len(self._collection_names())})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store_id(self) -> str:
        return self._ring.store_id

    @property
    def readonly(self) -> bool:
        return self._lock is None

    @property
    def index_backend(self) -> str:
        """The index behind this store's collections: ``faiss`` (default), ``brute`` or ``milvus``."""
        return self._backend

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        passphrase: str | None = None,
        *,
        key_provider: KeyProvider | None = None,
        clock: Callable[[], float] | None = None,
        index_backend: str = "faiss",
        milvus_uri: str | None = None,
        milvus_token: str | None = None,
        milvus_index: str = "BIN_FLAT",
        milvus_timeout: float = 30.0,
        backend: str | None = None,
        exist_ok: bool = False,
    ) -> Store:
        """Create a new store in ``path`` (an empty or missing directory).

        A store already at ``path`` is an error (StoreExistsError) unless ``exist_ok=True``, which
        opens it unchanged (see :meth:`open_or_create`). When creation fails nothing is left on
        disk. ``index_backend="milvus"`` serves the collections' searches from Milvus at
        ``milvus_uri`` (a Milvus Lite file, by default ``<path>/milvus.db``, or a server URI;
        ``milvus_token`` or ``$SECURECMR_MILVUS_TOKEN`` for a server, never stored;
        ``milvus_timeout`` seconds per request before IndexUnavailableError). The choice is
        remembered by :meth:`open`. ``backend`` is an older name of ``index_backend``."""
        provider = provider_for(passphrase, key_provider)
        index_backend = backend or index_backend
        index_cfg = _index_config(index_backend, milvus_uri, milvus_index)
        root = Path(path)
        if (root / _MARKER).exists() or (root / DB_FILE).exists():
            if exist_ok:
                return cls.open(
                    root,
                    key_provider=provider,
                    clock=clock,
                    milvus_token=milvus_token,
                    milvus_timeout=milvus_timeout,
                )
            raise StoreExistsError(f"a store already exists at {root}; use Store.open")
        if root.exists() and any(root.iterdir()):
            raise StoreExistsError(f"{root} is not empty; give an empty or new directory")
        made = not root.exists()
        ensure_dir(root)
        lock: WriterLock | None = None
        conn: sqlite3.Connection | None = None
        try:
            lock = WriterLock(root / "store.lock", 10.0)
            ring = Keyring.new(uuid.uuid4().hex)
            ring.save(root, provider)
            conn = connect(root, create=True)
            conn.execute("INSERT INTO meta VALUES ('store_id', ?)", (ring.store_id,))
            sealer = Sealer(hkdf(ring.secret, "securecmr/config"))
            blob = sealer.seal(json.dumps(index_cfg).encode(), f"securecmr/index|{ring.store_id}".encode())
            conn.execute("INSERT INTO meta VALUES ('index', ?)", (base64.b64encode(blob).decode(),))
            _seed_state(root, conn, ring)
            milvus = _milvus_for(root, index_cfg, None, milvus_token, milvus_timeout)
            store = cls(root, ring, provider, conn, lock, clock or time.time, index_backend, milvus)
            # the marker last: a directory without it is not a store (and is removed below)
            atomic_write(root / _MARKER, json.dumps({"format": 1, "store_id": ring.store_id}).encode())
        except BaseException:
            if conn is not None:
                conn.close()
            if lock is not None:
                lock.release()
            _remove_tree(root, keep_root=not made)
            raise
        return store

    @classmethod
    def open_or_create(
        cls, path: str | os.PathLike[str], passphrase: str | None = None, **kwargs: Any
    ) -> Store:
        """Open the store at ``path``, or create it there if there is none (rerunnable scripts).
        Same as ``Store.create(path, passphrase, exist_ok=True, **kwargs)``."""
        return cls.create(path, passphrase, exist_ok=True, **kwargs)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        passphrase: str | None = None,
        *,
        key_provider: KeyProvider | None = None,
        clock: Callable[[], float] | None = None,
        readonly: bool = False,
        timeout: float = 10.0,
        index_backend: str | None = None,
        milvus_uri: str | None = None,
        milvus_token: str | None = None,
        milvus_timeout: float = 30.0,
        backend: str | None = None,
    ) -> Store:
        """Open a store. Any number of processes may open it, for reading or writing; a write call
        waits up to ``timeout`` seconds for another process's write to finish, then raises
        StoreLockedError. ``readonly=True`` changes no data, keyring, registry or checkpoint (its
        calls are still audited).

        The index backend chosen at creation is used unless ``index_backend`` names another for
        this opening (the SQLite record is the source of truth, so any backend serves any store);
        ``milvus_uri`` moves a Milvus store to another Milvus (rebuilt there on open) for this
        opening, and ``milvus_token`` (or ``$SECURECMR_MILVUS_TOKEN``) authenticates to it."""
        provider = provider_for(passphrase, key_provider)
        root = Path(path)
        if not (root / _MARKER).exists() or not (root / DB_FILE).exists():
            raise StoreNotFoundError(f"{root} is not a securecmr store; create one with Store.create")
        lock = None if readonly else WriterLock(root / "store.lock", timeout)
        try:
            ring = Keyring.load(root, provider)
            _cleanup_tmp(root)
            conn = connect(root)
            row = conn.execute("SELECT value FROM meta WHERE key='store_id'").fetchone()
            if row is None or row[0] != ring.store_id:
                raise IntegrityError(f"{DB_FILE}: belongs to another store than {KEYRING_FILE}")
            cfg = _stored_index_config(conn, ring)
            chosen = backend or index_backend or str(cfg["backend"])
            if chosen != cfg["backend"]:
                cfg = _index_config(chosen, None, str(cfg.get("index_type", "BIN_FLAT")))
            milvus = _milvus_for(root, cfg, milvus_uri, milvus_token, milvus_timeout)
            store = cls(root, ring, provider, conn, lock, clock or time.time, chosen, milvus)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if not readonly:
            try:
                if not ring.state:  # a store made before sealed state existed: adopt it as it is
                    with store._rw.write():
                        store._adopt_state()
                store._purge(on_open=True)
            except BaseException:
                store.close()
                raise
        return store

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._lock is not None:
                try:
                    with self._rw.write():
                        self._save_segments()
                        self._access.close()
                except KeyringError:  # another process rotated the keys: our segments are stale anyway
                    self._access.close()
            else:
                self._access.close()
            self._monitor.close()
        finally:
            if self._milvus is not None:
                self._milvus.close()
            with contextlib.suppress(Exception):  # an anchor the database was too busy to take
                self._anchor.flush()
            self._conn.close()
            self._state.close()
            if self._roots is not None:
                self._roots.close()
            if self._lock is not None:
                self._lock.release()

    def _save_segments(self) -> None:
        """Write the sealed index segments of changed collections (a cache: the SQLite rows are the
        durable record, and a missing, stale or damaged segment is rebuilt from them on open)."""
        with self._rw.write():
            for coll in list(self._collections.values()):
                if not coll._ops.engine.stale():  # another process's newer version writes its own
                    coll._ops.engine.save_segment()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("the store is closed; open it again with Store.open")

    def _check_writable(self) -> None:
        self._check_open()
        if self._lock is None:
            raise StoreError("this store was opened readonly=True; open it for writing to change it")

    def _now(self) -> float:
        return float(self._clock())

    # ------------------------------------------------------------------ other processes
    def _db_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _stale(self) -> bool:
        """Whether another process changed the store since our last look (a stat and a pragma)."""
        return self._db_version() != self._data_version or _stat_key(self._ring_file) != self._ring_stat

    def _sync(self) -> None:
        """Load what other processes changed (under the write side of the store lock): the keyring
        (a new collection's keys, a rotation) and every open collection whose generation moved."""
        version = self._db_version()
        self._refresh_ring()
        if version != self._data_version:
            if self._roots is not None:
                self._roots.check_collections()
            for name, coll in list(self._collections.items()):
                if not coll._ops.engine.sync():
                    self._collections.pop(name, None)  # dropped by another process
        else:
            for coll in self._collections.values():
                if coll._ops.engine._reload_needed:
                    coll._ops.engine.sync()
        self._data_version = version

    def _refresh_ring(self) -> None:
        key = _stat_key(self.path / KEYRING_FILE)
        if key == self._ring_stat:
            return
        try:
            ring = Keyring.load(self.path, self._provider)
        except (KeyringError, DecryptionError):
            raise KeyringError(
                "another process rotated this store's keys; reopen it with the new passphrase or key"
            ) from None
        if ring.store_id != self._ring.store_id or ring.secret != self._ring.secret:
            raise KeyringError(
                "another process replaced this store's keys; reopen it with the new passphrase or key"
            )
        self._ring = ring
        self._ring_stat = key
        for coll in self._collections.values():
            coll._ops.engine.force_reload()

    def _keys_for(self, cid: str) -> CollectionKeys:
        self._refresh_ring()
        keys = self._ring.collections.get(cid)
        if keys is None:
            raise IntegrityError(f"{KEYRING_FILE}: no keys for a collection of this store")
        return keys

    def _save_ring(self, provider: KeyProvider, *, fresh_kdf: bool = True) -> None:
        self._ring.save(self.path, provider, fresh_kdf=fresh_kdf)
        self._ring_stat = _stat_key(self.path / KEYRING_FILE)

    def _adopt_state(self) -> None:
        """Seal the state of a store made before sealed state existed, as it is now (the writer
        that first opens it; a test also uses it to adopt rows written the old way)."""
        roots = RootKeeper(self._ring.secret, self.store_id, self.path)
        entries = {}
        for cid, name in self._conn.execute("SELECT cid, name FROM collections").fetchall():
            now = roots.measure(self._conn, cid)
            if now is not None:
                entries[cid] = dict(now, name=str(name))
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            roots.save(self._conn, entries)
            if self._conn.execute("SELECT 1 FROM meta WHERE key='state/audit'").fetchone() is None:
                anchor = self._access.registry.audit_anchor or (0, "0" * 64)
                self._state.seed(self._conn, "audit", {"n": anchor[0], "head": anchor[1]})
            self._state.seed(self._conn, "registry", {"version": self._access.registry.version})
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        if not self._ring.state:
            self._ring.state = 1
            self._save_ring(self._provider, fresh_kdf=False)
        if self._roots is not None:
            self._roots.close()
        self._roots = roots
        self._state.required = True
        for coll in self._collections.values():
            coll._ops.engine._roots = roots
            coll._ops.engine.force_reload()
            coll._ops.engine.sync()

    def _after_write(self) -> None:
        """After each write call: seal the audit head (a checkpoint naming the state epoch, and the
        anchor), so neither the log's tail nor store.db can be cut back unnoticed."""
        self._access.audit.checkpoint()
        self._anchor.flush()

    def _registry_floor(self) -> int:
        got = self._state.get("registry")
        return 0 if got is None else int(got["version"])

    def _registry_saved(self, version: int) -> None:
        self._state.advance("registry", {"version": int(version)}, "version")

    def _audit_op(self, action: str, **kw: Any) -> None:
        """Record an action of the store operator (the passphrase holder) in the audit log, durably
        (the operator's store-level writes call this before they return)."""
        self._access.audit.append(action, principal=OPERATOR, **kw)
        self._access.audit.sync()

    # ------------------------------------------------------------------ collections
    def collections(self) -> list[str]:
        """The names of the store's collections, sorted (audited as ``collection.list``)."""
        names = self._collection_names()
        self._audit_op("collection.list", detail={"count": len(names)})
        return names

    def _collection_names(self) -> list[str]:
        """:meth:`collections` without an audit record (internal checks, sessions, repr)."""
        self._check_open()
        return sorted(r[0] for r in self._conn.execute("SELECT name FROM collections"))

    def create_collection(
        self,
        name: str,
        bits: int = 64,
        protection: str = "salted+encrypted",
        hasher: Any = None,
        ttl_hours: float | None = None,
        policy: str | None = None,
        *,
        exist_ok: bool = False,
        keep_features: bool = False,
    ) -> Collection:
        """Create a collection. ``hasher`` (a fitted securecmr.hashing hasher) is saved without pickle;
        without one the data-independent zero-shot hasher is used.

        ``keep_features=True`` keeps the encoder features of every item it encodes, sealed and
        erased with the item, so that :meth:`Collection.fit` can learn a hasher from the
        collection's own items and re-code them in place (see the threat model: embeddings can be
        partly inverted, so keeping them is opt-in).

        A collection of that name that exists is never replaced: CollectionExistsError, or with
        ``exist_ok=True`` the existing collection, unchanged."""
        self._check_writable()
        if exist_ok and isinstance(name, str) and name in self._collection_names():
            return self.collection(name)
        if not isinstance(name, str) or not name or len(name) > 200 or any(ord(c) < 32 for c in name):
            raise ConfigurationError(
                "a collection name must be a non-empty string of at most 200 characters "
                "without control characters"
            )
        if protection not in PROTECTION_MODES:
            raise ConfigurationError(f"unknown protection {protection!r}; choose one of {PROTECTION_MODES}")
        if isinstance(bits, bool) or not isinstance(bits, int) or bits <= 0 or bits % 8 or bits > 2040:
            raise ConfigurationError("bits must be a positive multiple of 8 (at most 2040)")
        ttl_hours = check_optional_ttl_hours(ttl_hours)
        if hasher is not None and int(hasher.bits) != bits:
            raise ConfigurationError(
                f"the hasher makes {hasher.bits}-bit codes but the collection has {bits} bits"
            )
        if policy is not None:
            policy = check_policy_source(policy)
            compile_policy(policy)
        with self._rw.write():
            return self._create_collection(
                name, bits, protection, hasher, ttl_hours, policy, keep_features=bool(keep_features)
            )

    def _create_collection(
        self,
        name: str,
        bits: int,
        protection: str,
        hasher: Any,
        ttl_hours: float | None,
        policy: str | None,
        *,
        keep_features: bool = False,
    ) -> Collection:
        if name in self._collection_names():
            raise CollectionExistsError(
                f"a collection named {name!r} already exists; pass exist_ok=True to use it as it is"
            )
        cid = uuid.uuid4().hex
        config = {
            "name": name,
            "bits": bits,
            "protection": protection,
            "ttl_hours": ttl_hours,
            "policy": None if policy is None else str(policy),
            "created": self._now(),
            "hasher": None if hasher is None else base64.b64encode(hasher_to_bytes(hasher)).decode(),
            "keep_features": keep_features,
            "hasher_version": 1,
        }
        self._ring.add_collection(cid)
        self._save_ring(self._provider, fresh_kdf=False)
        blob = self._config_sealer.seal(json.dumps(config).encode(), self._config_aad(cid))
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute("INSERT INTO collections VALUES (?,?,?,1,0)", (cid, name, blob))
            if self._roots is not None:
                roots = self._roots.load(self._conn) or {}
                roots[cid] = _empty_root(name, blob)
                self._roots.save(self._conn, roots)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return self.collection(name)

    def drop_collection(self, name: str, *, by: str | None = None) -> dict[str, Any]:
        """Delete a collection with all its items and crypto-shred its data keys; returns a signed
        erasure receipt (like :meth:`compact`'s) naming the id HMACs erased. Audited as
        ``collection.drop``. Items under legal hold refuse the drop (LegalHoldError)."""
        self._check_writable()
        with self._rw.write():
            return self._drop_collection(name, by)

    def _drop_collection(self, name: str, by: str | None) -> dict[str, Any]:
        from ..errors import LegalHoldError

        coll = self.collection(name)
        eng = coll._engine
        cid = eng.cid
        if eng._held(eng.all_seqs()):
            raise LegalHoldError(f"collection {name!r} has items under legal hold; release them first")
        erased = sorted(bytes(h).hex() for h in eng.seq_of)
        pending = self._conn.execute("SELECT id_hmac FROM erased WHERE cid=?", (cid,)).fetchall()
        erased += sorted(bytes(r[0]).hex() for r in pending)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for table in ("items", "blocks", "holds", "erased", "features", "recode", "collections"):
                self._conn.execute(f"DELETE FROM {table} WHERE cid=?", (cid,))
            if self._roots is not None:
                roots = self._roots.load(self._conn) or {}
                roots.pop(cid, None)
                self._roots.save(self._conn, roots)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._collections.pop(name, None)
        if self._milvus is not None:  # the Milvus rows of this collection go too
            index = eng.index
            with contextlib.suppress(Exception):
                if len(index):
                    index.remove(np.arange(len(index), dtype=np.int64))
        self._ring.collections.pop(cid, None)  # crypto-shred: nothing can decrypt a stray copy
        self._save_ring(self._provider, fresh_kdf=False)
        (self.path / "index" / f"{cid}.seg").unlink(missing_ok=True)
        self._conn.execute("VACUUM")
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        receipt = {
            "format": 1,
            "store_id": self.store_id,
            "dropped": name,
            "erased": {name: erased},
            "count": len(erased),
            "at": self._now(),
            "by": by,
            "files": sorted(p.name for p in self.path.iterdir() if p.is_file()),
        }
        receipt["signature"] = self._sign(receipt)
        self._audit_op("collection.drop", collection=name, detail={"count": len(erased)})
        return receipt

    def _write_config(self, cid: str, config: dict[str, Any]) -> None:
        """Re-seal a collection's configuration (inside the caller's transaction, if any)."""
        blob = self._config_sealer.seal(json.dumps(config).encode(), self._config_aad(cid))
        if self._conn.in_transaction:  # the caller re-seals the state root in its transaction
            self._conn.execute("UPDATE collections SET config=? WHERE cid=?", (blob, cid))
            return
        engine = next((c._ops.engine for c in self._collections.values() if c._ops.engine.cid == cid), None)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute("UPDATE collections SET config=? WHERE cid=?", (blob, cid))
            root = engine.restate_root() if engine is not None else None
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        if engine is not None and root is not None:
            engine._root = root

    def _reload_collection(self, coll: Collection) -> None:
        """Rebuild a collection's engine and hasher from the durable record after a hasher switch
        (call with the write lock held): the collection's ops get the new engine and encoders."""
        fresh = self._open_collection(coll.name)
        coll._ops.engine, coll._ops.encoders = fresh._ops.engine, fresh._ops.encoders

    def _config_aad(self, cid: str) -> bytes:
        return f"securecmr/config|{self.store_id}|{cid}".encode()

    def collection(self, name: str) -> Collection:
        """Open a collection by name (CollectionNotFoundError when there is none)."""
        self._check_open()
        coll = self._collections.get(name)
        if coll is not None:
            return coll
        with self._collections_lock:  # threads opening one collection get one engine
            coll = self._collections.get(name)
            if coll is None:
                coll = self._open_collection(name)
                self._collections[name] = coll
            return coll

    def _open_collection(self, name: str) -> Collection:
        row = self._conn.execute("SELECT cid, config FROM collections WHERE name=?", (name,)).fetchone()
        if row is None:
            raise CollectionNotFoundError(f"no collection named {name!r}; create it with create_collection")
        cid, blob = row
        try:
            config = json.loads(self._config_sealer.open(blob, self._config_aad(cid)))
        except Exception:
            raise IntegrityError(
                f"{DB_FILE}: the configuration of collection {name!r} does not authenticate"
            ) from None
        if config.get("name") != name:
            raise IntegrityError(f"{DB_FILE}: collection rows were swapped")
        self._refresh_ring()  # a collection another process created has its keys in a newer keyring
        keys = self._ring.collections.get(cid)
        if keys is None:
            raise IntegrityError(f"{KEYRING_FILE}: no keys for collection {name!r}")
        with self._rw.local() as alone:  # loaded in one read snapshot when no search runs
            engine = CollectionEngine(
                self._conn,
                self.store_id,
                cid,
                name,
                config,
                keys,
                backend=self._backend,
                directory=self.path,
                index_options=self._index_options(name, int(config["bits"])),
                attributes=AttributeTable,
                keys_source=lambda: self._keys_for(cid),
                roots=self._roots,
                exclusive=alone,
            )
        hz = config.get("hasher")
        bits = int(config["bits"])
        loader = (lambda: hasher_from_bytes(base64.b64decode(hz))) if hz else (lambda: default_hasher(bits))
        ops = CollectionOps(
            engine,
            Encoders(None, engine.bits, loader=loader),
            self._rw,
            now=self._now,
            check_writable=self._check_writable,
            purge=self._purge_collection,
            check_open=self._check_open,
        )
        return Collection(self._gate, ops, self._operator, self)

    def _index_options(self, name: str, bits: int) -> dict[str, Any] | None:
        if self._milvus is None:
            return None
        owner, visible = split_qualified(name)
        coll, tenant, state = milvus_names(hkdf(self._ring.secret, "securecmr/milvus"), owner, visible, bits)
        return {
            "connection": self._milvus,
            "collection": coll,
            "tenant": tenant,
            "state": state,
            "readonly": self.readonly,
        }

    # ------------------------------------------------------------------ retention and erasure
    def _purge_collection(self, engine: CollectionEngine, now: float) -> int:
        """Delete a collection's expired items (the caller holds the write lock); the operator's
        ``purge`` record is made durable inside the transaction."""
        seqs = engine.expired(now)
        if not seqs:
            return 0
        record = {"count": len(seqs), "ttl": True}
        return engine.delete_seqs(
            seqs,
            now=now,
            by="ttl",
            before_commit=lambda: self._audit_op("purge", collection=engine.name, detail=record),
        )

    def purge(self) -> int:
        """Delete every item past its collection's TTL and not under legal hold; returns the count.

        Every call is audited; the automatic purge when a store is opened is audited only when it
        deleted something."""
        return self._purge(on_open=False)

    def _purge(self, *, on_open: bool) -> int:
        self._check_writable()
        now = self._now()
        total = 0
        with self._rw.write():
            for cid, name in self._conn.execute("SELECT cid, name FROM collections").fetchall():
                if has_expired(self._conn, cid, now):
                    total += self._purge_collection(self.collection(name)._ops.engine, now)
            if not total and not on_open:  # each collection's purge recorded itself
                self._audit_op("purge", detail={"count": 0})
        return total

    def compact(self, *, by: str | None = None) -> dict[str, Any]:
        """Scrub deleted rows from the files (VACUUM, WAL truncated) and return a signed erasure
        receipt listing the id HMACs erased since the last compaction."""
        self._check_writable()
        with self._rw.write():
            return self._compact(by)

    def _compact(self, by: str | None) -> dict[str, Any]:
        rows = self._conn.execute(
            "SELECT c.name, e.id_hmac, e.at, e.by FROM erased e LEFT JOIN collections c ON e.cid=c.cid"
        ).fetchall()
        erased: dict[str, list[str]] = {}
        for name, hm, _at, _by in rows:
            erased.setdefault(str(name), []).append(bytes(hm).hex())
        self._conn.execute("DELETE FROM erased")
        self._conn.execute("VACUUM")
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._save_segments()
        index_reports = self._compact_indexes()
        receipt = {
            "format": 1,
            "store_id": self.store_id,
            "erased": erased,
            "count": sum(len(v) for v in erased.values()),
            "at": self._now(),
            "by": by,
            "files": sorted(p.name for p in self.path.iterdir() if p.is_file()),
        }
        if index_reports:  # what an external index (Milvus) did, and where erasure is not guaranteed
            receipt["index"] = index_reports
        receipt["signature"] = self._sign(receipt)
        self._audit_op("compact", detail={"count": receipt["count"]})
        return receipt

    def _compact_indexes(self) -> list[dict[str, Any]]:
        """Have an external index drop deleted rows from its own files (once per Milvus collection,
        every collection of the store opened for it); its reports go into the receipt."""
        if self._milvus is None:
            return []
        reports: dict[str, dict[str, Any]] = {}
        for (name,) in self._conn.execute("SELECT name FROM collections").fetchall():
            try:
                self.collection(name)
            except IndexUnavailableError:
                reports[f"~{name}"] = {
                    "backend": "milvus",
                    "compacted": False,
                    "note": "Milvus was unreachable: run compact() again when it answers",
                }
        for coll in list(self._collections.values()):
            index = coll._engine.index
            key = str(getattr(index, "_coll", id(index)))
            if key in reports:
                continue
            report = index.compact()
            if report is not None:
                reports[key] = report
        return [reports[k] for k in sorted(reports)]

    def _sign(self, doc: dict[str, Any]) -> str:
        body = json.dumps({k: v for k, v in doc.items() if k != "signature"}, sort_keys=True).encode()
        return hmac.new(hkdf(self._ring.secret, "securecmr/receipts"), body, hashlib.sha256).hexdigest()

    def verify_receipt(self, receipt: dict[str, Any]) -> bool:
        """True when ``receipt`` was signed by this store and is unaltered."""
        return hmac.compare_digest(str(receipt.get("signature", "")), self._sign(receipt))

    # ------------------------------------------------------------------ keys
    def rotate_keys(
        self,
        new_passphrase: str | None = None,
        *,
        new_key_provider: KeyProvider | None = None,
        reencrypt: bool = False,
    ) -> None:
        """Re-wrap every data key under a new master key and passphrase (old one stops working);
        ``reencrypt=True`` also re-encrypts every row under new data keys. Crash-safe: the keyring
        is replaced atomically and old data keys are dropped only after all rows moved."""
        self._check_writable()
        provider = provider_for(new_passphrase, new_key_provider)
        with self._rw.write():
            self._ring.rotate_master()
            if reencrypt:
                self._ring.new_data_keys()
            self._save_ring(provider)
            self._provider = provider
            if reencrypt:
                for name in self._collection_names():
                    eng = self.collection(name)._ops.engine
                    eng.reseal(eng.keys.current)
                self._ring.drop_old_data_keys()
                self._save_ring(provider, fresh_kdf=False)
                self._conn.execute("VACUUM")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._audit_op("keys.rotate", detail={"reencrypt": reencrypt})

    # ------------------------------------------------------------------ snapshots
    def export_snapshot(self, path: str | os.PathLike[str]) -> None:
        """Write a sealed snapshot of the whole store to ``path``: the database, the users and token
        hashes, the audit log with its checkpoints, and the monitor's query log, fitted detector and
        guard state, plus the (passphrase-protected) keyring. See :mod:`securecmr.store._snapshot`.
        The export is itself audited, inside the snapshot."""
        self._check_open()
        self._audit_op("export.snapshot")
        audit = self._access.audit
        audit.checkpoint()
        self._monitor.flush()
        self._conn.execute("PRAGMA wal_checkpoint(FULL)")
        dest = Path(path)
        tmpdb = dest.with_name(dest.name + ".db.tmp")
        if tmpdb.exists():
            tmpdb.unlink()
        self._conn.execute("VACUUM INTO ?", (str(tmpdb),))
        try:
            files = {"store.db": tmpdb.read_bytes()}
        finally:
            tmpdb.unlink()
        with audit._file_lock():  # no record lands half-copied (other processes append too)
            files.update((name, p.read_bytes()) for name, p in store_files(self.path))
        ring = (self.path / KEYRING_FILE).read_bytes()
        atomic_write(dest, pack(self._ring.secret, self.store_id, self._now(), ring, files))

    @staticmethod
    def verify_snapshot(
        snapshot: str | os.PathLike[str],
        passphrase: str | None = None,
        *,
        key_provider: KeyProvider | None = None,
    ) -> dict[str, Any]:
        """Check a snapshot without restoring it (IntegrityError if any byte was changed,
        DecryptionError for a wrong passphrase); returns what it holds."""
        provider = provider_for(passphrase, key_provider)
        snap = unpack(Path(snapshot).read_bytes(), provider, Path(snapshot).name)
        return {
            "format": snap.format,
            "store_id": snap.store_id,
            "created": snap.created,
            "files": sorted(snap.files),
            "bytes": sum(len(b) for b in snap.files.values()),
            "users": "access/users.sealed" in snap.files,
            "audit": any(n.startswith("access/audit/") for n in snap.files),
            "monitor_fitted": "monitor/detector.npz" in snap.files,
        }

    @classmethod
    def import_snapshot(
        cls,
        snapshot: str | os.PathLike[str],
        path: str | os.PathLike[str],
        passphrase: str | None = None,
        *,
        key_provider: KeyProvider | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Store:
        """Restore a snapshot into a new store directory ``path`` and open it.

        The whole snapshot is authenticated and decrypted in memory first: a damaged or altered
        file raises IntegrityError and nothing is written. Users and tokens work as before, the
        audit log carries the full history (verified) plus a ``restore`` record, and the monitor
        is fitted as it was. A failed restore leaves nothing behind."""
        provider = provider_for(passphrase, key_provider)
        data = Path(snapshot).read_bytes()
        snap = unpack(data, provider, Path(snapshot).name)
        root = Path(path)
        if (root / _MARKER).exists() or (root.exists() and any(root.iterdir())):
            raise StoreExistsError(f"{root} is not empty; import into a new directory")
        made = not root.exists()
        try:
            root.mkdir(parents=True, exist_ok=True)
            for name, blob in snap.files.items():
                dest = root / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(dest, blob)
            atomic_write(root / KEYRING_FILE, snap.keyring)
            atomic_write(root / _MARKER, json.dumps({"format": 1, "store_id": snap.store_id}).encode())
            store = cls.open(root, key_provider=provider, clock=clock)
            try:
                report = store.audit.verify() if snap.format >= 2 else None
            except BaseException:
                store.close()
                raise
        except BaseException:
            _remove_tree(root, keep_root=not made)
            raise
        store._audit_op(
            "restore",
            detail={
                "snapshot": hashlib.sha256(data).hexdigest()[:16],
                "format": snap.format,
                "created": snap.created,
                "records": None if report is None else report.records,
            },
        )
        return store


MILVUS_LITE_FILE = "milvus.db"


def _index_config(backend: str, milvus_uri: str | None, milvus_index: str) -> dict[str, Any]:
    """The remembered index choice (sealed in the store's meta table; never a token)."""
    if backend not in BACKENDS:
        raise ConfigurationError(f"unknown index backend {backend!r}; choose one of {BACKENDS}")
    if backend != "milvus":
        if milvus_uri is not None:
            raise ConfigurationError('milvus_uri= needs index_backend="milvus"')
        return {"backend": backend}
    if milvus_index not in INDEX_TYPES:
        raise ConfigurationError(f"unknown Milvus index {milvus_index!r}; choose one of {INDEX_TYPES}")
    if milvus_uri is not None:
        MilvusConnection(_absolute(milvus_uri))  # validates the URI (connects lazily)
    uri = None if milvus_uri is None else _absolute(milvus_uri)
    return {"backend": "milvus", "uri": uri, "index_type": milvus_index}


def _absolute(uri: str) -> str:
    """A Milvus Lite path made absolute (so the store finds it from any working directory)."""
    if not isinstance(uri, str) or not uri:
        raise ConfigurationError("milvus_uri must be a Milvus Lite file path (*.db) or a server URI")
    return uri if "://" in uri or uri.startswith("unix:") else str(Path(uri).resolve())


def _stored_index_config(conn: sqlite3.Connection, ring: Keyring) -> dict[str, Any]:
    row = conn.execute("SELECT value FROM meta WHERE key='index'").fetchone()
    if row is None:  # stores made before the choice was recorded
        return {"backend": "faiss"}
    try:
        blob = base64.b64decode(row[0])
        sealer = Sealer(hkdf(ring.secret, "securecmr/config"))
        return dict(json.loads(sealer.open(blob, f"securecmr/index|{ring.store_id}".encode())))
    except Exception:
        raise IntegrityError(f"{DB_FILE}: the index configuration does not authenticate") from None


def _milvus_for(
    root: Path, cfg: dict[str, Any], uri: str | None, token: str | None, timeout: float = 30.0
) -> MilvusConnection | None:
    if cfg.get("backend") != "milvus":
        if uri is not None:
            raise ConfigurationError('milvus_uri= needs a store whose index backend is "milvus"')
        return None
    chosen = _absolute(uri) if uri is not None else cfg.get("uri") or str(root / MILVUS_LITE_FILE)
    if not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigurationError("milvus_timeout must be a positive number of seconds")
    return MilvusConnection(
        chosen, token=token, index_type=str(cfg.get("index_type", "BIN_FLAT")), timeout=float(timeout)
    )


def _remove_tree(root: Path, *, keep_root: bool) -> None:
    """Remove what a failed create or import wrote (the directory itself unless it was there)."""
    import shutil

    if keep_root:
        for child in list(root.iterdir()) if root.exists() else []:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    else:
        shutil.rmtree(root, ignore_errors=True)


def _empty_root(name: str, config_blob: bytes) -> dict[str, Any]:
    return {
        "name": name,
        "config": RootKeeper.config_hash(config_blob),
        "next_seq": 1,
        "gen": 0,
        "blocks": 0,
        "nblocks": 0,
        "holds": 0,
        "nholds": 0,
        "legacy": 0,
    }


def _seed_state(root: Path, conn: sqlite3.Connection, ring: Keyring) -> None:
    """A new store's sealed state: no collections, registry version 0, an empty audit anchor."""
    state = StoreState(root, hkdf(ring.secret, "securecmr/state"), ring.store_id)
    roots = RootKeeper(ring.secret, ring.store_id, root)
    try:
        roots.save(conn, {})
        state.seed(conn, "registry", {"version": 0})
        state.seed(conn, "audit", {"n": 0, "head": "0" * 64})
    finally:
        roots.close()
        state.close()


def _stat_key(path: Path | str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _cleanup_tmp(root: Path) -> None:
    for p in root.glob("*.tmp"):
        p.unlink()

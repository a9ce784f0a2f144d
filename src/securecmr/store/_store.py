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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..access import AccessControl, AccessMixin
from ..access._control import OPERATOR
from ..errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigurationError,
    DecryptionError,
    IntegrityError,
    KeyringError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
)
from ..index import BACKENDS, MilvusConnection
from ..index._milvus import INDEX_TYPES, milvus_names
from ..monitor import MonitorMixin, open_store_monitor
from ..protect._atomic import atomic_write
from ..protect._crypto import Sealer, hkdf
from ..protect._keyring import KEYRING_FILE, CollectionKeys, KeyProvider, Keyring, provider_for
from ._blocks import has_expired
from ._collection import Collection
from ._db import DB_FILE, connect
from ._encode import Encoders, default_hasher, hasher_from_bytes, hasher_to_bytes
from ._engine import CollectionEngine
from ._lock import WriterLock
from ._state import AuditAnchorRow, StoreState

__all__ = ["PROTECTION_MODES", "Store"]

PROTECTION_MODES = ("none", "salted", "encrypted", "salted+encrypted")
_MARKER = "SECURECMR_STORE"
_SNAP_MAGIC = b"SCMRSNAP1\n"


class Store(AccessMixin, MonitorMixin):
    """An embedded store. Use :meth:`create` / :meth:`open`; close it (or use ``with``).

    Any number of processes may open one store. Write calls are serialised between them by an
    ``flock`` on ``store.lock`` held for the length of the call (StoreLockedError when another
    process holds it longer than ``timeout``); readers never wait for each other. Every call first
    looks (cheaply) whether another process changed the store and reloads what changed: users and
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
        self._closed = False
        self._ring_stat = _stat_key(path / KEYRING_FILE)
        self._sync_lock = threading.RLock()
        self._config_sealer = Sealer(hkdf(ring.secret, "securecmr/config"))
        self._state = StoreState(
            path, hkdf(ring.secret, "securecmr/state"), ring.store_id, readonly=lock is None
        )
        self._access = AccessControl(
            path / "access",
            hkdf(ring.secret, "securecmr/access"),
            clock=clock,
            readonly=lock is None,
            guard=self._writing,
            anchor=AuditAnchorRow(self._state),
            registry_floor=self._registry_floor,
            on_registry_save=self._registry_saved,
            log_id=ring.store_id,
        )
        self._monitor = open_store_monitor(
            path / "monitor",
            hkdf(ring.secret, "securecmr/monitor"),
            store_id=ring.store_id,
            clock=clock,
            audit=self._access.audit,
        )

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, collections={len(self.collections())})"

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
        backend: str | None = None,
    ) -> Store:
        """Create a new store in ``path`` (an empty or missing directory).

        ``index_backend="milvus"`` serves the collections' searches from Milvus at ``milvus_uri``
        (a Milvus Lite file, by default ``<path>/milvus.db``, or a server URI; ``milvus_token`` or
        ``$SECURECMR_MILVUS_TOKEN`` for a server, never stored). The choice is remembered by
        :meth:`open`. ``backend`` is an older name of ``index_backend``."""
        provider = provider_for(passphrase, key_provider)
        index_backend = backend or index_backend
        index_cfg = _index_config(index_backend, milvus_uri, milvus_index)
        root = Path(path)
        if (root / _MARKER).exists() or (root / DB_FILE).exists():
            raise StoreExistsError(f"a store already exists at {root}; use Store.open")
        if root.exists() and any(root.iterdir()):
            raise StoreExistsError(f"{root} is not empty; give an empty or new directory")
        root.mkdir(parents=True, exist_ok=True)
        lock = WriterLock(root / "store.lock")
        ring = Keyring.new(uuid.uuid4().hex)
        ring.save(root, provider)
        conn = connect(root, create=True)
        conn.execute("INSERT INTO meta VALUES ('store_id', ?)", (ring.store_id,))
        sealer = Sealer(hkdf(ring.secret, "securecmr/config"))
        blob = sealer.seal(json.dumps(index_cfg).encode(), f"securecmr/index|{ring.store_id}".encode())
        conn.execute("INSERT INTO meta VALUES ('index', ?)", (base64.b64encode(blob).decode(),))
        atomic_write(root / _MARKER, json.dumps({"format": 1, "store_id": ring.store_id}).encode())
        milvus = _milvus_for(root, index_cfg, None, milvus_token)
        return cls(root, ring, provider, conn, lock, clock or time.time, index_backend, milvus)

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
            milvus = _milvus_for(root, cfg, milvus_uri, milvus_token)
            store = cls(root, ring, provider, conn, lock, clock or time.time, chosen, milvus)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if not readonly:
            try:
                store._purge(on_open=True)
            except BaseException:
                store.close()
                raise
        return store

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._lock is not None:
                with self._lock.hold():
                    self._save_segments()
                    self._access.close()
            else:
                self._access.close()
            self._monitor.close()
        finally:
            self._closed = True
            if self._milvus is not None:
                self._milvus.close()
            self._conn.close()
            self._state.close()
            if self._lock is not None:
                self._lock.release()

    def _save_segments(self) -> None:
        """Write the sealed index segments of changed collections (a cache: the SQLite rows are the
        durable record, and a missing, stale or damaged segment is rebuilt from them on open)."""
        for coll in self._collections.values():
            if not coll._engine.stale():
                coll._engine.save_segment()

    def _check_writable(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")
        if self._lock is None:
            raise StoreError("this store was opened readonly=True; open it for writing to change it")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the writer lock for one write call, with every change of other processes loaded."""
        self._check_writable()
        lock = self._lock
        if lock is None:  # unreachable after _check_writable; narrows the type
            raise StoreError("this store was opened readonly=True")
        with lock.hold():
            self._refresh()
            yield

    # ------------------------------------------------------------------ other processes
    def _registry_floor(self) -> int:
        got = self._state.get("registry")
        return 0 if got is None else int(got["version"])

    def _registry_saved(self, version: int) -> None:
        self._state.advance("registry", {"version": int(version)}, "version")

    def _refresh(self) -> None:
        """Load what other processes changed: the keyring (a rotation) and the collections' rows
        (each engine checks its generation on its next call; see CollectionEngine.sync)."""
        if self._closed:
            raise StoreError("the store is closed")
        key = _stat_key(self.path / KEYRING_FILE)
        if key == self._ring_stat:
            return
        with self._sync_lock:
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
                coll._engine.force_reload()

    def _keys_for(self, cid: str) -> CollectionKeys:
        self._refresh()
        keys = self._ring.collections.get(cid)
        if keys is None:
            raise IntegrityError(f"{KEYRING_FILE}: no keys for a collection of this store")
        return keys

    def _now(self) -> float:
        return float(self._clock())

    def _audit_op(self, action: str, **kw: Any) -> None:
        """Record an action of the store operator (the passphrase holder) in the audit log."""
        self._access.audit.append(action, principal=OPERATOR, **kw)

    # ------------------------------------------------------------------ collections
    def collections(self) -> list[str]:
        self._refresh()
        return sorted(r[0] for r in self._conn.execute("SELECT name FROM collections"))

    def create_collection(
        self,
        name: str,
        bits: int = 64,
        protection: str = "salted+encrypted",
        hasher: Any = None,
        ttl_hours: float | None = None,
        policy: str | None = None,
    ) -> Collection:
        """Create a collection. ``hasher`` (a fitted securecmr.hashing hasher) is saved without pickle;
        without one the data-independent zero-shot hasher is used."""
        with self._writing():
            self._create_collection(name, bits, protection, hasher, ttl_hours, policy)
        return self.collection(name)

    def _create_collection(
        self, name: str, bits: int, protection: str, hasher: Any, ttl_hours: float | None, policy: str | None
    ) -> None:
        if not isinstance(name, str) or not name or len(name) > 200:
            raise ConfigurationError("a collection name must be a non-empty string of at most 200 characters")
        if protection not in PROTECTION_MODES:
            raise ConfigurationError(f"unknown protection {protection!r}; choose one of {PROTECTION_MODES}")
        if not isinstance(bits, int) or bits <= 0 or bits % 8 or bits > 2040:
            raise ConfigurationError("bits must be a positive multiple of 8 (at most 2040)")
        if ttl_hours is not None and float(ttl_hours) <= 0:
            raise ConfigurationError("ttl_hours must be positive (or None for no expiry)")
        if hasher is not None and int(hasher.bits) != bits:
            raise ConfigurationError(
                f"the hasher makes {hasher.bits}-bit codes but the collection has {bits} bits"
            )
        if name in self.collections():
            raise CollectionExistsError(f"a collection named {name!r} already exists")
        if policy is not None:
            from ..access import compile_policy

            compile_policy(str(policy))
        cid = uuid.uuid4().hex
        config = {
            "name": name,
            "bits": bits,
            "protection": protection,
            "ttl_hours": ttl_hours,
            "policy": None if policy is None else str(policy),
            "created": self._now(),
            "hasher": None if hasher is None else base64.b64encode(hasher_to_bytes(hasher)).decode(),
        }
        self._ring.add_collection(cid)
        self._save_ring(self._provider, fresh_kdf=False)
        blob = self._config_sealer.seal(json.dumps(config).encode(), self._config_aad(cid))
        self._conn.execute("INSERT INTO collections VALUES (?,?,?,1,0)", (cid, name, blob))

    def _save_ring(self, provider: KeyProvider, *, fresh_kdf: bool = True) -> None:
        self._ring.save(self.path, provider, fresh_kdf=fresh_kdf)
        self._ring_stat = _stat_key(self.path / KEYRING_FILE)

    def _config_aad(self, cid: str) -> bytes:
        return f"securecmr/config|{self.store_id}|{cid}".encode()

    def collection(self, name: str) -> Collection:
        """Open a collection by name (CollectionNotFoundError when there is none)."""
        self._refresh()
        coll = self._collections.get(name)
        if coll is not None:
            return coll
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
        keys = self._ring.collections.get(cid)
        if keys is None:
            raise IntegrityError(f"{KEYRING_FILE}: no keys for collection {name!r}")
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
            keys_source=lambda: self._keys_for(cid),
        )
        hz = config.get("hasher")
        bits = int(config["bits"])
        loader = (lambda: hasher_from_bytes(base64.b64decode(hz))) if hz else (lambda: default_hasher(bits))
        coll = Collection(self, engine, Encoders(None, engine.bits, loader=loader))
        self._collections[name] = coll
        return coll

    def _index_options(self, name: str, bits: int) -> dict[str, Any] | None:
        if self._milvus is None:
            return None
        coll, tenant, state = milvus_names(hkdf(self._ring.secret, "securecmr/milvus"), name, bits)
        return {
            "connection": self._milvus,
            "collection": coll,
            "tenant": tenant,
            "state": state,
            "readonly": self.readonly,
        }

    # ------------------------------------------------------------------ retention and erasure
    def _purge_collection(self, engine: CollectionEngine, now: float) -> int:
        seqs = engine.expired(now)
        return engine.delete_seqs(seqs, now=now, by="ttl") if seqs else 0

    def purge(self) -> int:
        """Delete every item past its collection's TTL and not under legal hold; returns the count.

        Every call is audited; the automatic purge when a store is opened is audited only when it
        deleted something."""
        return self._purge(on_open=False)

    def _purge(self, *, on_open: bool) -> int:
        with self._writing():
            return self._purge_locked(on_open=on_open)

    def _purge_locked(self, *, on_open: bool) -> int:
        now = self._now()
        total = 0
        for cid, name in self._conn.execute("SELECT cid, name FROM collections").fetchall():
            if has_expired(self._conn, cid, now):
                total += self._purge_collection(self.collection(name)._engine, now)
        if total or not on_open:
            self._audit_op("purge", detail={"count": total})
        return total

    def compact(self, *, by: str | None = None) -> dict[str, Any]:
        """Scrub deleted rows from the files (VACUUM, WAL truncated) and return a signed erasure
        receipt listing the id HMACs erased since the last compaction."""
        with self._writing():
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
        for coll in self._collections.values():  # ask Milvus to drop deleted rows from its segments
            compact_index = getattr(coll._engine.index, "compact", None)
            if compact_index is not None:
                compact_index()
        receipt = {
            "format": 1,
            "store_id": self.store_id,
            "erased": erased,
            "count": sum(len(v) for v in erased.values()),
            "at": self._now(),
            "by": by,
            "files": sorted(p.name for p in self.path.iterdir() if p.is_file()),
        }
        receipt["signature"] = self._sign(receipt)
        self._audit_op("compact", detail={"count": receipt["count"]})
        return receipt

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
        provider = provider_for(new_passphrase, new_key_provider)
        with self._writing():
            self._rotate(provider, reencrypt)

    def _rotate(self, provider: KeyProvider, reencrypt: bool) -> None:
        self._ring.rotate_master()
        if reencrypt:
            self._ring.new_data_keys()
        self._save_ring(provider)
        self._provider = provider
        if reencrypt:
            for name in self.collections():
                eng = self.collection(name)._engine
                eng.reseal(eng.keys.current)
            self._ring.drop_old_data_keys()
            self._save_ring(provider, fresh_kdf=False)
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._audit_op("keys.rotate", detail={"reencrypt": reencrypt})

    # ------------------------------------------------------------------ snapshots
    def export_snapshot(self, path: str | os.PathLike[str]) -> None:
        """Write an encrypted snapshot (keyring + sealed database) to ``path``."""
        if self._closed:
            raise StoreError("the store is closed")
        self._conn.execute("PRAGMA wal_checkpoint(FULL)")
        dest = Path(path)
        tmpdb = dest.with_name(dest.name + ".db.tmp")
        if tmpdb.exists():
            tmpdb.unlink()
        self._conn.execute("VACUUM INTO ?", (str(tmpdb),))
        try:
            db = tmpdb.read_bytes()
        finally:
            tmpdb.unlink()
        ring = (self.path / KEYRING_FILE).read_bytes()
        sealed = Sealer(hkdf(self._ring.secret, "securecmr/snapshot")).seal(
            db, f"securecmr/snapshot|{self.store_id}".encode()
        )
        header = json.dumps({"store_id": self.store_id, "keyring": len(ring)}).encode()
        atomic_write(dest, _SNAP_MAGIC + len(header).to_bytes(4, "big") + header + ring + sealed)
        self._audit_op("export.snapshot")

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
        """Restore a snapshot into a new store directory ``path`` and open it."""
        provider = provider_for(passphrase, key_provider)
        data = Path(snapshot).read_bytes()
        if not data.startswith(_SNAP_MAGIC):
            raise IntegrityError(f"{Path(snapshot).name}: not a securecmr snapshot")
        off = len(_SNAP_MAGIC)
        hlen = int.from_bytes(data[off : off + 4], "big")
        header = json.loads(data[off + 4 : off + 4 + hlen])
        ring_bytes = data[off + 4 + hlen : off + 4 + hlen + int(header["keyring"])]
        sealed = data[off + 4 + hlen + int(header["keyring"]) :]
        root = Path(path)
        if root.exists() and any(root.iterdir()):
            raise StoreExistsError(f"{root} is not empty; import into a new directory")
        root.mkdir(parents=True, exist_ok=True)
        atomic_write(root / KEYRING_FILE, ring_bytes)
        ring = Keyring.load(root, provider)
        try:
            db = Sealer(hkdf(ring.secret, "securecmr/snapshot")).open(
                sealed, f"securecmr/snapshot|{ring.store_id}".encode()
            )
        except Exception:
            (root / KEYRING_FILE).unlink()
            raise IntegrityError(f"{Path(snapshot).name}: the snapshot does not authenticate") from None
        atomic_write(root / DB_FILE, db)
        conn = connect(root)
        try:  # the snapshot carries neither the audit log nor the users: the new store starts both
            conn.execute("DELETE FROM meta WHERE key IN ('state/audit', 'state/registry')")
        finally:
            conn.close()
        atomic_write(root / _MARKER, json.dumps({"format": 1, "store_id": ring.store_id}).encode())
        return cls.open(root, key_provider=provider, clock=clock)


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
    root: Path, cfg: dict[str, Any], uri: str | None, token: str | None
) -> MilvusConnection | None:
    if cfg.get("backend") != "milvus":
        if uri is not None:
            raise ConfigurationError('milvus_uri= needs a store whose index backend is "milvus"')
        return None
    chosen = _absolute(uri) if uri is not None else cfg.get("uri") or str(root / MILVUS_LITE_FILE)
    return MilvusConnection(chosen, token=token, index_type=str(cfg.get("index_type", "BIN_FLAT")))


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _cleanup_tmp(root: Path) -> None:
    for p in root.glob("*.tmp"):
        p.unlink()

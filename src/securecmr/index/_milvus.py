"""Milvus backend: the same exact Hamming search, served by Milvus (Lite, standalone or a cluster).

Layout in Milvus. A store's collections that share a tenant-visible name and a code width share one
Milvus collection (``scmr_<store tag>_<name tag>``); each store collection is one tenant in it,
told apart by the ``tenant`` field (a keyed tag), which is the collection's partition key on a
server (Milvus Lite has no partition keys: there it is an ordinary, always-filtered field). Every
row is one code::

    pk INT64 (auto) | tenant VARCHAR(16) | seq INT64 | mod INT8 | rk INT64 | code BINARY_VECTOR(bits)

``seq`` is the store's row number of the item, ``mod`` the code's modality and ``rk = 4*seq + mod``
its position key (increasing in insertion order). Milvus never receives ids, text, labels, attrs,
refs, names or keys: only the codes as the collection's protection leaves them (salted in the
``salted`` modes), row numbers and keyed tags. A small ``scmr_<store tag>_state`` collection holds,
per store collection, the generation and a checksum of what was last written; when they do not match
the store's durable record on open (a crash between the two, a restored snapshot, a wiped server)
the rows are rebuilt from SQLite, like the faiss segments.

Exactness. ``BIN_FLAT`` is exact but Milvus returns equal distances in no fixed order, so the backend
asks for more rows than needed and re-sorts by (distance, rk); when the ``k``-th distance ties with
the last row returned it widens the request, and past Milvus' top-k cap (16,384) it scans the
collection in key-range chunks. Results therefore equal the faiss and brute-force backends', ties
included. ``BIN_IVF_FLAT`` (optional) is approximate and gives up that guarantee.

Record-level policies are pushed down as a filter expression on ``seq`` (``seq in [...]`` or
``seq not in [...]``, whichever is shorter) and applied again by the SDK to what comes back.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
import warnings
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .._lazy import require
from ..errors import ConfigurationError, IndexUnavailableError, SecureCMRError
from ._base import IndexBase, sort_results

__all__ = ["INDEX_TYPES", "TOKEN_ENV", "MilvusConnection", "MilvusIndex", "milvus_names", "row_keys"]

log = logging.getLogger("securecmr.index.milvus")

TOKEN_ENV = "SECURECMR_MILVUS_TOKEN"
INDEX_TYPES = ("BIN_FLAT", "BIN_IVF_FLAT")
MAX_LIMIT = 16384  # Milvus' cap on top-k (and on nq) per search
_INSERT_BATCH = 50_000  # rows per insert request (64-bit codes: about 2 MB of columns)
_DELETE_BATCH = 5_000  # keys per delete expression
_FLUSH_ROWS = 100_000  # rows inserted before the backend asks the server to seal and index them
_FLUSH_ROWS_CLOSING = 10_000  # ... or when the store closes
_ATTEMPTS = 2  # a failed batch is undone and sent once more before the backend falls behind
_COMPACT_WAIT = 300.0  # seconds to wait for the server's compaction
_SERVER_ERASURE_NOTE = (
    "the server flushed and compacted this collection: its new segment files hold no deleted row, "
    "and its garbage collector removes the old ones after dataCoord.gc.dropTolerance (3 hours by "
    "default, checked every dataCoord.gc.interval, 1 hour); its write-ahead message log (rocksmq, "
    "Pulsar or Kafka) keeps inserted rows until its retention period ends (rocksmq: 3 days by "
    "default), and copies outside the server (object storage versions, backups) are not covered"
)
_QUERY_BATCH = 256
_OVERFETCH_MAX = 4096  # a permissive filter is applied in the SDK to at most this many rows a query
_POP = np.array([bin(i).count("1") for i in range(256)], dtype=np.int32)
_REMOTE = ("http://", "https://", "tcp://", "grpc://", "unix:")
_LITE_USERS: dict[str, int] = {}  # open connections per Milvus Lite file in this process
_LITE_LOCK = threading.Lock()


def milvus_names(key: bytes, tenant: str | None, name: str, bits: int) -> tuple[str, str, str]:
    """(Milvus collection, tenant tag, state collection) for the store collection ``name`` of
    ``tenant`` (None: the operator's): keyed tags, so Milvus learns neither collection nor tenant
    names. The tenant comes from the caller; nothing here knows how the access layer spells it."""

    def tag(label: str) -> str:
        return hmac.new(key, label.encode(), hashlib.sha256).hexdigest()[:16]

    store = tag("store")
    return (
        f"scmr_{store}_{tag(f'collection|{name}|{bits}')}",
        tag(f"tenant|{tenant or ''}"),
        f"scmr_{store}_state",
    )


def _shown(uri: str) -> str:
    """The URI without credentials or query string (for repr and messages)."""
    if not uri.startswith(_REMOTE):
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class MilvusConnection:
    """Where the Milvus index lives: a Milvus Lite file (``path/to/milvus.db``) or a server URI
    (``http://host:19530``, ``https://...``) with an optional token. The token comes from the
    argument or ``$SECURECMR_MILVUS_TOKEN``; it is kept in memory only and never shown."""

    def __init__(
        self,
        uri: str,
        *,
        token: str | None = None,
        index_type: str = "BIN_FLAT",
        nlist: int = 1024,
        nprobe: int = 32,
        timeout: float | None = 30.0,
    ) -> None:
        if not isinstance(uri, str) or not uri:
            raise ConfigurationError("milvus_uri must be a Milvus Lite file path (*.db) or a server URI")
        if index_type not in INDEX_TYPES:
            raise ConfigurationError(f"unknown Milvus index {index_type!r}; choose one of {INDEX_TYPES}")
        self.local = not uri.startswith(_REMOTE)
        if self.local and not uri.endswith(".db"):
            raise ConfigurationError("a Milvus Lite URI is a local file whose name ends in .db")
        if not self.local and urlsplit(uri).password is not None:
            raise ConfigurationError(
                "put no credentials in milvus_uri; pass milvus_token= (or set the env var)"
            )
        self.uri = uri
        self.index_type = index_type
        self.nlist = int(nlist)
        self.nprobe = int(nprobe)
        self.timeout = timeout
        self._token = token if token is not None else os.environ.get(TOKEN_ENV)
        self._client: Any = None
        self._schemas: dict[str, Any] = {}
        self._indexes: weakref.WeakSet[Any] = weakref.WeakSet()  # settled before closing

    def __repr__(self) -> str:
        return (
            f"MilvusConnection({_shown(self.uri)!r}, index={self.index_type!r}, "
            f"token={'<set>' if self._token else None})"
        )

    @property
    def partition_key(self) -> bool:
        """Whether the tenant field is a partition key (servers only; Milvus Lite lacks them)."""
        return not self.local

    def client(self) -> Any:
        if self._client is not None:
            return self._client
        pymilvus = require("pymilvus", extra="milvus")
        if self.local:
            with warnings.catch_warnings():  # milvus-lite imports the deprecated pkg_resources
                warnings.simplefilter("ignore")
                require("milvus_lite", package="milvus-lite", extra="milvus")
            os.makedirs(os.path.dirname(os.path.abspath(self.uri)), exist_ok=True)
        try:
            kwargs: dict[str, Any] = {"uri": self.uri}
            if self._token:
                kwargs["token"] = self._token
            if self.timeout is not None and not self.local:
                kwargs["timeout"] = self.timeout
            self._client = pymilvus.MilvusClient(**kwargs)
            if self.local:
                if os.path.exists(self.uri):
                    os.chmod(self.uri, 0o600)  # like the store's own files
                path = os.path.realpath(self.uri)
                with _LITE_LOCK:
                    _LITE_USERS[path] = _LITE_USERS.get(path, 0) + 1
        except Exception as exc:
            raise IndexUnavailableError(
                f"cannot reach Milvus at {_shown(self.uri)} ({type(exc).__name__}); check the URI and token"
            ) from None
        return self._client

    def close(self) -> None:
        for index in list(self._indexes):  # inserts still in flight land (and their markers)
            index.settle(closing=True)
        self._schemas.clear()
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.close()
        except Exception:  # closing a dead connection must not hide the caller's own error
            log.debug("closing the Milvus client failed", exc_info=True)
        if self.local:  # stop the Milvus Lite server (and free its file lock) when its last user closes
            path = os.path.realpath(self.uri)
            with _LITE_LOCK:
                left = _LITE_USERS.get(path, 1) - 1
                if left > 0:
                    _LITE_USERS[path] = left
                    return
                _LITE_USERS.pop(path, None)
                try:
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(path)
                except Exception:
                    log.debug("stopping the Milvus Lite server failed", exc_info=True)

    def reset(self) -> None:
        """Drop a server connection after a failure, so the next request dials afresh (a gRPC
        channel that failed can wait long before it retries by itself). Milvus Lite is kept."""
        if self.local or self._client is None:
            return
        client, self._client = self._client, None
        self._schemas.clear()
        try:
            client.close()
        except Exception:
            log.debug("closing the failed Milvus client failed", exc_info=True)

    def insert_columns(self, collection: str, columns: dict[str, list[Any]], *, wait: bool = True) -> Any:
        """Insert rows given column by column (one request; much cheaper to build than rows).
        With ``wait=False`` the request is sent and a future returned (``.result()`` raises)."""
        from pymilvus import DataType

        client = self.client()
        schema = self._schemas.get(collection)
        handler = client._get_connection()
        if schema is None:
            schema = self._schemas[collection] = handler.describe_collection(collection, timeout=self.timeout)
        types = {f["name"]: f["type"] for f in schema["fields"]}
        entities = [
            {"name": name, "type": types.get(name, DataType.UNKNOWN), "values": values}
            for name, values in columns.items()
        ]
        if not wait:
            return handler.batch_insert(
                collection, entities, schema=schema, timeout=self.timeout, _async=True
            )
        return handler.batch_insert(collection, entities, schema=schema, timeout=self.timeout)

    def flush_soon(self, collection: str) -> None:
        """Ask the server to seal the collection's growing segments (it then indexes them: searches
        over sealed, indexed segments are many times faster than over growing ones); returns
        without waiting for the data to be written."""
        if self.local:
            return
        handler = self.client()._get_connection()

        def flush() -> None:  # in the background: the request itself takes a while to answer
            try:
                handler.flush([collection], timeout=self.timeout, _async=True)
            except Exception:
                log.debug("the Milvus flush request failed", exc_info=True)

        threading.Thread(target=flush, name="securecmr-milvus-flush", daemon=True).start()

    def search_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"metric_type": "HAMMING"}
        if self.index_type == "BIN_IVF_FLAT":
            params["params"] = {"nprobe": self.nprobe}
        return params


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _digest(keys: np.ndarray, codes: np.ndarray) -> int:
    """An order-free checksum of (key, code) rows that can be updated row by row."""
    if keys.size == 0:
        return 0
    nb = codes.shape[1]
    pad = (-nb) % 8
    words = np.ascontiguousarray(np.pad(codes, ((0, 0), (0, pad)))).view(np.uint64)
    h = _mix(keys.astype(np.uint64))
    for j in range(words.shape[1]):
        h = _mix(h ^ words[:, j])
    with np.errstate(over="ignore"):
        return int(h.sum(dtype=np.uint64))


class MilvusIndex(IndexBase):
    """The :class:`~securecmr.index.IndexBackend` protocol over one tenant of a Milvus collection.

    Rows are addressed by position, like the in-memory backends; the backend keeps each row's key
    and code locally (``bits / 8 + 8`` bytes a code) to map Milvus answers back to positions, to
    write the store's sealed segment and to rebuild Milvus. ``persistent`` tells the store to call
    :meth:`sync` on open and :meth:`commit` after every change instead of re-adding every row.

    Writes reach Milvus after the store's own record (SQLite) holds them, so an acknowledged write
    is never lost. When Milvus fails during a write the backend falls behind: it remembers what
    Milvus is missing (rows added from a key on, keys removed), and the next add or search first
    tries to catch up (re-sending just those rows when Milvus' state marker is the last one
    written, rebuilding the tenant from the local copy otherwise). While that fails, adds raise
    :class:`IndexUnavailableError` before storing anything and searches raise it too; deletes are
    always accepted (erasure must not wait for an index). A read-only opener searches its local
    copy instead.
    """

    persistent = True
    pushdown = True
    max_limit = MAX_LIMIT

    def __init__(
        self,
        bits: int,
        *,
        connection: MilvusConnection,
        collection: str,
        tenant: str,
        state: str,
        readonly: bool = False,
    ) -> None:
        self.bits = bits
        self._conn = connection
        self._coll = collection
        self._tenant = tenant
        self._state = state
        self._readonly = readonly
        self._keys = np.zeros(0, dtype=np.int64)
        self._codes = np.zeros((0, bits // 8), dtype=np.uint8)
        self._digest = 0
        self._degraded = False  # a reader searching its local copy
        self._ready = False
        self._gen = 0
        self._committed: tuple[int, int, int] | None = None  # the marker last written or adopted
        # Session consistency lets the writer read its own inserts without waiting for the newest
        # server timestamp (a Strong read waits for it: about 0.3 s on a standalone server); the
        # first read after a delete (whose timestamp the client does not get from every server
        # version) and every read of a reader (who must see another process' writes) are Strong
        self._strong = readonly
        self._behind = False  # Milvus misses changes (writer): rows from _since on, keys in _removed
        self._since: int | None = None
        self._removed: list[np.ndarray] = []
        # inserts sent but not yet confirmed (the store prepares its next batch meanwhile), and
        # whether the marker waits for them
        self._inflight: list[tuple[Any, np.ndarray, np.ndarray]] = []
        self._marker_due = False
        self._unflushed = 0  # rows inserted since the last flush request
        self._lock = threading.RLock()  # searches may run in several threads (the store's read lock)
        connection._indexes.add(self)

    def __repr__(self) -> str:
        mode = "local fallback" if self._degraded else "behind" if self._behind else "milvus"
        return f"MilvusIndex(bits={self.bits}, n={len(self)}, {mode})"

    def __len__(self) -> int:
        return int(self._keys.size)

    @property
    def degraded(self) -> bool:
        """True when a read-only opener searches its local copy because Milvus is stale or unreachable."""
        return self._degraded

    @property
    def behind(self) -> bool:
        """True while Milvus misses changes that the store holds (caught up on the next write or search)."""
        return self._behind

    # ------------------------------------------------------------------ Milvus plumbing
    def _client(self) -> Any:
        client = self._conn.client()
        if not self._ready:
            self._ensure(client)
            self._ready = True
        return client

    @property
    def _t(self) -> float | None:
        return self._conn.timeout

    def _ensure(self, client: Any) -> None:
        from pymilvus import DataType

        t = self._t
        slow = None if t is None else max(t, 120.0)  # creating includes loading: longer than a request
        if client.has_collection(self._coll, timeout=t):
            fields = client.describe_collection(self._coll, timeout=t).get("fields", [])
            dims = [f.get("params", {}).get("dim") for f in fields if f.get("name") == "code"]
            if not dims or int(dims[0]) != self.bits:
                raise ConfigurationError(
                    f"the Milvus collection {self._coll} holds codes of another width than {self.bits} bits"
                )
        else:
            if self._readonly:
                raise IndexUnavailableError("the Milvus collection does not exist yet")
            schema = client.create_schema(auto_id=True, enable_dynamic_field=False)
            schema.add_field("pk", DataType.INT64, is_primary=True)
            schema.add_field(
                "tenant", DataType.VARCHAR, max_length=16, is_partition_key=self._conn.partition_key
            )
            schema.add_field("seq", DataType.INT64)
            schema.add_field("mod", DataType.INT8)
            schema.add_field("rk", DataType.INT64)
            schema.add_field("code", DataType.BINARY_VECTOR, dim=self.bits)
            params = client.prepare_index_params()
            extra = {"nlist": self._conn.nlist} if self._conn.index_type == "BIN_IVF_FLAT" else {}
            params.add_index(
                field_name="code", index_type=self._conn.index_type, metric_type="HAMMING", params=extra
            )
            client.create_collection(
                self._coll, schema=schema, index_params=params, consistency_level="Strong", timeout=slow
            )
        if not client.has_collection(self._state, timeout=t):
            if self._readonly:
                raise IndexUnavailableError("the Milvus state collection does not exist yet")
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("key", DataType.VARCHAR, max_length=64, is_primary=True)
            schema.add_field("gen", DataType.INT64)
            schema.add_field("n", DataType.INT64)
            schema.add_field("digest", DataType.INT64)
            schema.add_field("v", DataType.BINARY_VECTOR, dim=8)
            params = client.prepare_index_params()
            params.add_index(field_name="v", index_type="BIN_FLAT", metric_type="HAMMING")
            client.create_collection(
                self._state, schema=schema, index_params=params, consistency_level="Strong", timeout=slow
            )

    def _state_key(self) -> str:
        return f"{self._coll[-16:]}|{self._tenant}"

    def _where(self, extra: str = "") -> str:
        base = f'tenant == "{self._tenant}"'
        return f"{base} and {extra}" if extra else base

    def _signed(self) -> int:
        return self._digest - (1 << 64) if self._digest >= 1 << 63 else self._digest

    def _marker(self, client: Any) -> tuple[int, int, int] | None:
        rows = client.query(
            self._state, ids=[self._state_key()], output_fields=["gen", "n", "digest"], timeout=self._t
        )
        if not rows:
            return None
        r = rows[0]
        return int(r["gen"]), int(r["n"]), int(r["digest"])

    def _write_marker(self, client: Any, gen: int) -> None:
        mark = (int(gen), len(self), self._signed())
        client.upsert(
            self._state,
            [{"key": self._state_key(), "gen": mark[0], "n": mark[1], "digest": mark[2], "v": b"\0"}],
            timeout=self._t,
        )
        self._committed = mark

    def _count(self, client: Any) -> int:
        """How many rows Milvus holds for this tenant (a lost or foreign row shows here)."""
        rows = client.query(self._coll, filter=self._where(), output_fields=["count(*)"], timeout=self._t)
        return int(rows[0]["count(*)"]) if rows else 0

    def _retry(self, action: Any, undo: Any = None) -> None:
        """Run ``action`` (one batch), a second time after a failure (first ``undo``-ing whatever
        of it may have landed, so a retried insert never doubles rows)."""
        for attempt in range(_ATTEMPTS):
            try:
                action()
                return
            except Exception:
                if attempt == _ATTEMPTS - 1:
                    raise
                log.debug("Milvus request failed; retrying", exc_info=True)
                time.sleep(0.2 * (attempt + 1))
                if undo is not None:
                    try:
                        undo()
                    except Exception:
                        log.debug("undoing a failed Milvus batch failed", exc_info=True)

    def _insert(self, keys: np.ndarray, codes: np.ndarray) -> None:
        """Column-wise inserts in batches, each retried once."""
        for i in range(0, keys.size, _INSERT_BATCH):
            ks = keys[i : i + _INSERT_BATCH]
            cs = np.ascontiguousarray(codes[i : i + _INSERT_BATCH])
            lo, hi = int(ks[0]), int(ks[-1])
            self._retry(
                lambda ks=ks, cs=cs: self._insert_batch(ks, cs),
                lambda lo=lo, hi=hi: self._client().delete(
                    self._coll, filter=self._where(f"rk >= {lo} and rk <= {hi}"), timeout=self._t
                ),
            )

    def _send(self, keys: np.ndarray, codes: np.ndarray) -> None:
        """Send inserts without waiting for them (confirmed by :meth:`settle`)."""
        for i in range(0, keys.size, _INSERT_BATCH):
            ks = keys[i : i + _INSERT_BATCH]
            cs = np.ascontiguousarray(codes[i : i + _INSERT_BATCH])
            if self._behind:
                self._fall_behind("", added=ks)
                continue
            try:
                self._inflight.append((self._insert_batch(ks, cs, wait=False), ks, cs))
            except Exception as exc:
                self._fall_behind(f"insert failed ({type(exc).__name__})", added=ks)

    def settle(self, *, closing: bool = False) -> None:
        """Wait for the inserts in flight (a failed one is undone and sent again once, else the
        backend falls behind from it) and write the state marker if it waits for them."""
        with self._lock:
            self._settle(closing)

    def _settle(self, closing: bool) -> None:
        inflight, self._inflight = self._inflight, []
        for future, ks, cs in inflight:
            if self._behind:
                self._fall_behind("", added=ks)
                continue
            try:
                future.result()
                self._unflushed += int(ks.size)
            except Exception:
                log.debug("a Milvus insert failed; sending it again", exc_info=True)
                lo, hi = int(ks[0]), int(ks[-1])
                try:
                    self._client().delete(
                        self._coll, filter=self._where(f"rk >= {lo} and rk <= {hi}"), timeout=self._t
                    )
                    self._insert_batch(ks, cs)
                except Exception as exc:
                    self._fall_behind(f"insert failed ({type(exc).__name__})", added=ks)
        if self._marker_due and not self._behind:
            try:
                self._write_marker(self._client(), self._gen)
            except Exception as exc:
                self._fall_behind(f"writing the state marker failed ({type(exc).__name__})")
        self._marker_due = False
        if self._unflushed >= (_FLUSH_ROWS_CLOSING if closing else _FLUSH_ROWS) and not self._behind:
            self._unflushed = 0
            try:
                self._conn.flush_soon(self._coll)
            except Exception:
                log.debug("the Milvus flush request failed", exc_info=True)

    def _insert_batch(self, ks: np.ndarray, cs: np.ndarray, *, wait: bool = True) -> Any:
        self._client()
        nb = cs.shape[1]
        blob = cs.tobytes()
        sent = self._conn.insert_columns(
            self._coll,
            {
                "tenant": [self._tenant] * int(ks.size),
                "seq": (ks >> 2).tolist(),
                "mod": (ks & 3).tolist(),
                "rk": ks.tolist(),
                "code": [blob[j : j + nb] for j in range(0, len(blob), nb)],
            },
            wait=wait,
        )
        self._strong = self._readonly
        return sent

    def _delete_keys(self, keys: np.ndarray) -> None:
        self._strong = True
        keys = np.unique(keys)
        for i in range(0, keys.size, _DELETE_BATCH):
            chunk = ",".join(map(str, keys[i : i + _DELETE_BATCH].tolist()))
            self._retry(
                lambda chunk=chunk: self._client().delete(
                    self._coll, filter=self._where(f"rk in [{chunk}]"), timeout=self._t
                )
            )

    def _rebuild(self, client: Any, gen: int) -> None:
        """Replace this tenant's rows in Milvus by the local copy and write the marker."""
        self._strong = True
        self._retry(lambda: client.delete(self._coll, filter=self._where(), timeout=self._t))
        self._insert(self._keys, self._codes)
        self._write_marker(client, gen)

    def _unavailable(self, what: str, exc: BaseException | None = None) -> IndexUnavailableError:
        why = f" ({type(exc).__name__})" if exc is not None else ""
        return IndexUnavailableError(
            f"Milvus at {_shown(self._conn.uri)} is unreachable or failing: {what}{why}. The store's "
            "own record is intact and nothing acknowledged is lost; the index catches up by itself "
            "once Milvus answers again"
        )

    def _fall_behind(
        self, why: str, added: np.ndarray | None = None, removed: np.ndarray | None = None
    ) -> None:
        if why:
            self._conn.reset()
        if not self._behind:
            log.warning("Milvus index %s: %s; catching up when Milvus answers again", self._coll, why)
        self._behind = True
        if added is not None and added.size:
            lo = int(added[0])
            self._since = lo if self._since is None else min(self._since, lo)
        if removed is not None and removed.size:
            self._removed.append(removed)

    def _catch_up(self) -> bool:
        """Send Milvus what it missed; True when it holds exactly the local rows again."""
        with self._lock:
            return self._catch_up_locked()

    def _catch_up_locked(self) -> bool:
        self.settle()
        try:
            client = self._client()
            if self._marker(client) != self._committed:  # changed behind our back: start over
                self._rebuild(client, self._gen)
            else:
                self._strong = True
                if self._since is not None:
                    since = self._since
                    self._retry(
                        lambda: client.delete(
                            self._coll, filter=self._where(f"rk >= {since}"), timeout=self._t
                        )
                    )
                    sel = self._keys >= since
                    self._insert(self._keys[sel], self._codes[sel])
                if self._removed:
                    self._delete_keys(np.concatenate(self._removed))
                if self._count(client) != len(self):
                    self._rebuild(client, self._gen)
                else:
                    self._write_marker(client, self._gen)
        except Exception as exc:
            log.debug("catching up with Milvus failed (%s)", type(exc).__name__)
            self._conn.reset()
            return False
        self._behind, self._since, self._removed = False, None, []
        log.warning("Milvus index %s caught up (%d rows)", self._coll, len(self))
        return True

    def _degrade(self, why: str) -> None:
        if not self._degraded:
            log.warning("Milvus index %s: %s; this reader searches its local copy", self._coll, why)
        self._degraded = True

    # ------------------------------------------------------------------ lifecycle hooks (store)
    def sync(self, codes: np.ndarray, keys: np.ndarray, gen: int) -> bool:
        """Adopt the durable record's rows (``keys`` increasing); rebuild Milvus from them unless its
        state marker says it already holds exactly them and it holds as many rows for this tenant
        (so rows lost or added behind the store's back are noticed too). True when rebuilt."""
        keys = np.asarray(keys, dtype=np.int64)
        if keys.size > 1 and not np.all(np.diff(keys) > 0):
            raise ConfigurationError("row keys must increase with insertion order")
        self._keys = keys.copy()
        self._codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, self.bits // 8).copy()
        self._digest = _digest(self._keys, self._codes)
        self._degraded = self._behind = False
        self._since, self._removed, self._gen = None, [], int(gen)
        self._inflight, self._marker_due = [], False
        want = (int(gen), len(self), self._signed())
        try:
            client = self._client()
            marker = self._marker(client)
            fresh = marker == want and self._count(client) == len(self)
        except SecureCMRError as exc:
            if self._readonly and isinstance(exc, IndexUnavailableError):
                self._degrade("unreachable from this read-only opener")
                return False
            raise
        except Exception as exc:
            self._conn.reset()
            if not self._readonly:
                raise self._unavailable("opening the index", exc) from None
            self._degrade("unreachable from this read-only opener")
            return False
        if fresh:
            self._committed = want
            return False
        if self._readonly:
            self._degrade("stale (written by another process)")
            return False
        try:
            self._rebuild(client, gen)
        except Exception as exc:
            raise self._unavailable("rebuilding the index from the store", exc) from None
        return True

    def commit(self, gen: int) -> None:
        """Record that Milvus holds the rows of generation ``gen`` (not while behind: the catch-up
        writes the marker)."""
        self._gen = int(gen)
        if self._degraded or self._readonly or self._behind:
            return
        if self._inflight:  # written once they land (next call, or when the store closes)
            self._marker_due = True
            return
        try:
            self._write_marker(self._client(), gen)
        except Exception as exc:
            self._fall_behind(f"writing the state marker failed ({type(exc).__name__})")

    def check_writable(self) -> None:
        """Called by the store before it adds items: raises IndexUnavailableError (nothing added)
        while Milvus misses earlier changes and still cannot take them."""
        if self._behind and not self._degraded and not self._readonly and not self._catch_up():
            raise self._unavailable("nothing was added")

    def compact(self) -> dict[str, Any]:
        """Flush, then have the server compact this collection (dropping deleted rows from its
        segment files) and wait for it. Returns what the erasure receipt should say about Milvus."""
        out: dict[str, Any] = {"backend": "milvus", "uri": _shown(self._conn.uri), "compacted": False}
        if self._conn.local:
            out["note"] = (
                "Milvus Lite cannot compact: deleted codes can remain in the Lite file until it is "
                "rebuilt or deleted"
            )
            return out
        self.settle()
        if self._degraded or self._readonly or (self._behind and not self._catch_up()):
            out["note"] = "Milvus was unreachable: run compact() again when it answers"
            return out
        try:
            client = self._client()
            client.flush(self._coll, timeout=self._t)
            job = client.compact(self._coll, timeout=self._t)
            deadline = time.monotonic() + _COMPACT_WAIT
            while str(client.get_compaction_state(job, timeout=self._t)) != "Completed":
                if time.monotonic() > deadline:
                    raise TimeoutError("compaction did not finish")
                time.sleep(0.5)
            out["compacted"] = True
            out["note"] = _SERVER_ERASURE_NOTE
        except Exception as exc:
            log.debug("Milvus compaction failed", exc_info=True)
            out["note"] = (
                f"the server's compaction did not finish ({type(exc).__name__}); run compact() again"
            )
        return out

    # ------------------------------------------------------------------ IndexBackend
    def add(self, codes: np.ndarray, keys: np.ndarray | None = None) -> None:
        """Append rows; ``keys`` (int64, increasing, above every stored key) are required."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, self.bits // 8)
        if keys is None:
            raise ConfigurationError("the Milvus backend needs row keys with every add")
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        if keys.size != codes.shape[0]:
            raise ConfigurationError("one row key per code is needed")
        if keys.size == 0:
            return
        if (self._keys.size and keys[0] <= self._keys[-1]) or np.any(np.diff(keys) <= 0):
            raise ConfigurationError("row keys must increase with insertion order")
        self._keys = np.concatenate([self._keys, keys])
        self._codes = np.concatenate([self._codes, codes])
        with np.errstate(over="ignore"):
            self._digest = (self._digest + _digest(keys, codes)) % (1 << 64)
        if self._degraded:
            return
        self.settle()  # the previous add's inserts (they ran while the store sealed this one)
        self._send(keys, codes)

    def remove(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size == 0:
            return
        self.settle()  # deletes go after the inserts they may concern
        gone = self._keys[rows]
        self._digest = (self._digest - _digest(gone, self._codes[rows])) % (1 << 64)
        self._keys = np.delete(self._keys, rows)
        self._codes = np.delete(self._codes, rows, axis=0)
        if self._degraded:
            return
        if self._behind:
            self._fall_behind("", removed=gone)
            return
        try:
            self._delete_keys(gone)
        except Exception as exc:
            self._fall_behind(f"delete failed ({type(exc).__name__})", removed=gone)

    def codes(self) -> np.ndarray:
        return self._codes

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.search_filtered(queries, k)

    def search_filtered(
        self,
        queries: np.ndarray,
        k: int,
        *,
        seqs: np.ndarray | None = None,
        modality: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` rows among codes of items ``seqs`` (all when None) and of ``modality``,
        sorted by (distance, row). A permissive ``seqs`` set is applied by the SDK to an
        over-fetched answer; a narrow one is pushed down to Milvus as a filter expression, and the
        SDK filters what comes back again."""
        queries = np.ascontiguousarray(queries, dtype=np.uint8).reshape(-1, self.bits // 8)
        nq = queries.shape[0]
        dist = np.full((nq, max(k, 0)), np.iinfo(np.int32).max, dtype=np.int32)
        rows = np.full((nq, max(k, 0)), -1, dtype=np.int64)
        mask = self._mask(seqs, modality)
        if k <= 0 or nq == 0 or not mask.any():
            return dist, rows
        if self._degraded:
            return self._local(queries, k, mask)
        self.settle()
        if self._behind and not self._catch_up():
            raise self._unavailable("the index misses stored changes and cannot take them yet")
        try:
            found = self._search_masked(queries, k, seqs, modality, mask)
        except Exception as exc:
            if self._readonly:
                self._degrade(f"search failed ({type(exc).__name__})")
                return self._local(queries, k, mask)
            self._conn.reset()
            raise self._unavailable("search failed", exc) from None
        for q, (d, pos) in enumerate(found):
            dist[q, : d.size] = d
            rows[q, : d.size] = pos
        return sort_results(dist, rows)

    # ------------------------------------------------------------------ search internals
    def _mask(self, seqs: np.ndarray | None, modality: int | None) -> np.ndarray:
        mask = np.ones(self._keys.size, dtype=bool)
        if seqs is not None:
            mask &= np.isin(self._keys >> 2, np.asarray(seqs, dtype=np.int64))
        if modality is not None:
            mask &= (self._keys & 3) == int(modality)
        return mask

    def _search_masked(
        self, queries: np.ndarray, k: int, seqs: np.ndarray | None, modality: int | None, mask: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        base = self._where("" if modality is None else f"mod == {int(modality)}")
        in_base = self._keys.size if modality is None else int(((self._keys & 3) == modality).sum())
        allowed = int(mask.sum())
        if seqs is None:
            found_all = self._exact(queries, k, base, in_base, None, self._first_limit(k, in_base, 1.0))
            return [f for f in found_all if f is not None]  # without give_up every query has one
        found: list[tuple[np.ndarray, np.ndarray] | None] = [None] * queries.shape[0]
        first = self._first_limit(k, in_base, allowed / in_base)
        if first <= _OVERFETCH_MAX:  # cheaper than a long expression: fetch more, filter here
            found = list(self._exact(queries, k, base, in_base, mask, first, give_up=True))
        redo = [q for q, f in enumerate(found) if f is None]
        if redo:
            expr = self._filter(seqs, modality)
            sub = self._exact(queries[redo], k, expr, allowed, mask, self._first_limit(k, allowed, 1.0))
            for q, f in zip(redo, sub, strict=True):
                found[q] = f
        return [f for f in found if f is not None]

    def _first_limit(self, need: int, matching: int, fraction: float) -> int:
        want = max(4 * need, need + 32) / max(fraction, 1e-9)
        return int(min(self.max_limit, matching, want))

    def _filter(self, seqs: np.ndarray, modality: int | None) -> str:
        parts = [] if modality is None else [f"mod == {int(modality)}"]
        every = np.unique(self._keys >> 2)
        allowed = np.unique(np.asarray(seqs, dtype=np.int64))
        allowed = allowed[np.isin(allowed, every)]
        denied = np.setdiff1d(every, allowed, assume_unique=True)
        if denied.size < allowed.size:
            if denied.size:
                parts.append(f"seq not in [{','.join(map(str, denied.tolist()))}]")
        else:
            parts.append(f"seq in [{','.join(map(str, allowed.tolist()))}]")
        return self._where(" and ".join(parts))

    def _raw(self, queries: np.ndarray, limit: int, expr: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query (distances, positions) as Milvus returned them, rows unknown here dropped."""
        client = self._client()
        out: list[tuple[np.ndarray, np.ndarray]] = []
        params = self._conn.search_params()
        for i in range(0, queries.shape[0], _QUERY_BATCH):
            batch = [q.tobytes() for q in queries[i : i + _QUERY_BATCH]]
            res = client.search(
                self._coll,
                data=batch,
                anns_field="code",
                limit=int(limit),
                filter=expr,
                output_fields=["rk"],
                search_params=params,
                timeout=self._t,
                consistency_level="Strong" if self._strong else "Session",
            )
            # one Strong read after a delete brings the query node past it; Session reads see it then
            self._strong = self._readonly
            for hits in res:
                d = np.fromiter((h["distance"] for h in hits), dtype=np.float64, count=len(hits))
                rk = np.fromiter((h["entity"]["rk"] for h in hits), dtype=np.int64, count=len(hits))
                out.append((np.rint(d).astype(np.int32), rk))
        return out

    def _positions(self, rk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.searchsorted(self._keys, rk)
        ok = pos < self._keys.size
        ok[ok] &= self._keys[pos[ok]] == rk[ok]
        return pos, ok

    def _exact(
        self,
        queries: np.ndarray,
        need: int,
        expr: str,
        matching: int,
        post: np.ndarray | None,
        limit: int,
        *,
        give_up: bool = False,
    ) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """Per query, the ``need`` nearest codes matching ``expr`` (and ``post``, a mask over
        positions applied here) as (distances, positions) sorted by (d, position). Milvus returns
        every code nearer than the last distance it returns, so those are exact; ties at that
        distance widen the request, and past the cap a chunked scan settles them (or, with
        ``give_up``, the query is left as None for the caller to push the filter down)."""
        nq = queries.shape[0]
        out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * nq
        pending = list(range(nq))
        cap = min(self.max_limit, matching, _OVERFETCH_MAX if give_up else self.max_limit)
        limit = max(1, min(limit, cap))
        while pending:
            again = []
            for q, (d, rk) in zip(pending, self._raw(queries[pending], limit, expr), strict=True):
                pos, ok = self._positions(rk)
                keep = ok if post is None else ok & post[np.where(ok, pos, 0)]
                dq, pq = d[keep], pos[keep]
                if d.size < limit or limit >= matching:  # every matching code came back
                    out[q] = _top(dq, pq, need)
                    continue
                strict = dq < d.max()
                if int(strict.sum()) >= need:  # exact below the last distance returned
                    out[q] = _top(dq[strict], pq[strict], need)
                elif limit < cap:
                    again.append(q)
                elif not give_up:
                    out[q] = self._scan(queries[q], need, expr, post)
            pending = again
            limit = min(cap, limit * 4)
        return out

    def _scan(
        self, query: np.ndarray, need: int, expr: str, post: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exhaustive search in key-range chunks of at most ``max_limit`` rows (huge ties or ``k``)."""
        ds, ps = [], []
        step = self.max_limit
        for i in range(0, self._keys.size, step):
            lo, hi = int(self._keys[i]), int(self._keys[min(i + step, self._keys.size) - 1])
            chunk_expr = f"{expr} and rk >= {lo} and rk <= {hi}"
            ((d, rk),) = self._raw(query.reshape(1, -1), min(step, self._keys.size - i), chunk_expr)
            pos, ok = self._positions(rk)
            keep = ok if post is None else ok & post[np.where(ok, pos, 0)]
            ds.append(d[keep])
            ps.append(pos[keep])
        return _top(np.concatenate(ds), np.concatenate(ps), need)

    def _local(self, queries: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over the local copy (used while Milvus is stale or unreachable)."""
        idx = np.flatnonzero(mask)
        sub = self._codes[idx]
        nq = queries.shape[0]
        dist = np.full((nq, k), np.iinfo(np.int32).max, dtype=np.int32)
        rows = np.full((nq, k), -1, dtype=np.int64)
        for q in range(nq):
            d = _POP[np.bitwise_xor(sub, queries[q])].sum(axis=1)
            order = np.lexsort((idx, d))[:k]
            dist[q, : order.size] = d[order]
            rows[q, : order.size] = idx[order]
        return sort_results(dist, rows)


def _top(d: np.ndarray, pos: np.ndarray, need: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((pos, d))[:need]
    return d[order], pos[order]


def row_keys(seqs: Sequence[int] | np.ndarray, mods: Sequence[int] | np.ndarray) -> np.ndarray:
    """The position key of each code: ``4 * seq + modality`` (increasing in insertion order)."""
    return np.asarray(seqs, dtype=np.int64) * 4 + np.asarray(mods, dtype=np.int64)

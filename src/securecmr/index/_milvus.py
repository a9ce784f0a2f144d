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
import warnings
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
_INSERT_BATCH = 10_000
_DELETE_BATCH = 5_000
_QUERY_BATCH = 256
_OVERFETCH_MAX = 4096  # a permissive filter is applied in the SDK to at most this many rows a query
_POP = np.array([bin(i).count("1") for i in range(256)], dtype=np.int32)
_REMOTE = ("http://", "https://", "tcp://", "grpc://", "unix:")
_LITE_USERS: dict[str, int] = {}  # open connections per Milvus Lite file in this process
_LITE_LOCK = threading.Lock()


def milvus_names(key: bytes, name: str, bits: int) -> tuple[str, str, str]:
    """(Milvus collection, tenant tag, state collection) for store collection ``name``: keyed tags,
    so Milvus learns neither collection nor tenant names."""
    tenant, base = name.split("~", 1) if "~" in name else ("", name)

    def tag(label: str) -> str:
        return hmac.new(key, label.encode(), hashlib.sha256).hexdigest()[:16]

    store = tag("store")
    return f"scmr_{store}_{tag(f'collection|{base}|{bits}')}", tag(f"tenant|{tenant}"), f"scmr_{store}_state"


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
        self._degraded = False
        self._ready = False

    def __repr__(self) -> str:
        mode = "local fallback" if self._degraded else "milvus"
        return f"MilvusIndex(bits={self.bits}, n={len(self)}, {mode})"

    def __len__(self) -> int:
        return int(self._keys.size)

    @property
    def degraded(self) -> bool:
        """True when searches run on the local copy because Milvus is stale or unreachable."""
        return self._degraded

    # ------------------------------------------------------------------ Milvus plumbing
    def _client(self) -> Any:
        client = self._conn.client()
        if not self._ready:
            self._ensure(client)
            self._ready = True
        return client

    def _ensure(self, client: Any) -> None:
        from pymilvus import DataType

        if client.has_collection(self._coll):
            dims = [
                f.get("params", {}).get("dim")
                for f in client.describe_collection(self._coll).get("fields", [])
                if f.get("name") == "code"
            ]
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
                self._coll, schema=schema, index_params=params, consistency_level="Strong"
            )
        if not client.has_collection(self._state):
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
                self._state, schema=schema, index_params=params, consistency_level="Strong"
            )

    def _state_key(self) -> str:
        return f"{self._coll[-16:]}|{self._tenant}"

    def _where(self, extra: str = "") -> str:
        base = f'tenant == "{self._tenant}"'
        return f"{base} and {extra}" if extra else base

    def _marker(self, client: Any) -> tuple[int, int, int] | None:
        rows = client.query(self._state, ids=[self._state_key()], output_fields=["gen", "n", "digest"])
        if not rows:
            return None
        r = rows[0]
        return int(r["gen"]), int(r["n"]), int(r["digest"])

    def _write_marker(self, client: Any, gen: int) -> None:
        signed = self._digest - (1 << 64) if self._digest >= 1 << 63 else self._digest
        client.upsert(
            self._state,
            [{"key": self._state_key(), "gen": int(gen), "n": len(self), "digest": signed, "v": b"\0"}],
        )

    def _insert(self, client: Any, keys: np.ndarray, codes: np.ndarray) -> None:
        t, nb = self._tenant, codes.shape[1]
        for i in range(0, keys.size, _INSERT_BATCH):
            ks = keys[i : i + _INSERT_BATCH]
            blob = np.ascontiguousarray(codes[i : i + _INSERT_BATCH]).tobytes()
            rows = [
                {"tenant": t, "seq": s_, "mod": m, "rk": k, "code": blob[j * nb : (j + 1) * nb]}
                for j, (k, s_, m) in enumerate(
                    zip(ks.tolist(), (ks >> 2).tolist(), (ks & 3).tolist(), strict=True)
                )
            ]
            client.insert(self._coll, rows)

    def _degrade(self, why: str) -> None:
        if not self._degraded:
            log.warning(
                "Milvus index %s: %s; searching the local copy until the store is reopened", self._coll, why
            )
        self._degraded = True

    # ------------------------------------------------------------------ lifecycle hooks (store)
    def sync(self, codes: np.ndarray, keys: np.ndarray, gen: int) -> bool:
        """Adopt the durable record's rows (``keys`` increasing); rebuild Milvus from them unless its
        state marker says it already holds exactly them. Returns True when a rebuild was needed."""
        keys = np.asarray(keys, dtype=np.int64)
        if keys.size > 1 and not np.all(np.diff(keys) > 0):
            raise ConfigurationError("row keys must increase with insertion order")
        self._keys = keys.copy()
        self._codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, self.bits // 8).copy()
        self._digest = _digest(self._keys, self._codes)
        self._degraded = False
        try:
            client = self._client()
            marker = self._marker(client)
        except IndexUnavailableError:
            if not self._readonly:
                raise
            self._degrade("unreachable from this read-only opener")
            return False
        except SecureCMRError:
            raise
        except Exception as exc:
            if not self._readonly:
                raise IndexUnavailableError(
                    f"Milvus at {_shown(self._conn.uri)} failed ({type(exc).__name__})"
                ) from None
            self._degrade("unreachable from this read-only opener")
            return False
        signed = self._digest - (1 << 64) if self._digest >= 1 << 63 else self._digest
        if marker == (int(gen), len(self), signed):
            return False
        if self._readonly:
            self._degrade("stale (written by another process)")
            return False
        try:
            client.delete(self._coll, filter=self._where())
            self._insert(client, self._keys, self._codes)
            self._write_marker(client, gen)
        except Exception as exc:
            raise IndexUnavailableError(
                f"rebuilding the Milvus index at {_shown(self._conn.uri)} failed ({type(exc).__name__})"
            ) from None
        return True

    def commit(self, gen: int) -> None:
        """Record that Milvus holds the rows of generation ``gen`` (skipped while degraded, so the
        next open rebuilds)."""
        if self._degraded or self._readonly:
            return
        try:
            self._write_marker(self._client(), gen)
        except Exception as exc:
            self._degrade(f"writing the state marker failed ({type(exc).__name__})")

    def compact(self) -> None:
        """Ask Milvus to compact (drop deleted rows from its segments)."""
        if self._degraded or self._readonly:
            return
        try:
            self._client().compact(self._coll)
        except Exception:  # Milvus Lite has no compaction; a server compacts on its own schedule too
            log.debug("Milvus compaction request failed", exc_info=True)

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
        try:
            self._insert(self._client(), keys, codes)
        except Exception as exc:
            self._degrade(f"insert failed ({type(exc).__name__})")

    def remove(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size == 0:
            return
        gone = self._keys[rows]
        self._digest = (self._digest - _digest(gone, self._codes[rows])) % (1 << 64)
        self._keys = np.delete(self._keys, rows)
        self._codes = np.delete(self._codes, rows, axis=0)
        if self._degraded:
            return
        try:
            client = self._client()
            for i in range(0, gone.size, _DELETE_BATCH):
                chunk = ",".join(str(int(k)) for k in gone[i : i + _DELETE_BATCH])
                client.delete(self._coll, filter=self._where(f"rk in [{chunk}]"))
        except Exception as exc:
            self._degrade(f"delete failed ({type(exc).__name__})")

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
        try:
            found = self._search_masked(queries, k, seqs, modality, mask)
        except Exception as exc:
            if self._readonly:
                self._degrade(f"search failed ({type(exc).__name__})")
                return self._local(queries, k, mask)
            raise IndexUnavailableError(
                f"Milvus search at {_shown(self._conn.uri)} failed ({type(exc).__name__})"
            ) from None
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
            )
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

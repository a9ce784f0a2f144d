"""The tamper-evident audit log: keyed hash-chained JSON lines plus signed checkpoints.

``audit.jsonl`` holds one canonical JSON object per line::

    {"action":..., "collection":..., "mac":..., "outcome":"allowed"|"denied", "prev":..., "principal":...,
     "query":<keyed fingerprint or null>, "reason":..., "results":[<keyed ids>], "seq":N, "tenant":...,
     "time":<unix seconds>, "detail":{...}}

``mac`` = HMAC-SHA256(chain key, canonical JSON of the record without ``mac``), and ``prev`` is the
previous record's ``mac``, so an edited byte, a deleted or inserted line and a reordering all break
the chain. ``audit.checkpoints.jsonl`` holds signed checkpoints ``(n, head)`` written every
``checkpoint_every`` records and on close; a log shorter than its last checkpoint (truncation) or
whose record ``n`` does not carry ``head`` fails verification. Raw queries and raw item ids never
enter the log: only keyed fingerprints, which the key holder can recompute to answer "who searched X".
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import hmac
import json
import math
import os
import secrets
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _encode_str
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from ..errors import AuditIntegrityError, ConfigurationError
from ..protect import HmacSha256, atomic_write, ensure_dir

__all__ = ["HIPAA_RETENTION_DAYS", "READ_ACTIONS", "AuditAnchor", "AuditLog", "AuditReport"]

HIPAA_RETENTION_DAYS = 6 * 365 + 2  # six years, leap days included
_GENESIS = "0" * 64
_LOG = "audit.jsonl"
_CHECKPOINTS = "audit.checkpoints.jsonl"
_LOCK = "audit.lock"
_LIVE = "live"
# allowed calls that change nothing: their records are group-committed (see AuditLog)
READ_ACTIONS = frozenset(
    {
        "search",
        "search.batch",
        "search_batch",
        "get",
        "ids",
        "collection.list",
        "collection.open",
        "collection.info",
        "audit.read",
        "audit.export",
        "audit.head",
        "audit.verify",
        "monitor.report",
        "session",
        "authenticate",
    }
)
_RESULT_ID_HEX = 24
_OUTCOMES = ("allowed", "denied")


_CANON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _canon(obj: dict[str, Any]) -> bytes:
    return _CANON.encode(obj).encode("ascii")


def _with_mac(body: bytes, mac: str) -> bytes:
    """``_canon(record + {"mac": mac})`` from ``body = _canon(record)``, without encoding it again:
    with sorted keys ``"mac"`` goes just before the top-level ``"outcome"``, which is the last
    ``,"outcome":`` in the text (inside JSON strings a quote is always escaped)."""
    at = body.rfind(b',"outcome":')
    return body[:at] + b',"mac":"' + mac.encode("ascii") + b'"' + body[at:]


def _encode_detail(detail: Any) -> str:
    """``_CANON.encode(detail)``; flat dicts of strings and integers (the usual details, e.g.
    ``{"k": 10}``) are written directly."""
    if type(detail) is dict and all(
        type(k) is str and (type(v) is int or type(v) is str) for k, v in detail.items()
    ):
        return (
            "{"
            + ",".join(
                f"{_encode_str(k)}:{int.__repr__(v) if type(v) is int else _encode_str(v)}"
                for k, v in sorted(detail.items())
            )
            + "}"
        )
    return _CANON.encode(detail)


def _canon_record(rec: dict[str, Any]) -> tuple[bytes, Callable[[str], bytes]]:
    """(``_canon(rec)``, mac -> the record's line with ``mac`` added), written field by field for
    the usual field types (each value encoded exactly as ``_canon`` does) and by ``_canon``
    otherwise."""
    str_or_none = (str, type(None))
    if not (
        type(rec["seq"]) is int
        and type(rec["time"]) is float
        and math.isfinite(rec["time"])
        and all(type(rec[k]) in str_or_none for k in ("principal", "tenant", "collection", "query"))
        and all(type(rec[k]) is str for k in ("action", "outcome", "reason", "prev"))
        and all(type(r) is str for r in rec["results"])
    ):
        body = _canon(rec)
        return body, lambda mac: _with_mac(body, mac) + b"\n"

    def js(v: str | None) -> str:
        return "null" if v is None else _encode_str(v)

    head = (
        f'{{"action":{_encode_str(rec["action"])},"collection":{js(rec["collection"])},'
        f'"detail":{_encode_detail(rec["detail"])}'
    )
    tail = (
        f',"outcome":{_encode_str(rec["outcome"])},"prev":{_encode_str(rec["prev"])},'
        f'"principal":{js(rec["principal"])},"query":{js(rec["query"])},"reason":{_encode_str(rec["reason"])},'
        f'"results":[{",".join([_encode_str(r) for r in rec["results"]])}],"seq":{int.__repr__(rec["seq"])},'
        f'"tenant":{js(rec["tenant"])},"time":{float.__repr__(rec["time"])}}}'
    )
    return (head + tail).encode("ascii"), lambda mac: f'{head},"mac":"{mac}"{tail}\n'.encode("ascii")


_FP_CACHE_LIST = 256  # lists up to this long (search results) use the id-fingerprint cache
_FP_CACHE_SIZE = 1 << 16  # ids kept in that cache (cleared when full)
_DTYPE_NAMES: dict[Any, bytes] = {}  # dtype -> str(dtype) as bytes (numpy builds the name in Python)


def _flush_at_exit(ref: weakref.ReferenceType[AuditLog]) -> None:
    """Write a log's group-committed records when the interpreter exits without ``close()``."""
    log = ref()
    if log is not None:
        with contextlib.suppress(Exception):
            log.flush()


class AuditAnchor(Protocol):
    """Somewhere outside the audit files (the store's sealed metadata) that keeps the newest
    checkpoint ``(n, head)``, so truncating the log *and* its checkpoint file is caught too."""

    def save(self, n: int, head: str) -> None: ...

    def load(self) -> tuple[int, str] | None: ...


@dataclass(frozen=True)
class AuditReport:
    """The result of :meth:`AuditLog.verify` on an intact log."""

    records: int
    checkpoints: int
    first_seq: int
    head: str
    unsealed: int  # records written after the last checkpoint (0 after a clean close)

    @property
    def ok(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "first_seq": self.first_seq,
            "head": self.head,
            "unsealed": self.unsealed,
        }


class AuditLog:
    """Append-only audit log in ``directory``; ``key`` (>= 32 bytes) keys the chain, the checkpoints
    and the fingerprints. ``clock`` returns unix seconds (inject one in tests).

    Many processes may append to one log: each commit takes an ``flock`` on ``audit.lock``, re-reads
    the chain head from the file, appends and fsyncs. A record of a read (actions in
    :data:`READ_ACTIONS`, or ``sync=False``) is group-committed: it reaches the disk within
    :attr:`group_commit_s` seconds (50 ms) or :attr:`group_commit_records` records (64), whichever
    comes first; every other record (writes, denials, user changes) is on disk before ``append``
    returns. A process that dies with records still in memory leaves a marker under ``live/``; the
    next process to open the log finds it and appends an ``audit.gap`` record, so a crash shows up
    as an audited gap, never as a log that silently ends earlier.

    ``checkpoints=False`` (readers) never writes checkpoints. ``anchor`` keeps the newest
    checkpoint outside the audit files (the store's sealed state): a log shorter than the anchor or
    missing altogether (once the anchor exists) fails. ``durable=False`` skips fsync (tests)."""

    group_commit_s = 0.05
    group_commit_records = 64

    def __init__(
        self,
        directory: str | os.PathLike[str],
        key: bytes,
        *,
        clock: Callable[[], float] | None = None,
        checkpoint_every: int = 100,
        retention_days: float = HIPAA_RETENTION_DAYS,
        durable: bool = True,
        anchor: AuditAnchor | None = None,
        checkpoints: bool = True,
        log_id: str = "",
        state_probe: Callable[[], int] | None = None,
    ) -> None:
        if not isinstance(key, bytes) or len(key) < 32:
            raise ConfigurationError("the audit key must be at least 32 bytes")
        if checkpoint_every < 1:
            raise ConfigurationError("checkpoint_every must be >= 1")
        if retention_days <= 0:
            raise ConfigurationError("retention_days must be positive")
        import time

        self.directory = Path(directory)
        self.checkpoint_every = int(checkpoint_every)
        self.retention_days = float(retention_days)
        self.durable = durable
        self.writes_checkpoints = bool(checkpoints)
        self.log_id = str(log_id)
        self._anchor = anchor
        self._state_probe = state_probe
        self._clock = clock or time.time
        self._chain_key = hmac.new(key, b"securecmr/audit/chain", hashlib.sha256).digest()
        self._cp_key = hmac.new(key, b"securecmr/audit/checkpoint", hashlib.sha256).digest()
        self._fp_key = hmac.new(key, b"securecmr/audit/fingerprint", hashlib.sha256).digest()
        self._head_key = hmac.new(key, b"securecmr/audit/head", hashlib.sha256).digest()
        self._fp = HmacSha256(self._fp_key)  # same HMAC, without a new HMAC object per fingerprint
        self._chain = HmacSha256(self._chain_key)
        self._id_fps: dict[str, str] = {}  # str(id) -> id fingerprint, for search results
        self._flocked = False
        self._lock = threading.RLock()  # commits of this process, in order (the flock spans processes)
        self._cv = threading.Condition(threading.Lock())  # guards the pending (group-committed) records
        self._pending: list[dict[str, Any]] = []
        self._flusher: threading.Thread | None = None
        self._stop = False
        self._live: tuple[Path, int] | None = None
        self._fd = -1  # O_APPEND descriptor of the log
        self._tail: tuple[int, int, int, str] | None = None  # (inode, size, seq, head) after our last look
        ensure_dir(self.directory)
        self._log_path = self.directory / _LOG
        self._cp_path = self.directory / _CHECKPOINTS
        self._seq, self._head, self._since_cp, self._cp_head = 0, _GENESIS, 0, _GENESIS
        self._loaded = False
        with self._file_lock():
            if not self._log_path.exists() and not self._cp_path.exists():
                anchored = anchor.load() if anchor is not None else None
                if anchored is not None and anchored[0] > 0:
                    raise AuditIntegrityError(
                        f"the audit log is missing, but the store's sealed anchor records {anchored[0]} "
                        "audit records: restore audit.jsonl and audit.checkpoints.jsonl from a backup "
                        "(a new log is never started in their place)"
                    )
                self._log_path.touch(mode=0o600)
                self._loaded = True
                self._write_checkpoint_locked(kind="open")
        self._reap_dead()
        atexit.register(_flush_at_exit, weakref.ref(self))

    # ------------------------------------------------------------------ inter-process locking
    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """This process's commits in order, and an ``flock`` that serialises the processes."""
        with self._lock:
            if self._flocked:  # re-entered by this thread (a purge appends its own record)
                yield
                return
            fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._flocked = True
                yield
            finally:
                self._flocked = False
                os.close(fd)  # releases the flock

    def _log_fd(self) -> int:
        """The append descriptor, reopened when the log file was replaced (retention purge)."""
        if self._fd >= 0:
            try:
                if os.stat(self._log_path).st_ino == os.fstat(self._fd).st_ino:
                    return self._fd
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd = -1
        self._fd = os.open(self._log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._tail = None
        return self._fd

    def _current_tail(self, fd: int) -> tuple[int, int, int, str]:
        """(inode, size, seq, head) of the log now (re-read unless nothing changed since our last
        write); a torn last line (a process killed in the middle of a write) is cut and audited."""
        st = os.fstat(fd)
        tail = self._tail
        if tail is not None and tail[0] == st.st_ino and tail[1] == st.st_size:
            return tail
        size = st.st_size
        torn = 0
        if size:
            with open(self._log_path, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    fh.seek(max(0, size - 1_048_576))
                    chunk = fh.read()
                    cut = chunk.rfind(b"\n")
                    keep = size - len(chunk) + cut + 1 if cut >= 0 else 0
                    torn = size - keep
        if torn:
            os.truncate(self._log_path, size - torn)
            size -= torn
        seq, head = self._read_tail()
        self._tail = (st.st_ino, size, seq, head)
        if torn:
            self._commit_locked(
                [
                    self._record(
                        "audit.gap",
                        None,
                        None,
                        None,
                        None,
                        [],
                        "allowed",
                        f"a torn record of {torn} bytes (a write cut off by a crash) was removed",
                        {"bytes": torn, "kind": "torn"},
                    )
                ],
                sync=True,
            )
            return self._tail
        return self._tail

    def _ensure_state(self) -> None:
        """Read the chain head lazily, so a damaged log can still be opened and verified."""
        if not self._loaded:
            self._seq, self._head = self._current_tail(self._log_fd())[2:]
            self._cp_head, last_n = self._read_last_checkpoint()
            self._since_cp = max(0, self._seq - last_n)
            anchored = self._anchor.load() if self._anchor is not None else None
            if anchored is not None and anchored[0] > self._seq:
                raise AuditIntegrityError(
                    f"audit log truncated: the sealed anchor covers {anchored[0]} records, the log ends at "
                    f"{self._seq}; restore the audit files (no record is appended to a cut log)"
                )
            self._loaded = True

    def __repr__(self) -> str:
        return f"AuditLog({str(self.directory)!r})"

    # ------------------------------------------------------------------ paths and state
    @property
    def path(self) -> Path:
        return self._log_path

    @property
    def checkpoint_path(self) -> Path:
        return self._cp_path

    def __len__(self) -> int:
        self.flush()
        with self._file_lock():
            self._ensure_state()
            return self._current_tail(self._log_fd())[2]

    def _read_tail(self) -> tuple[int, str]:
        size = self._log_path.stat().st_size
        if size == 0:
            base = self._read_base()
            return base[0], base[1]
        with open(self._log_path, "rb") as fh:
            block = min(size, 65536)
            while True:
                fh.seek(size - block)
                data = fh.read(block)
                lines = data.rstrip(b"\n").split(b"\n")
                if len(lines) > 1 or block == size:
                    break
                block = min(size, block * 4)
        try:
            rec = json.loads(lines[-1])
            return int(rec["seq"]), str(rec["mac"])
        except (ValueError, KeyError, TypeError):
            raise AuditIntegrityError(
                "the last audit record is unreadable; run `securecmr audit verify` to locate the damage"
            ) from None

    def _checkpoints(self) -> list[dict[str, Any]]:
        if not self._cp_path.exists():
            return []
        out = []
        for line in self._cp_path.read_bytes().split(b"\n"):
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({})
        return out

    def _read_base(self) -> tuple[int, str]:
        """The (seq, mac) the current log file continues from (non-zero after a retention purge)."""
        base = (0, _GENESIS)
        for cp in self._checkpoints():
            if cp.get("kind") == "purge":
                base = (int(cp["n"]), str(cp["head"]))
        return base

    def _read_last_checkpoint(self) -> tuple[str, int]:
        cps = self._checkpoints()
        if not cps:
            raise AuditIntegrityError(
                "the audit checkpoint file is missing or empty; the log cannot be trusted"
            )
        last = cps[-1]
        try:
            return str(last["mac"]), int(last["n"])
        except (KeyError, TypeError, ValueError):
            raise AuditIntegrityError(
                f"audit checkpoint {len(cps)} is unreadable; run `securecmr audit verify`"
            ) from None

    # ------------------------------------------------------------------ crashed processes
    def _reap_dead(self) -> None:
        """Append an ``audit.gap`` record for each process that died with group-committed records
        possibly still in memory (its marker under ``live/`` is no longer locked)."""
        live = self.directory / _LIVE
        if not live.is_dir():
            return
        for path in sorted(live.iterdir()):
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive
                try:
                    if os.stat(path).st_ino != os.fstat(fd).st_ino:
                        continue  # reaped by another process meanwhile
                except FileNotFoundError:
                    continue
                try:
                    info = json.loads(os.pread(fd, 4096, 0) or b"{}")
                except ValueError:
                    info = {}
                self.append(
                    "audit.gap",
                    principal=None,
                    reason=(
                        "a process ended without closing the audit log: up to "
                        f"{self.group_commit_records} read records of its last "
                        f"{int(self.group_commit_s * 1000)} ms may be missing"
                    ),
                    detail={"pid": int(info.get("pid", 0)), "opened": float(info.get("opened", 0.0))},
                    sync=True,
                )
                os.unlink(path)
            finally:
                os.close(fd)

    def _mark_live(self) -> None:
        """Leave a locked marker while this process may hold records in memory (see _reap_dead)."""
        live = self.directory / _LIVE
        ensure_dir(live)
        path = live / f"{os.getpid()}-{secrets.token_hex(6)}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"pid": os.getpid(), "opened": float(self._clock())}).encode())
        self._live = (path, fd)

    # ------------------------------------------------------------------ keyed fingerprints
    def fingerprint(self, data: Any) -> str:
        """Keyed hash of a query (text, bytes, array or path-like); the raw value is never stored."""
        if isinstance(data, np.ndarray):
            arr = np.ascontiguousarray(data)
            name = _DTYPE_NAMES.get(arr.dtype)
            if name is None:
                name = _DTYPE_NAMES[arr.dtype] = str(arr.dtype).encode()
            payload = name + str(arr.shape).encode() + arr.tobytes()
        elif isinstance(data, bytes | bytearray | memoryview):
            payload = bytes(data)
        elif isinstance(data, str):
            payload = b"s:" + data.encode("utf-8")
        else:
            payload = b"r:" + repr(data).encode("utf-8")
        return self._fp.hexdigest(payload)

    def id_fingerprint(self, item_id: Any) -> str:
        """Keyed, truncated hash of an item id as written in ``results``."""
        return self._fp.hexdigest(b"id:" + str(item_id).encode("utf-8"))[:_RESULT_ID_HEX]

    def id_fingerprints(self, item_ids: Iterable[Any]) -> list[str]:
        """:meth:`id_fingerprint` of each id (batched: adds of many items list every id). The
        fingerprints of short lists (search results) are kept in a bounded in-memory cache, since
        the same items keep coming back in results."""
        keys = [str(i) for i in item_ids]
        n = _RESULT_ID_HEX // 2
        if len(keys) > _FP_CACHE_LIST:
            return [d[:n].hex() for d in self._fp.digest_many([b"id:" + k.encode("utf-8") for k in keys])]
        cache = self._id_fps
        out = [cache.get(k) for k in keys]
        todo = [j for j, fp in enumerate(out) if fp is None]
        if todo:
            if len(cache) + len(todo) > _FP_CACHE_SIZE:
                cache.clear()
            for j, d in zip(
                todo, self._fp.digest_many([b"id:" + keys[j].encode("utf-8") for j in todo]), strict=True
            ):
                out[j] = cache[keys[j]] = d[:n].hex()
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ writing
    def _record(
        self,
        action: str,
        principal: str | None,
        tenant: str | None,
        collection: str | None,
        fp: str | None,
        results: list[str],
        outcome: str,
        reason: str,
        detail: dict[str, Any] | None,
    ) -> dict[str, Any]:
        return {
            "seq": 0,  # set when committed
            "time": round(float(self._clock()), 6),
            "principal": principal,
            "tenant": tenant,
            "action": str(action),
            "collection": collection,
            "query": fp,
            "results": results,
            "outcome": outcome,
            "reason": str(reason),
            "detail": detail or {},
            "prev": _GENESIS,  # set when committed
        }

    def append(
        self,
        action: str,
        *,
        principal: str | None,
        tenant: str | None = None,
        collection: str | None = None,
        query: Any = None,
        query_fingerprint: str | None = None,
        result_ids: Iterable[Any] = (),
        outcome: str = "allowed",
        reason: str = "",
        detail: dict[str, Any] | None = None,
        sync: bool | None = None,
    ) -> dict[str, Any]:
        """Append one record and return it. ``query`` is fingerprinted; ``result_ids`` are keyed.

        ``sync=None`` group-commits an allowed read (``action`` in :data:`READ_ACTIONS`) and puts
        every other record on disk before returning; ``sync=True``/``False`` chooses. A
        group-committed record gets its ``seq`` and ``mac`` when it is written."""
        if outcome not in _OUTCOMES:
            raise ConfigurationError("outcome must be 'allowed' or 'denied'")
        fp = (
            query_fingerprint
            if query_fingerprint is not None
            else (None if query is None else self.fingerprint(query))
        )
        rec = self._record(
            action,
            principal,
            tenant,
            collection,
            fp,
            self.id_fingerprints(result_ids),
            outcome,
            reason,
            detail,
        )
        if sync is None:
            sync = not (outcome == "allowed" and action in READ_ACTIONS)
        if sync:
            self._flush([rec])
            return rec
        with self._cv:  # no notify: the flusher wakes on its own clock (no lock hand-off per search)
            if self._stop:
                raise ConfigurationError("the audit log is closed")
            self._pending.append(rec)
            n = len(self._pending)
        if self._live is None:
            self._start_group_commit()
        if n >= self.group_commit_records:
            self._flush()
        return rec

    def _start_group_commit(self) -> None:
        with self._lock:
            if self._live is None:
                self._mark_live()
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, name="securecmr-audit", daemon=True)
                self._flusher.start()

    def _flush_loop(self) -> None:
        """Every ``group_commit_s`` seconds, write what is pending (so no record waits longer)."""
        while True:
            with self._cv:
                if not self._stop:
                    self._cv.wait(self.group_commit_s)
                if self._stop and not self._pending:
                    return
                if not self._pending:
                    continue
            try:
                self._flush()
            except Exception:  # retried by the next append, flush or close (which raises it)
                with self._cv:
                    if self._stop:
                        return
                    self._cv.wait(self.group_commit_s)

    def flush(self) -> None:
        """Write the group-committed records now (also done within the bound, on verify and on close)."""
        self._flush()

    def sync(self) -> None:
        """Make every record appended so far durable (a write's record already is when ``append``
        returns; this also writes and fsyncs the group-committed reads)."""
        self._flush()

    def _flush(self, extra: list[dict[str, Any]] | None = None) -> None:
        with self._file_lock():
            with self._cv:
                waiting, self._pending = self._pending, []
            recs = waiting + extra if extra else waiting
            if not recs:
                return
            try:
                self._ensure_state()
                self._commit_locked(recs, sync=True)
            except BaseException:
                with self._cv:  # nothing was written: keep the waiting ones for the next try
                    self._pending[:0] = waiting
                raise
            if self.writes_checkpoints and self._since_cp >= self.checkpoint_every:
                self._write_checkpoint_locked()

    def _commit_locked(self, recs: list[dict[str, Any]], *, sync: bool) -> None:
        """Chain ``recs`` after the head on disk and append them (under the file lock)."""
        fd = self._log_fd()
        ino, size, seq, head = self._current_tail(fd)
        lines = []
        for rec in recs:
            seq += 1
            rec["seq"], rec["prev"] = seq, head
            body, line = _canon_record(rec)
            rec["mac"] = head = self._chain.hexdigest(body)
            lines.append(line(head))
        view = memoryview(b"".join(lines))
        total = len(view)
        while view:
            view = view[os.write(fd, view) :]
        if sync and self.durable:
            os.fsync(fd)
        self._tail = (ino, size + total, seq, head)
        self._seq, self._head = seq, head
        self._since_cp += len(recs)

    def _last_checkpoint_mac(self) -> str:
        if not self._cp_path.exists():
            return _GENESIS
        size = self._cp_path.stat().st_size
        if size == 0:
            return _GENESIS
        with open(self._cp_path, "rb") as fh:
            fh.seek(max(0, size - 65536))
            last = fh.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        try:
            return str(json.loads(last)["mac"])
        except (ValueError, KeyError, TypeError):
            raise AuditIntegrityError(
                "the last audit checkpoint is unreadable; run `securecmr audit verify`"
            ) from None

    def _write_checkpoint_locked(
        self, kind: str = "periodic", n: int | None = None, head: str | None = None
    ) -> None:
        if n is None or head is None:
            _, _, seq, cur = (
                self._current_tail(self._log_fd()) if self._log_path.exists() else (0, 0, 0, _GENESIS)
            )
            n, head = (seq, cur) if n is None else (n, head or cur)
        cp: dict[str, Any] = {
            "kind": kind,
            "n": n,
            "head": head,
            "time": round(float(self._clock()), 6),
            "prev": self._last_checkpoint_mac(),
        }
        if self._state_probe is not None:
            cp["state"] = int(self._state_probe())
        cp["mac"] = hmac.new(self._cp_key, _canon(cp), hashlib.sha256).hexdigest()
        fd = os.open(self._cp_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, _canon(cp) + b"\n")
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        self._cp_head = cp["mac"]
        self._since_cp = 0
        if self._anchor is not None and kind != "purge":
            self._anchor.save(int(cp["n"]), str(cp["head"]))

    def checkpointed_state(self) -> int | None:
        """The store state epoch named by the newest checkpoint that names one (None if none)."""
        for cp in reversed(self._checkpoints()):
            state = cp.get("state")
            if isinstance(state, int):
                return state
        return None

    def checkpoint(self) -> None:
        """Seal the current head now (also done every ``checkpoint_every`` records and on close by a
        process that writes checkpoints)."""
        self.flush()
        with self._file_lock():
            if self._loaded and self._since_cp and self.writes_checkpoints:
                self._write_checkpoint_locked()

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join()
        try:
            self._flush()
            with self._file_lock():
                if self._loaded and self._since_cp and self.writes_checkpoints:
                    self._write_checkpoint_locked()
                if self._live is not None:  # a clean end: nothing of ours is missing
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._live[0])
        finally:
            # records that could not be written leave the marker behind: the next process to
            # open the log appends an audit.gap record for them
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._live is not None:
                os.close(self._live[1])
                self._live = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ external witness
    def head(self) -> dict[str, Any]:
        """A signed head to keep outside the store: ``{"format", "store_id", "records", "chain",
        "time", "mac"}``. :meth:`verify` with ``head=`` fails unless the log extends it."""
        self.flush()
        with self._file_lock():
            self._ensure_state()
            _, _, seq, head = self._current_tail(self._log_fd())
        doc: dict[str, Any] = {
            "format": 1,
            "store_id": self.log_id,
            "records": seq,
            "chain": head,
            "time": round(float(self._clock()), 6),
        }
        doc["mac"] = hmac.new(self._head_key, _canon(doc), hashlib.sha256).hexdigest()
        return doc

    def _check_head(self, head: Any) -> tuple[int, str]:
        if isinstance(head, str | os.PathLike):
            try:
                head = json.loads(Path(head).read_text("utf-8"))
            except (OSError, ValueError):
                raise AuditIntegrityError(f"the audit head {Path(head).name} is unreadable") from None
        if not isinstance(head, dict):
            raise AuditIntegrityError(
                "the audit head must be the JSON object printed by `securecmr audit head`"
            )
        body = {k: v for k, v in head.items() if k != "mac"}
        try:
            want = hmac.new(self._head_key, _canon(body), hashlib.sha256).hexdigest()
        except (TypeError, ValueError):
            want = ""
        mac = head.get("mac")
        if not isinstance(mac, str) or not want or not hmac.compare_digest(mac, want):
            raise AuditIntegrityError("the audit head fails its MAC: forged, altered or from another store")
        if body.get("store_id") != self.log_id:
            raise AuditIntegrityError("the audit head belongs to another store")
        n, chain = body.get("records"), body.get("chain")
        if not isinstance(n, int) or isinstance(n, bool) or not isinstance(chain, str):
            raise AuditIntegrityError("the audit head is malformed")
        return n, chain

    # ------------------------------------------------------------------ reading and verifying
    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first (not verified; call :meth:`verify` for that)."""
        self.flush()
        with open(self._log_path, "rb") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def verify(self, *, head: Any = None) -> AuditReport:
        """Check every record and checkpoint; raise AuditIntegrityError naming the first bad one.

        ``head`` (a dict from :meth:`head`, or the path of a file holding one) must be
        extended by the log: same record at its position, so a rollback of the whole store
        directory to a copy older than the head fails."""
        self.flush()
        with self._file_lock():
            if not self._cp_path.exists():
                raise AuditIntegrityError(f"{_CHECKPOINTS} is missing: the audit log cannot be trusted")
            data = self._log_path.read_bytes() if self._log_path.exists() else b""
            return self.verify_bytes(data, self._cp_path.read_bytes(), head=head)

    def verify_bytes(self, data: bytes, checkpoints: bytes, *, head: Any = None) -> AuditReport:
        """:meth:`verify` on in-memory copies of the log and checkpoint files."""
        want_head = None if head is None else self._check_head(head)
        if True:
            cps = self._verify_checkpoints(checkpoints)
            base_n, base_head = 0, _GENESIS
            for cp in cps:
                if cp["kind"] == "purge":
                    base_n, base_head = int(cp["n"]), str(cp["head"])
            if data and not data.endswith(b"\n"):
                n_lines = data.count(b"\n") + 1
                raise AuditIntegrityError(
                    f"audit record {base_n + n_lines} (line {n_lines}) is truncated or altered (no line end)"
                )
            lines = data.split(b"\n")[:-1] if data else []
            heads: dict[int, str] = {base_n: base_head}
            prev = base_head
            for i, line in enumerate(lines, start=1):
                seq = base_n + i
                where = f"audit record {seq} (line {i})"
                try:
                    rec = json.loads(line)
                except ValueError:
                    raise AuditIntegrityError(f"{where} is not valid JSON: altered") from None
                if not isinstance(rec, dict) or _canon(rec) != line:
                    raise AuditIntegrityError(f"{where} is not in canonical form: altered")
                mac = rec.pop("mac", None)
                if rec.get("seq") != seq:
                    raise AuditIntegrityError(
                        f"{where} has sequence number {rec.get('seq')!r}: lines deleted, "
                        "inserted or reordered"
                    )
                if rec.get("prev") != prev:
                    raise AuditIntegrityError(f"{where} does not chain to the record before it")
                want = hmac.new(self._chain_key, _canon(rec), hashlib.sha256).hexdigest()
                if not isinstance(mac, str) or not hmac.compare_digest(mac, want):
                    raise AuditIntegrityError(f"{where} fails its MAC: altered")
                prev = mac
                heads[seq] = mac
            total = base_n + len(lines)
            last_n = base_n
            for j, cp in enumerate(cps, start=1):
                n = int(cp["n"])
                if n < base_n:
                    continue  # sealed a prefix that retention has since purged
                if n > total:
                    raise AuditIntegrityError(
                        f"audit log truncated: checkpoint {j} seals {n} records, log ends at {total}"
                        f" (first missing: audit record {total + 1})"
                    )
                if heads.get(n) != cp["head"]:
                    raise AuditIntegrityError(f"audit record {n} does not match checkpoint {j}: altered")
                last_n = max(last_n, n)
            anchored = self._anchor.load() if self._anchor is not None else None
            if anchored is not None and anchored[0] >= base_n:
                n, head = anchored
                if n > total:
                    raise AuditIntegrityError(
                        f"audit log truncated: the sealed anchor covers {n} records, log ends at {total}"
                        f" (first missing: audit record {total + 1})"
                    )
                if heads.get(n) != head:
                    raise AuditIntegrityError(f"audit record {n} does not match the store's sealed anchor")
            if want_head is not None:
                n, chain = want_head
                if n > total:
                    raise AuditIntegrityError(
                        f"the log does not extend the external head: the head covers {n} records, the log "
                        f"ends at {total} (rolled back or truncated)"
                    )
                if n < base_n:
                    raise AuditIntegrityError(
                        f"the external head (record {n}) predates the retention purge (first kept record "
                        f"{base_n + 1}); take a newer head"
                    )
                if heads.get(n) != chain:
                    raise AuditIntegrityError(f"audit record {n} does not match the external head: altered")
            return AuditReport(
                records=len(lines),
                checkpoints=len(cps),
                first_seq=base_n + 1,
                head=prev,
                unsealed=total - last_n,
            )

    def _verify_checkpoints(self, data: bytes) -> list[dict[str, Any]]:
        if not data:
            raise AuditIntegrityError(f"{_CHECKPOINTS} is empty: the audit log cannot be trusted")
        if not data.endswith(b"\n"):
            n_cp = data.count(b"\n") + 1
            raise AuditIntegrityError(f"audit checkpoint {n_cp} is truncated or altered")
        out: list[dict[str, Any]] = []
        prev = _GENESIS
        last_n = -1
        for j, line in enumerate(data.split(b"\n")[:-1], start=1):
            where = f"audit checkpoint {j}"
            try:
                cp = json.loads(line)
            except ValueError:
                raise AuditIntegrityError(f"{where} is not valid JSON: altered") from None
            if not isinstance(cp, dict) or _canon(cp) != line:
                raise AuditIntegrityError(f"{where} is not in canonical form: altered")
            mac = cp.pop("mac", None)
            want = hmac.new(self._cp_key, _canon(cp), hashlib.sha256).hexdigest()
            if not isinstance(mac, str) or not hmac.compare_digest(mac, want):
                raise AuditIntegrityError(f"{where} fails its signature: altered or forged")
            if cp.get("prev") != prev:
                raise AuditIntegrityError(
                    f"{where} does not chain to the checkpoint before it: deleted or reordered"
                )
            if not isinstance(cp.get("n"), int) or (cp.get("kind") != "purge" and cp["n"] < last_n):
                raise AuditIntegrityError(f"{where} goes backwards: reordered")
            if cp.get("kind") != "purge":
                last_n = cp["n"]
            prev = mac
            out.append(cp)
        return out

    # ------------------------------------------------------------------ export and retention
    def export(self, out: IO[str]) -> int:
        """Verify, then write every record as JSON lines to ``out`` (for a SIEM); returns the count."""
        self.verify()
        n = 0
        for rec in self.records():
            out.write(json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n")
            n += 1
        return n

    def purge_expired(self, *, now: float | None = None) -> int:
        """Drop records older than ``retention_days`` (verifying first).

        The chain stays verifiable through a signed ``purge`` checkpoint that anchors the first kept
        record. Returns the number of records dropped.
        """
        self.verify()
        with self._file_lock():
            self._ensure_state()
            cutoff = (self._clock() if now is None else now) - self.retention_days * 86400.0
            lines = self._log_path.read_bytes().split(b"\n")[:-1]
            drop = 0
            for line in lines:
                if json.loads(line)["time"] >= cutoff:
                    break
                drop += 1
            if drop == 0:
                return 0
            last = json.loads(lines[drop - 1])
            self._write_checkpoint_locked(kind="purge", n=int(last["seq"]), head=str(last["mac"]))
            atomic_write(self._log_path, b"".join(line + b"\n" for line in lines[drop:]))
            self._tail = None
            self.append("audit.purge", principal=None, detail={"dropped": drop}, sync=True)
            return drop

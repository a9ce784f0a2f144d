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

import hashlib
import hmac
import json
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _encode_str
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from ..errors import AuditIntegrityError, ConfigurationError
from ..protect._crypto import HmacSha256

__all__ = ["HIPAA_RETENTION_DAYS", "AuditAnchor", "AuditLog", "AuditReport"]

HIPAA_RETENTION_DAYS = 6 * 365 + 2  # six years, leap days included
_GENESIS = "0" * 64
_LOG = "audit.jsonl"
_CHECKPOINTS = "audit.checkpoints.jsonl"
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
    and the fingerprints. ``clock`` returns unix seconds (inject one in tests)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        key: bytes,
        *,
        clock: Callable[[], float] | None = None,
        checkpoint_every: int = 100,
        retention_days: float = HIPAA_RETENTION_DAYS,
        durable: bool = False,
        anchor: AuditAnchor | None = None,
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
        self._anchor = anchor
        self._clock = clock or time.time
        self._chain_key = hmac.new(key, b"securecmr/audit/chain", hashlib.sha256).digest()
        self._cp_key = hmac.new(key, b"securecmr/audit/checkpoint", hashlib.sha256).digest()
        self._fp_key = hmac.new(key, b"securecmr/audit/fingerprint", hashlib.sha256).digest()
        self._fp = HmacSha256(self._fp_key)  # same HMAC, without a new HMAC object per fingerprint
        self._chain = HmacSha256(self._chain_key)
        self._id_fps: dict[str, str] = {}  # str(id) -> id fingerprint, for search results
        self._lock = threading.RLock()
        self._fh: IO[bytes] | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log_path = self.directory / _LOG
        self._cp_path = self.directory / _CHECKPOINTS
        self._seq, self._head, self._since_cp, self._cp_head = 0, _GENESIS, 0, _GENESIS
        self._loaded = False
        if not self._log_path.exists() and not self._cp_path.exists():
            self._log_path.touch()
            self._loaded = True
            self._write_checkpoint(kind="open")

    def _ensure_state(self) -> None:
        """Read the chain head lazily, so a damaged log can still be opened and verified."""
        if not self._loaded:
            self._seq, self._head = self._read_tail()
            self._cp_head, last_n = self._read_last_checkpoint()
            self._since_cp = max(0, self._seq - last_n)
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

    @property
    def head(self) -> str:
        with self._lock:
            self._ensure_state()
            return self._head

    def __len__(self) -> int:
        with self._lock:
            self._ensure_state()
            return self._seq

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
    def _open(self) -> IO[bytes]:
        if self._fh is None or self._fh.closed:
            self._fh = open(self._log_path, "ab")  # noqa: SIM115 - kept open across appends
        return self._fh

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
    ) -> dict[str, Any]:
        """Append one record and return it. ``query`` is fingerprinted; ``result_ids`` are keyed."""
        if outcome not in _OUTCOMES:
            raise ConfigurationError("outcome must be 'allowed' or 'denied'")
        fp = (
            query_fingerprint
            if query_fingerprint is not None
            else (None if query is None else self.fingerprint(query))
        )
        with self._lock:
            self._ensure_state()
            rec: dict[str, Any] = {
                "seq": self._seq + 1,
                "time": round(float(self._clock()), 6),
                "principal": principal,
                "tenant": tenant,
                "action": str(action),
                "collection": collection,
                "query": fp,
                "results": self.id_fingerprints(result_ids),
                "outcome": outcome,
                "reason": str(reason),
                "detail": detail or {},
                "prev": self._head,
            }
            body, line = _canon_record(rec)
            rec["mac"] = mac = self._chain.hexdigest(body)
            fh = self._open()
            fh.write(line(mac))
            fh.flush()
            if self.durable:
                os.fsync(fh.fileno())
            self._seq += 1
            self._head = rec["mac"]
            self._since_cp += 1
            if self._since_cp >= self.checkpoint_every:
                self._write_checkpoint()
            return rec

    def sync(self) -> None:
        """Make every record appended so far durable (flush and fsync the log): a write is
        acknowledged only after its record has been synced."""
        with self._lock:
            if self._fh is not None and not self._fh.closed:
                self._fh.flush()
                os.fsync(self._fh.fileno())

    def _write_checkpoint(
        self, kind: str = "periodic", n: int | None = None, head: str | None = None
    ) -> None:
        cp: dict[str, Any] = {
            "kind": kind,
            "n": self._seq if n is None else n,
            "head": self._head if head is None else head,
            "time": round(float(self._clock()), 6),
            "prev": self._cp_head,
        }
        cp["mac"] = hmac.new(self._cp_key, _canon(cp), hashlib.sha256).hexdigest()
        with open(self._cp_path, "ab") as fh:
            fh.write(_canon(cp) + b"\n")
            fh.flush()
            if self.durable:
                os.fsync(fh.fileno())
        self._cp_head = cp["mac"]
        self._since_cp = 0
        if self._anchor is not None and kind != "purge":
            self._anchor.save(int(cp["n"]), str(cp["head"]))

    def checkpoint(self) -> None:
        """Seal the current head now (also done every ``checkpoint_every`` records and on close)."""
        with self._lock:
            if self._loaded and self._since_cp:
                self._write_checkpoint()

    def close(self) -> None:
        with self._lock:
            self.checkpoint()
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading and verifying
    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first (not verified; call :meth:`verify` for that)."""
        with open(self._log_path, "rb") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def verify(self) -> AuditReport:
        """Check every record and checkpoint; raise AuditIntegrityError naming the first bad one."""
        with self._lock:
            if self._fh is not None:
                self._fh.flush()
            if not self._cp_path.exists():
                raise AuditIntegrityError(f"{_CHECKPOINTS} is missing: the audit log cannot be trusted")
            data = self._log_path.read_bytes() if self._log_path.exists() else b""
            return self.verify_bytes(data, self._cp_path.read_bytes())

    def verify_bytes(self, data: bytes, checkpoints: bytes) -> AuditReport:
        """:meth:`verify` on in-memory copies of the log and checkpoint files."""
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
        with self._lock:
            self.verify()
            self._ensure_state()
            cutoff = (self._clock() if now is None else now) - self.retention_days * 86400.0
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            lines = self._log_path.read_bytes().split(b"\n")[:-1]
            drop = 0
            for line in lines:
                if json.loads(line)["time"] >= cutoff:
                    break
                drop += 1
            if drop == 0:
                return 0
            last = json.loads(lines[drop - 1])
            self._write_checkpoint(kind="purge", n=int(last["seq"]), head=str(last["mac"]))
            tmp = self._log_path.with_suffix(".tmp")
            tmp.write_bytes(b"".join(line + b"\n" for line in lines[drop:]))
            os.replace(tmp, self._log_path)
            self.append("audit.purge", principal=None, detail={"dropped": drop})
            return drop

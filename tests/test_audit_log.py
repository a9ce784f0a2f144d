"""The audit chain catches every single-byte edit, deleted line, swap and truncation."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from securecmr.audit import AuditLog
from securecmr.errors import AuditIntegrityError, ConfigurationError

KEY = b"a" * 32


def _make(tmp_path: Path, n: int = 5, every: int = 2) -> AuditLog:
    now = [1_700_000_000.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    log = AuditLog(tmp_path, KEY, clock=clock, checkpoint_every=every)
    for i in range(n):
        log.append(
            "search" if i % 2 else "add",
            principal=f"user{i % 2}",
            tenant="t1",
            collection="ct",
            query=f"query {i}",
            result_ids=[f"id-{i}", f"id-{i + 1}"],
            outcome="denied" if i == 3 else "allowed",
            reason="no permission" if i == 3 else "",
        )
    log.close()
    return log


def _fails(log: AuditLog, data: bytes, cps: bytes, pattern: str) -> None:
    """verify_bytes must raise AuditIntegrityError with a message matching ``pattern``
    (a plain try/except: pytest.raises is too slow for thousands of cases)."""
    try:
        log.verify_bytes(data, cps)
    except AuditIntegrityError as exc:
        assert re.search(pattern, str(exc)), str(exc)
    else:
        pytest.fail("tampering was not detected")


def _fresh(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path, KEY)


def test_intact_log_verifies_and_reopens(tmp_path: Path) -> None:
    log = _make(tmp_path)
    report = log.verify()
    assert report.records == 5 and report.unsealed == 0 and report.first_seq == 1
    again = _fresh(tmp_path)
    assert len(again) == 5
    again.append("search", principal="x")
    again.close()
    assert _fresh(tmp_path).verify().records == 6


def test_records_hold_no_raw_query_or_id(tmp_path: Path) -> None:
    _make(tmp_path)
    text = (tmp_path / "audit.jsonl").read_text()
    assert "query 1" not in text and "id-1" not in text
    rec = json.loads(text.splitlines()[1])
    log = _fresh(tmp_path)
    assert rec["query"] == log.fingerprint("query 1")
    assert rec["results"] == [log.id_fingerprint("id-1"), log.id_fingerprint("id-2")]
    assert {"time", "principal", "tenant", "action", "collection", "outcome", "reason"} <= set(rec)


def test_every_single_byte_edit_is_caught(tmp_path: Path) -> None:
    _make(tmp_path, n=4)
    path = tmp_path / "audit.jsonl"
    original = path.read_bytes()
    cps = (tmp_path / "audit.checkpoints.jsonl").read_bytes()
    log = _fresh(tmp_path)
    for pos in range(len(original)):
        for delta in (1, 0x20, 0x80):
            data = bytearray(original)
            data[pos] ^= delta
            _fails(log, bytes(data), cps, r"audit record \d+")
            if pos % 97 == 0 and delta == 1:  # and through the files, on a sample of positions
                path.write_bytes(bytes(data))
                with pytest.raises(AuditIntegrityError, match=r"audit record \d+"):
                    _fresh(tmp_path).verify()
    path.write_bytes(original)
    _fresh(tmp_path).verify()


def test_every_checkpoint_byte_edit_is_caught(tmp_path: Path) -> None:
    _make(tmp_path, n=4)
    original = (tmp_path / "audit.checkpoints.jsonl").read_bytes()
    log_data = (tmp_path / "audit.jsonl").read_bytes()
    log = _fresh(tmp_path)
    for pos in range(len(original)):
        data = bytearray(original)
        data[pos] ^= 1
        _fails(log, log_data, bytes(data), "checkpoint")
    lines = original.split(b"\n")[:-1]
    for i in range(len(lines) - 1):  # the newest checkpoint is anchored by the store, not by this file
        with pytest.raises(AuditIntegrityError, match="checkpoint"):
            log.verify_bytes(log_data, b"".join(x + b"\n" for j, x in enumerate(lines) if j != i))


def test_line_deletion_swap_and_truncation_are_caught(tmp_path: Path) -> None:
    _make(tmp_path, n=4)
    path = tmp_path / "audit.jsonl"
    original = path.read_bytes()
    lines = original.split(b"\n")[:-1]
    cps = (tmp_path / "audit.checkpoints.jsonl").read_bytes()
    log = _fresh(tmp_path)
    for i in range(len(lines)):
        data = b"".join(x + b"\n" for j, x in enumerate(lines) if j != i)
        _fails(log, data, cps, r"audit record \d+")
    path.write_bytes(data)
    with pytest.raises(AuditIntegrityError, match=r"audit record \d+"):
        _fresh(tmp_path).verify()
    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            swapped = list(lines)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            _fails(log, b"".join(x + b"\n" for x in swapped), cps, r"audit record \d+")
    for cut in range(len(original)):
        _fails(log, original[:cut], cps, r"audit record \d+|audit log truncated")
    path.write_bytes(original[: len(original) // 2])
    with pytest.raises(AuditIntegrityError, match=r"audit record \d+|audit log truncated"):
        _fresh(tmp_path).verify()
    path.write_bytes(original)
    assert _fresh(tmp_path).verify().records == 4


def test_missing_checkpoints_or_wrong_key_fail(tmp_path: Path) -> None:
    _make(tmp_path)
    with pytest.raises(AuditIntegrityError):
        AuditLog(tmp_path, b"b" * 32).verify()
    (tmp_path / "audit.checkpoints.jsonl").unlink()
    with pytest.raises(AuditIntegrityError, match="checkpoint"):
        _fresh(tmp_path).verify()


def test_export_and_retention(tmp_path: Path) -> None:
    now = [1_000.0]
    log = AuditLog(tmp_path, KEY, clock=lambda: now[0], retention_days=1, checkpoint_every=2)
    for i in range(5):
        log.append("search", principal="p", query=str(i))
    now[0] += 2 * 86400
    log.append("search", principal="p", query="late")
    assert log.purge_expired() == 5
    report = log.verify()
    assert report.first_seq == 6 and report.records == 2  # the kept record + the purge record
    buf = io.StringIO()
    assert log.export(buf) == 2
    assert [json.loads(x)["seq"] for x in buf.getvalue().splitlines()] == [6, 7]
    log.close()
    assert _fresh(tmp_path).verify().records == 2


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        AuditLog(tmp_path, b"short")
    log = AuditLog(tmp_path, KEY)
    with pytest.raises(ConfigurationError):
        log.append("x", principal="p", outcome="maybe")
    assert "a" * 32 not in repr(log)


class _Anchor:
    def __init__(self) -> None:
        self.value: tuple[int, str] | None = None

    def save(self, n: int, head: str) -> None:
        self.value = (n, head)

    def load(self) -> tuple[int, str] | None:
        return self.value


def test_external_anchor_catches_consistent_truncation(tmp_path: Path) -> None:
    anchor = _Anchor()
    log = AuditLog(tmp_path, KEY, checkpoint_every=2, anchor=anchor)
    for i in range(6):
        log.append("search", principal="p", query=str(i))
    log.close()
    assert anchor.value is not None and anchor.value[0] == 6
    lines = (tmp_path / "audit.jsonl").read_bytes().split(b"\n")[:-1]
    cps = (tmp_path / "audit.checkpoints.jsonl").read_bytes().split(b"\n")[:-1]
    # drop the last two records and the checkpoint that sealed them: self-consistent files...
    (tmp_path / "audit.jsonl").write_bytes(b"".join(x + b"\n" for x in lines[:4]))
    (tmp_path / "audit.checkpoints.jsonl").write_bytes(b"".join(x + b"\n" for x in cps[:-1]))
    assert AuditLog(tmp_path, KEY).verify().records == 4  # ...that verify without the anchor
    with pytest.raises(AuditIntegrityError, match="anchor"):
        AuditLog(tmp_path, KEY, anchor=anchor).verify()

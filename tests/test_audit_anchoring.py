"""The audit trail cannot disappear quietly: missing or cut logs, rolled-back registries, crashes
inside the group-commit window, torn records, and the external signed head."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _store_helpers import PASS, items, new_store
from typer.testing import CliRunner

import securecmr
from securecmr.audit import AuditLog
from securecmr.cli.main import app
from securecmr.errors import AuditIntegrityError, AuthenticationError, IntegrityError

KEY = b"k" * 32


def _audit_dir(tmp_path: Path) -> Path:
    return tmp_path / "store" / "access" / "audit"


def _store_with_log(tmp_path: Path) -> str:
    with new_store(tmp_path) as store:
        store.create_collection("c").add(items(5))
        token = store.create_user("ana", "reader")
        sess = store.session(token)
        for _ in range(3):
            sess.collection("c").search(code=np.zeros(8, np.uint8), k=2)
    return token


def test_deleted_log_is_refused_not_restarted(tmp_path: Path) -> None:
    _store_with_log(tmp_path)
    for name in ("audit.jsonl", "audit.checkpoints.jsonl"):
        (_audit_dir(tmp_path) / name).unlink()
    with pytest.raises(AuditIntegrityError, match="missing"):
        securecmr.Store.open(tmp_path / "store", passphrase=PASS)
    with pytest.raises(AuditIntegrityError, match="missing"):
        securecmr.Store.open(tmp_path / "store", passphrase=PASS, readonly=True)
    assert not (_audit_dir(tmp_path) / "audit.jsonl").exists()  # no fresh log was started


def test_log_cut_to_a_valid_prefix_fails_even_after_a_writer_session(tmp_path: Path) -> None:
    _store_with_log(tmp_path)
    d = _audit_dir(tmp_path)
    log_lines = (d / "audit.jsonl").read_bytes().split(b"\n")[:-1]
    cps = (d / "audit.checkpoints.jsonl").read_bytes().split(b"\n")[:-1]
    (d / "audit.jsonl").write_bytes(b"".join(x + b"\n" for x in log_lines[:3]))
    (d / "audit.checkpoints.jsonl").write_bytes(cps[0] + b"\n")  # the "open" checkpoint: consistent
    with securecmr.Store.open(tmp_path / "store", passphrase=PASS) as store:
        with pytest.raises(AuditIntegrityError, match="anchor"):
            store.audit.verify()
        with pytest.raises(AuditIntegrityError, match="truncated"):
            store.create_user("bob", "reader")  # nothing is appended to a cut log
    with (
        securecmr.Store.open(tmp_path / "store", passphrase=PASS) as store,
        pytest.raises(AuditIntegrityError),
    ):
        store.audit.verify()


def test_older_registry_put_back_is_refused(tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        token = store.create_user("ana", "reader")
    reg = tmp_path / "store" / "access" / "users.sealed"
    old = reg.read_bytes()
    with securecmr.Store.open(tmp_path / "store", passphrase=PASS) as store:
        store.revoke_user("ana")
    reg.write_bytes(old)  # the copy in which ana's token still worked
    with (
        pytest.raises(IntegrityError, match="older"),
        securecmr.Store.open(tmp_path / "store", passphrase=PASS, readonly=True) as store,
    ):
        store.session(token)
    with pytest.raises(IntegrityError, match=r"users\.sealed"):
        securecmr.Store.open(tmp_path / "store", passphrase=PASS)


def test_registry_rolled_back_while_a_process_runs(tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        token = store.create_user("ana", "reader")
    reg = tmp_path / "store" / "access" / "users.sealed"
    old = reg.read_bytes()
    with securecmr.Store.open(tmp_path / "store", passphrase=PASS, readonly=True) as reader:
        with securecmr.Store.open(tmp_path / "store", passphrase=PASS) as writer:
            writer.revoke_user("ana")
        with pytest.raises(AuthenticationError):
            reader.session(token)
        tmp = reg.with_name("x.tmp")
        tmp.write_bytes(old)
        os.replace(tmp, reg)
        with pytest.raises(IntegrityError, match="older"):
            reader.session(token)


def test_external_head_catches_whole_directory_rollback(tmp_path: Path) -> None:
    _store_with_log(tmp_path)
    root = tmp_path / "store"
    shutil.copytree(root, tmp_path / "old-copy")
    with securecmr.Store.open(root, passphrase=PASS) as store:
        store.collection("c").delete(["patient-00001"])
        head = store.audit.head()
        assert set(head) == {"format", "store_id", "records", "chain", "time", "mac"}
        assert store.audit.verify(head=head).records == head["records"]
    (tmp_path / "head.json").write_text(json.dumps(head))
    shutil.rmtree(root)
    shutil.copytree(tmp_path / "old-copy", root)  # consistent, older: invisible from inside
    with securecmr.Store.open(root, passphrase=PASS) as store:
        store.audit.verify()
        with pytest.raises(AuditIntegrityError, match="external head"):
            store.audit.verify(head=tmp_path / "head.json")
        forged = dict(head, records=1)
        with pytest.raises(AuditIntegrityError, match="MAC"):
            store.audit.verify(head=forged)


def test_cli_audit_head_and_verify_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _store_with_log(tmp_path)
    monkeypatch.setenv("SECURECMR_PASSPHRASE", PASS)
    runner = CliRunner()
    root = str(tmp_path / "store")
    res = runner.invoke(app, ["audit", "head", root])
    assert res.exit_code == 0, res.output
    head = json.loads(res.stdout)
    assert head["records"] > 0 and len(head["chain"]) == 64
    (tmp_path / "head.json").write_text(res.stdout)
    res = runner.invoke(app, ["audit", "verify", root, "--head", str(tmp_path / "head.json")])
    assert res.exit_code == 0, res.output
    (tmp_path / "head.json").write_text(json.dumps(dict(head, records=head["records"] + 50)))
    res = runner.invoke(app, ["audit", "verify", root, "--head", str(tmp_path / "head.json")])
    assert res.exit_code == 1


def test_writes_are_durable_and_reads_group_committed(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, KEY)
    log.append("add", principal="p")
    assert len((tmp_path / "audit.jsonl").read_bytes().splitlines()) == 1  # on disk at return
    rec = log.append("search", principal="p", query="q")
    deadline = time.monotonic() + 5
    while len((tmp_path / "audit.jsonl").read_bytes().splitlines()) < 2:
        assert time.monotonic() < deadline, "a read record was not written within its bound"
        time.sleep(0.01)
    assert rec["seq"] == 2
    for i in range(AuditLog.group_commit_records):
        log.append("search", principal="p", query=str(i))
    assert len((tmp_path / "audit.jsonl").read_bytes().splitlines()) >= 2 + AuditLog.group_commit_records
    log.close()
    assert AuditLog(tmp_path, KEY).verify().records == 2 + AuditLog.group_commit_records


_CRASHER = """
import os, sys, time
from securecmr.audit import AuditLog
log = AuditLog(sys.argv[1], b"k" * 32)
log.group_commit_s = 3600.0  # keep reads in memory: the kill lands inside the window
log.append("add", principal="p")
for i in range(5):
    log.append("search", principal="p", query=str(i))
print("ready", flush=True)
time.sleep(60)
"""


def test_crash_inside_the_window_is_an_audited_gap(tmp_path: Path) -> None:
    AuditLog(tmp_path, KEY).close()
    proc = subprocess.Popen([sys.executable, "-c", _CRASHER, str(tmp_path)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    log = AuditLog(tmp_path, KEY)  # the next process to open the log finds the dead one
    recs = list(log.records())
    assert [r["action"] for r in recs] == ["add", "audit.gap"]
    assert "may be missing" in recs[-1]["reason"] and recs[-1]["detail"]["pid"] == proc.pid
    log.close()
    assert AuditLog(tmp_path, KEY).verify().records == 2
    assert not list((tmp_path / "live").iterdir())


def test_torn_last_record_is_cut_and_audited(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, KEY)
    log.append("add", principal="p")
    log.close()
    with open(tmp_path / "audit.jsonl", "ab") as fh:
        fh.write(b'{"action":"add","coll')  # a write cut off by a crash
    log = AuditLog(tmp_path, KEY)
    log.append("add", principal="p")
    log.close()
    recs = list(AuditLog(tmp_path, KEY).records())
    assert [r["action"] for r in recs] == ["add", "audit.gap", "add"]
    assert recs[1]["detail"]["kind"] == "torn"
    assert AuditLog(tmp_path, KEY).verify().records == 3


def test_many_processes_append_one_chain(tmp_path: Path) -> None:
    AuditLog(tmp_path, KEY).close()
    code = (
        "import sys\nfrom securecmr.audit import AuditLog\n"
        "log = AuditLog(sys.argv[1], b'k' * 32, checkpoint_every=7)\n"
        "for i in range(60):\n"
        "    log.append('search' if i % 3 else 'add', principal=sys.argv[2], query=str(i))\n"
        "log.close()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), f"p{i}"]) for i in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    report = AuditLog(tmp_path, KEY).verify()
    assert report.records == 240 and report.unsealed == 0

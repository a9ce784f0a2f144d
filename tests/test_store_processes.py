"""Many processes, one store: real processes writing, reading, revoking and rotating at once."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _store_helpers import PASS, items, new_store

import securecmr
from securecmr.errors import AuthenticationError, StoreError, StoreLockedError

_WORKER = Path(__file__).with_name("_mp_worker.py")


def _run(tmp_path: Path, seconds: float, writers: int = 2, readers: int = 2) -> None:
    root = tmp_path / "store"
    with new_store(tmp_path) as store:
        store.create_collection("c").add(items(20))
        tokens = {"alice": store.create_user("alice", "reader"), "bob": store.create_user("bob", "reader")}
    (tmp_path / "tokens.json").write_text(json.dumps(tokens))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(securecmr.__file__).parents[1]), *sys.path])}
    procs = []
    for role, count in (("writer", writers), ("reader", readers)):
        for i in range(count):
            out = tmp_path / f"{role}{i}.json"
            cmd = [sys.executable, str(_WORKER), role, str(i), str(root), str(seconds), str(out)]
            procs.append(subprocess.Popen([*cmd, str(tmp_path / "tokens.json")], env=env))
    for p in procs[:writers]:
        assert p.wait(timeout=seconds + 240) == 0
    (tmp_path / "stop").touch()
    for p in procs[writers:]:
        assert p.wait(timeout=240) == 0
    logs = {
        f"{r}{i}": json.loads((tmp_path / f"{r}{i}.json").read_text())
        for r, c in (("writer", writers), ("reader", readers))
        for i in range(c)
    }
    _check(root, logs, writers, readers)


def _check(root: Path, logs: dict[str, dict], writers: int, readers: int) -> None:  # type: ignore[type-arg]
    added = {i for lg in logs.values() for a in lg["adds"] for i in a["ids"]}
    deleted = {d["id"] for lg in logs.values() for d in lg["deletes"]}
    events = {e["what"]: e["t1"] for lg in logs.values() for e in lg["events"]}
    assert "revoke" in events and "rotate" in events
    with securecmr.Store.open(root, passphrase=PASS, readonly=True) as store:
        ids = set(store.collection("c").ids())
        assert added - deleted <= ids  # every acknowledged item is there
        assert not (deleted & ids)  # every deleted one is gone
        assert len(ids) == 20 + len(added) - len(deleted)
        report = store.audit.verify()
        records = list(store.audit.records())
    assert report.records == len(records)
    # revocation: no call of bob's that started after the revocation returned went through
    t_revoke = events["revoke"]
    for name in (f"reader{i}" for i in range(readers)):
        late = [s for s in logs[name]["searches"] if s["user"] == "bob" and s["t0"] > t_revoke]
        assert not late, (name, late[:3])
        assert any(r["user"] == "bob" for r in logs[name]["refused"])
        assert "bob-session-refused" in [e["what"] for e in logs[name]["events"]]
    # exactly one audit record per acknowledged call
    allowed = collections.Counter((r["action"], r["principal"]) for r in records if r["outcome"] == "allowed")
    n_adds = sum(len(lg["adds"]) for lg in logs.values())
    n_deletes = sum(len(lg["deletes"]) for lg in logs.values())
    assert allowed[("add", "@operator")] == n_adds + 1  # + the setup batch
    assert allowed[("delete", "@operator")] == n_deletes
    for user in ("alice", "bob"):
        acked = sum(1 for lg in logs.values() for s in lg["searches"] if s["user"] == user)
        assert allowed[("search", user)] == acked, user
    assert allowed[("user.revoke", "@operator")] == 1
    assert allowed[("keys.rotate", "@operator")] == 1
    refused = sum(len(lg["refused"]) + len(lg["throttled"]) for lg in logs.values())
    refused += readers  # each reader's last try with the revoked token
    denied = sum(1 for r in records if r["outcome"] == "denied")
    assert denied == refused  # each refused call (a revoked token) left one denial, nothing else did
    assert not [r for r in records if r["action"] == "audit.gap"]  # every process closed cleanly


def test_four_processes_short(tmp_path: Path) -> None:
    _run(tmp_path, seconds=4.0)


@pytest.mark.slow
def test_four_processes_long(tmp_path: Path) -> None:
    _run(tmp_path, seconds=30.0, writers=2, readers=2)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_readonly_changes_nothing_but_audits(tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        store.create_collection("c").add(items(10))
        token = store.create_user("ana", "reader")
    root = tmp_path / "store"
    fixed = ["store.db", "keyring.json", "access/users.sealed", "access/audit/audit.checkpoints.jsonl"]
    before = {f: _digest(root / f) for f in fixed}
    log_before = (root / "access/audit/audit.jsonl").stat().st_size
    with securecmr.Store.open(root, passphrase=PASS, readonly=True) as reader:
        hits = reader.session(token).collection("c").search(code=np.zeros(8, np.uint8), k=3)
        assert len(hits) == 3
        with pytest.raises(StoreError, match="readonly"):
            reader.create_user("eve", "admin")
        with pytest.raises(StoreError, match="readonly"):
            reader.collection("c").add(items(1, seed=5))
    assert {f: _digest(root / f) for f in fixed} == before
    assert (root / "access/audit/audit.jsonl").stat().st_size > log_before  # the read was audited
    with securecmr.Store.open(root, passphrase=PASS) as store:
        assert store.audit.verify().records >= 3


def test_two_readers_and_a_writer_see_each_others_changes(tmp_path: Path) -> None:
    """The bug of the issue: readers closing with stale copies undid a revocation and broke the
    audit chain. Now they write no registry or checkpoint, and see changes at their next call."""
    with new_store(tmp_path) as store:
        store.create_collection("c").add(items(10))
        t_old = store.create_user("old", "reader")
    root = tmp_path / "store"
    r1 = securecmr.Store.open(root, passphrase=PASS, readonly=True)
    r2 = securecmr.Store.open(root, passphrase=PASS, readonly=True)
    s1 = r1.session(t_old)
    r2.session(t_old)
    with securecmr.Store.open(root, passphrase=PASS) as writer:
        writer.revoke_user("old")
        t_new = writer.create_user("new", "reader")
        writer.collection("c").add([securecmr.Item("x1", codes={"image": np.ones(8, np.uint8)})])
        writer.collection("c").delete(["patient-00002"])
    with pytest.raises(AuthenticationError):
        s1.collection("c").search(code=np.zeros(8, np.uint8), k=1)  # an open session, next call
    with pytest.raises(AuthenticationError):
        r2.session(t_old)
    assert set(r1.collection("c").ids()) == {f"patient-{i:05d}" for i in range(10) if i != 2} | {"x1"}
    assert r2.session(t_new).collection("c").search(code=np.ones(8, np.uint8), k=1)[0].id == "x1"
    r1.close()
    r2.close()
    with securecmr.Store.open(root, passphrase=PASS) as store:
        store.audit.verify()
        with pytest.raises(AuthenticationError):
            store.session(t_old)
        store.session(t_new)


def test_writer_lock_times_out_with_clear_error(tmp_path: Path) -> None:
    new_store(tmp_path).close()
    root = tmp_path / "store"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, os, sys, time\n"
                f"fd = os.open({str(root / 'store.lock')!r}, os.O_RDWR)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(30)\n"
            ),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with securecmr.Store.open(root, passphrase=PASS, readonly=True) as reader:
            assert reader.collections() == []  # readers never wait for the writer lock
        with pytest.raises(StoreLockedError, match="timeout"):
            securecmr.Store.open(root, passphrase=PASS, timeout=0.2)  # its purge-on-open is a write
    finally:
        holder.kill()
        holder.wait()
    with securecmr.Store.open(root, passphrase=PASS, timeout=0.2) as store:
        store.create_collection("c")

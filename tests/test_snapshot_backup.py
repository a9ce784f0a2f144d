"""Snapshots are backups: users and tokens, the audit log with its checkpoints, the fitted monitor
and its query log survive export/import; a damaged snapshot is refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import securecmr
from securecmr.cli.main import app
from securecmr.errors import AuthenticationError, DecryptionError, IntegrityError, StoreExistsError
from securecmr.monitor import QueryAnomalyDetector, TrafficSimulator, synthetic_collection

PASS = "backup passphrase"
EPOCH = 1_790_000_000.0


def _busy_store(path: Path) -> tuple[dict[str, str], list[float]]:
    """A store with users, a collection, a long query history and a fitted monitor."""
    now = [EPOCH]
    store = securecmr.Store.create(path, passphrase=PASS, clock=lambda: now[0])
    try:
        codes, topics = synthetic_collection(120, n_topics=4, seed=3)
        tokens = {"root": store.create_user("root", role="admin")}
        coll = store.session(tokens["root"]).create_collection("scans", bits=64)
        coll.add([securecmr.Item(f"p{i}", codes={"image": codes[i]}) for i in range(len(codes))])
        sim = TrafficSimulator(codes, topics, seed=3)
        for u in ("ana", "ben", "cy", "dee"):
            tokens[u] = store.create_user(u, role="reader", tenant=None)
        sessions = {u: store.session(tokens[u]) for u in ("ana", "ben", "cy", "dee")}
        for q in sorted((q for u in sessions for q in sim.benign(u, days=(0, 8))), key=lambda q: q.time):
            now[0] = q.time
            sessions[q.principal].collection("scans").search(code=np.frombuffer(q.code, np.uint8), k=q.k)
        store.monitor.fit(detector=QueryAnomalyDetector(stride=8))
        store.monitor.guard.block("cy")  # guard state travels too
        store.monitor._save_state()
        store.revoke_user("ben")
    finally:
        store.close()
    return tokens, now


def test_snapshot_round_trip_keeps_users_audit_and_monitor(tmp_path: Path) -> None:
    src = tmp_path / "src"
    tokens, _now = _busy_store(src)
    with securecmr.Store.open(src, passphrase=PASS) as st:
        st.export_snapshot(tmp_path / "b.snap")
        before = st.audit.verify()
        queries = len(st.monitor.log)
        users = st.users()
        report = st.monitor.report(all_principals=True)
    info = securecmr.Store.verify_snapshot(tmp_path / "b.snap", passphrase=PASS)
    assert info["users"] and info["audit"] and info["monitor_fitted"] and info["format"] == 2
    with securecmr.Store.import_snapshot(tmp_path / "b.snap", tmp_path / "dst", passphrase=PASS) as st:
        after = st.audit.verify()
        recs = list(st.audit.records())
        assert after.records == before.records + 1  # the full history and one restore record
        assert recs[-1]["action"] == "restore" and recs[-1]["detail"]["records"] == before.records
        assert recs[-2]["action"] == "export.snapshot"
        assert st.session(tokens["ana"]).user == "ana"  # old tokens work
        with pytest.raises(AuthenticationError):
            st.session(tokens["ben"])  # a revocation stays revoked
        assert st.users() == users
        assert st.monitor.detector is not None and st.monitor.guard.is_blocked("cy")
        assert len(st.monitor.log) == queries
        assert st.monitor.report(all_principals=True) == report
        assert len(st.collection("scans")) == 120


def test_damaged_snapshot_writes_nothing(tmp_path: Path) -> None:
    with securecmr.Store.create(tmp_path / "src", passphrase=PASS) as st:
        st.create_user("ana")
        st.create_collection("c").add([securecmr.Item("a", codes={"text": np.zeros(8, np.uint8)})])
        st.export_snapshot(tmp_path / "b.snap")
    good = (tmp_path / "b.snap").read_bytes()
    dst = tmp_path / "dst"
    for pos in (20, len(good) // 3, len(good) // 2, len(good) - 5):  # header, keyring, archive, tag
        bad = bytearray(good)
        bad[pos] ^= 1
        (tmp_path / "x.snap").write_bytes(bytes(bad))
        with pytest.raises((IntegrityError, DecryptionError)):
            securecmr.Store.import_snapshot(tmp_path / "x.snap", dst, passphrase=PASS)
        assert not dst.exists()
    (tmp_path / "x.snap").write_bytes(good[: len(good) - 100])  # truncated
    with pytest.raises((IntegrityError, DecryptionError)):
        securecmr.Store.import_snapshot(tmp_path / "x.snap", dst, passphrase=PASS)
    with pytest.raises(DecryptionError):
        securecmr.Store.import_snapshot(tmp_path / "b.snap", dst, passphrase="wrong")
    assert not dst.exists()
    dst.mkdir()
    (dst / "keep.txt").write_text("x")
    with pytest.raises(StoreExistsError):
        securecmr.Store.import_snapshot(tmp_path / "b.snap", dst, passphrase=PASS)
    assert [p.name for p in dst.iterdir()] == ["keep.txt"]


def test_snapshot_cli(tmp_path: Path) -> None:
    env = {"SECURECMR_PASSPHRASE": PASS}
    src, snap = tmp_path / "src", tmp_path / "b.snap"
    with securecmr.Store.create(src, passphrase=PASS) as st:
        token = st.create_user("ana")
    run = CliRunner().invoke
    res = run(app, ["snapshot", "export", str(src), str(snap), "--json"], env=env)
    assert res.exit_code == 0 and json.loads(res.stdout)["bytes"] == snap.stat().st_size
    res = run(app, ["snapshot", "verify", str(snap), "--json"], env=env)
    assert res.exit_code == 0 and json.loads(res.stdout)["users"] is True
    res = run(app, ["snapshot", "import", str(snap), str(tmp_path / "dst"), "--json"], env=env)
    assert res.exit_code == 0, res.output
    with securecmr.Store.open(tmp_path / "dst", passphrase=PASS) as st:
        assert st.session(token).user == "ana"
    data = bytearray(snap.read_bytes())
    data[-10] ^= 1
    snap.write_bytes(bytes(data))
    res = run(app, ["snapshot", "import", str(snap), str(tmp_path / "dst2"), "--json"], env=env)
    assert res.exit_code == 1 and json.loads(res.stdout)["error"]["type"] == "IntegrityError"
    assert not (tmp_path / "dst2").exists()

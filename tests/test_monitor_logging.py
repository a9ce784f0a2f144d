"""What the query log records for session searches: the salted query code for every query
modality (never the raw query or a fingerprint of it), and refused searches with their reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _monitor_helpers import MStore

from securecmr.errors import AuthenticationError, BlockedError, PermissionDeniedError
from securecmr.monitor import (
    PrincipalTracker,
    QueryAnomalyDetector,
    QueryEvent,
    TrafficSimulator,
    synthetic_collection,
)
from securecmr.monitor._features import FEATURE_NAMES
from securecmr.monitor._simulator import EPOCH
from securecmr.store import Item, Store


def _codes(store: Store, kind: str, value: Any, query_modality: str = "text") -> tuple[bytes, bytes]:
    """(raw, salted) code of a query on the store's "scans" collection (test-only internals)."""
    from securecmr.access import Query

    ops = store.collection("scans")._ops
    raw = ops.encode_query(Query(kind, value, query_modality))  # type: ignore[arg-type]
    return raw.tobytes(), ops.salted(raw)


def _real_store(tmp_path: Path, now: list[float]) -> Store:
    store = Store.create(tmp_path / "s", passphrase="correct horse battery", clock=lambda: now[0])
    codes, _ = synthetic_collection(60, n_topics=3, seed=4)
    admin = store.session(store.create_user("root", role="admin"))
    coll = admin.create_collection("scans", bits=64)
    coll.add([Item(f"p{i}", codes={"image": codes[i]}) for i in range(len(codes))])
    return store


def test_vector_query_is_logged_as_its_salted_code(tmp_path: Path) -> None:
    now = [EPOCH]
    store = _real_store(tmp_path, now)
    try:
        ana = store.session(store.create_user("ana", role="reader"))
        v = np.random.default_rng(0).standard_normal(384).astype(np.float32)
        hits = ana.collection("scans").search(vector=v, query_modality="image", k=5)
        direct = store.collection("scans").search(vector=v, query_modality="image", k=5)
        assert [h.id for h in hits] == [h.id for h in direct]  # encoding once changes nothing
        (ev,) = list(store.monitor.log)
        raw, salted = _codes(store, "vector", v, "image")
        assert ev.code == salted and ev.bits == 64 and not ev.denied
        assert ev.code != raw  # the salted space, not the raw code
        assert ev.top1 == pytest.approx(hits[0].score)
    finally:
        store.close()


def test_text_query_is_logged_as_its_salted_code_not_the_text(models_dir: Path, tmp_path: Path) -> None:
    now = [EPOCH]
    store = _real_store(tmp_path, now)
    try:
        ana = store.session(store.create_user("ana", role="reader"))
        texts = ["axial CT of the chest with contrast", "axial CT of the chest with contrast."]
        for t in texts:
            ana.collection("scans").search(text=t, k=5)
        events = list(store.monitor.log)
        assert [e.code for e in events] == [_codes(store, "text", t)[1] for t in texts]
        a, b = (np.unpackbits(np.frombuffer(e.code, np.uint8)) for e in events)
        assert int((a != b).sum()) <= 8  # near-duplicate queries stay near in the log (SEAT, PRADA)
        for e in events:
            line = json.dumps(e.to_dict())
            assert "chest" not in line and "contrast" not in line
        assert b"chest" not in (tmp_path / "s" / "monitor" / "queries.log").read_bytes()
    finally:
        store.close()


def test_refused_searches_are_logged_with_their_reason(tmp_path: Path) -> None:
    now = [EPOCH]
    store = _real_store(tmp_path, now)
    try:
        token = store.create_user("aud", role="auditor")  # no search permission
        aud = store.session(token)
        code = np.zeros(8, np.uint8)
        with pytest.raises(PermissionDeniedError):
            aud.collection("scans").search(code=code, k=7)
        with pytest.raises(PermissionDeniedError):
            aud.collection("scans").search(text="anything at all", k=7)
        ana = store.session(store.create_user("ana", role="reader")).collection("scans")
        store.revoke_user("ana")  # a handle opened before the revocation
        with pytest.raises(AuthenticationError):
            ana.search(code=code, k=3)
        first, second, third = list(store.monitor.log)
        assert (first.principal, first.denied, first.reason, first.k) == ("aud", True, "permission", 7)
        assert first.code == _codes(store, "code", code)[1]
        assert first.result_ids == () and first.top1 is None
        assert second.denied and second.code == b""  # no model is run for a refused text query
        assert (third.principal, third.reason) == ("ana", "revoked")
    finally:
        store.close()


def test_event_reason_round_trips_and_old_lines_still_load() -> None:
    ev = QueryEvent("p", EPOCH, "c", 5, b"", denied=True, reason="throttled")
    assert QueryEvent.from_dict(ev.to_dict()) == ev
    old = {"p": "p", "t": EPOCH, "c": "c", "k": 5, "q": "00ff", "r": [], "s1": None, "s2": None, "d": False}
    assert QueryEvent.from_dict(old).reason is None


def test_tracker_counts_codeless_refusals_without_breaking_hamming_features() -> None:
    codes, _ = synthetic_collection(40, seed=1)
    coded = PrincipalTracker(window=48, stride=16, min_events=16)
    mixed = PrincipalTracker(window=48, stride=16, min_events=16)
    row_c = row_m = None
    for i in range(32):
        ev = QueryEvent("p", EPOCH + 60 * i, "c", 10, codes[i].tobytes(), result_ids=(f"r{i}",), top1=0.9)
        row_c = coded.push(ev)
        row_m = mixed.push(ev)
        refused = QueryEvent("p", EPOCH + 60 * i + 30, "c", 10, b"", denied=True, reason="throttled")
        row_m = mixed.push(refused) if row_m is None else row_m
    assert row_c is not None and row_m is not None
    rc, rm = dict(zip(FEATURE_NAMES, row_c, strict=True)), dict(zip(FEATURE_NAMES, row_m, strict=True))
    assert np.isfinite(row_m).all()
    assert rm["denial_rate"] == pytest.approx(0.5) and rc["denial_rate"] == 0.0
    assert rm["dispersion"] > 0.3 and rm["near_duplicates"] == 0.0  # codes still compared
    assert rm["log_rate"] > rc["log_rate"]  # refusals count towards the query rate


def _benign_then_fit(store: Any, now: list[float]) -> tuple[TrafficSimulator, np.ndarray]:
    codes, topics = synthetic_collection(150, n_topics=5, seed=9)
    admin = store.session(store.create_user("root", role="admin"))
    coll = admin.create_collection("scans", bits=64)
    coll.add([Item(f"patient-{i}", codes={"image": codes[i]}) for i in range(len(codes))])
    sim = TrafficSimulator(codes, topics, seed=9)
    sessions = {u: store.session(store.create_user(u, role="reader")) for u in ("ana", "ben", "cy", "dee")}
    plan = sorted((q for u in sessions for q in sim.benign(u, days=(0, 8))), key=lambda q: q.time)
    for q in plan:
        now[0] = q.time
        sessions[q.principal].collection("scans").search(code=np.frombuffer(q.code, np.uint8), k=q.k)
    store.monitor.fit(detector=QueryAnomalyDetector(stride=8))
    return sim, codes


def test_enumeration_through_refused_calls_is_flagged(tmp_path: Path) -> None:
    now = [EPOCH]
    store = MStore(tmp_path, clock=lambda: now[0])
    sim, _ = _benign_then_fit(store, now)
    before = len(store.monitor.log)
    eve = store.session(store.create_user("eve", role="auditor"))
    plan = sim.attack("enumerator", "eve", start_day=9, n_queries=60)
    for q in plan:
        now[0] = q.time
        with pytest.raises(PermissionDeniedError):
            eve.collection("scans").search(code=np.frombuffer(q.code, np.uint8), k=q.k)
    logged = list(store.monitor.log)[before:]
    assert len(logged) == len(plan) and all(e.denied and e.reason == "permission" for e in logged)
    assert [e.code for e in logged] == [
        _codes(store, "code", np.frombuffer(q.code, np.uint8))[1] for q in plan
    ]
    (entry,) = [e for e in store.monitor.report() if e["principal"] == "eve"]
    assert any("denied" in r for r in entry["reasons"])
    store.close()


def test_guard_refusals_are_logged_and_a_blocked_principal_raises_no_more_alerts(tmp_path: Path) -> None:
    now = [EPOCH]
    store = MStore(tmp_path, clock=lambda: now[0])
    sim, _ = _benign_then_fit(store, now)
    before = len(store.monitor.log)
    mallory = store.session(store.create_user("mallory", role="reader"))
    outcomes = []
    plan = sim.attack("scraper", "mallory", start_day=9, n_queries=200)
    for q in plan:
        now[0] = q.time
        try:
            mallory.collection("scans").search(code=np.frombuffer(q.code, np.uint8), k=q.k)
            outcomes.append(None)
        except BlockedError:
            outcomes.append("blocked")
        except PermissionDeniedError:
            outcomes.append("throttled")
    logged = list(store.monitor.log)[before:]
    assert len(logged) == len(plan)  # served and refused alike
    assert [e.reason for e in logged] == outcomes
    assert outcomes.count("blocked") > 0
    alerts = [r for r in store.audit.records() if r["action"] == "monitor.alert"]
    assert 0 < len(alerts) <= 2  # the strikes that led to the block, then silence
    store.close()


def test_query_log_writes_lines_in_groups_and_never_loses_them_on_read_or_close(tmp_path: Path) -> None:
    from securecmr.errors import MonitorError
    from securecmr.monitor import QueryLog

    path = tmp_path / "q.log"
    log = QueryLog(path, flush_every=3, flush_seconds=3600.0)
    ev = QueryEvent("p", EPOCH, "c", 5, b"\x01" * 8)
    log.append(ev)
    log.append(ev)
    assert not path.exists() or path.read_bytes() == b""  # pending, not yet written
    log.append(ev)
    assert path.read_bytes().count(b"\n") == 3  # the third append wrote the group
    log.append(ev)
    assert len(log) == 4  # reading writes pending lines first
    log.append(ev)
    log.close()
    assert path.read_bytes().count(b"\n") == 5
    with pytest.raises(MonitorError):
        QueryLog(path, flush_every=0)


def test_pending_query_log_lines_are_written_when_the_log_is_dropped(tmp_path: Path) -> None:
    import gc

    from securecmr.monitor import QueryLog

    path = tmp_path / "q.log"
    log = QueryLog(path, flush_every=100, flush_seconds=3600.0)
    log.append(QueryEvent("p", EPOCH, "c", 5, b"\x02" * 8))
    log.append(QueryEvent("p", EPOCH + 1, "c", 5, b"\x02" * 8))
    del log
    gc.collect()
    assert len(QueryLog(path)) == 2

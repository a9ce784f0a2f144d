"""store.monitor through the access layer: every session search is logged (sealed) and guarded.

Runs on the real store (brute-force index) with its query monitor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _monitor_helpers import MStore

from securecmr import Item
from securecmr.errors import BlockedError, DecryptionError, PermissionDeniedError
from securecmr.monitor import (
    QueryAnomalyDetector,
    TrafficSimulator,
    open_store_monitor,
    synthetic_collection,
)
from securecmr.monitor._simulator import EPOCH


def test_session_searches_are_logged_guarded_and_audited(tmp_path: Path) -> None:
    now = [EPOCH]
    store = MStore(tmp_path, clock=lambda: now[0])
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
    assert len(store.monitor.log) == len(plan)
    raw = (tmp_path / "store" / "monitor" / "queries.log").read_bytes()
    assert b"ana" not in raw and b"patient-" not in raw  # sealed at rest, ids keyed

    store.monitor.fit(detector=QueryAnomalyDetector(stride=8))  # windows more often: short history
    mallory = store.session(store.create_user("mallory", role="reader"))
    blocked = served = 0
    for q in sim.attack("scraper", "mallory", start_day=9, n_queries=100):
        now[0] = q.time
        try:
            mallory.collection("scans").search(code=np.frombuffer(q.code, np.uint8), k=q.k)
            served += 1
        except BlockedError:
            blocked += 1
        except PermissionDeniedError:
            pass  # throttled
    assert blocked > 0 and served < 100
    entries = store.monitor.report()
    assert entries[0]["principal"] == "mallory" and entries[0]["blocked"]
    alerts = [r for r in store.audit.records() if r["action"] == "monitor.alert"]
    assert alerts and alerts[0]["principal"] == "mallory"
    # benign users keep working
    q = plan[-1]
    assert sessions["ana"].collection("scans").search(code=np.frombuffer(q.code, np.uint8), k=5)
    store.monitor.unblock("mallory")
    now[0] += 3600.0
    assert mallory.collection("scans").search(code=codes[0], k=3)
    # another secret cannot read the sealed log
    other = open_store_monitor(tmp_path / "monitor2", b"t" * 32, store_id="store-x")
    other.log._path = store.monitor.log.path
    with pytest.raises(DecryptionError):
        list(other.log)
    store.close()


def test_real_store_monitor_end_to_end(tmp_path: Path) -> None:
    """The same flow on the real ``securecmr.Store`` (skipped where the facade is not present)."""
    import securecmr

    Store = getattr(securecmr, "Store", None)
    Item = getattr(securecmr, "Item", None)
    if Store is None or Item is None:
        store_mod = pytest.importorskip("securecmr.store")
        Store = getattr(store_mod, "Store", None)
        Item = getattr(store_mod, "Item", None) or getattr(
            pytest.importorskip("securecmr.store._collection"), "Item", None
        )
    if Store is None or Item is None or not hasattr(Store, "monitor"):
        pytest.skip("the store facade with store.monitor is not available")
    now = [EPOCH]
    store = Store.create(tmp_path / "s", passphrase="correct horse battery", clock=lambda: now[0])
    try:
        codes, topics = synthetic_collection(150, n_topics=5, seed=9)
        admin = store.session(store.create_user("root", role="admin"))
        coll = admin.create_collection("scans", bits=64)
        coll.add([Item(f"p{i}", codes={"image": codes[i]}) for i in range(len(codes))])
        sim = TrafficSimulator(codes, topics, seed=9)
        users = {u: store.session(store.create_user(u, role="reader")) for u in ("ana", "ben", "cy", "dee")}
        plan = sorted((q for u in users for q in sim.benign(u, days=(0, 8))), key=lambda q: q.time)
        for q in plan:
            now[0] = q.time
            users[q.principal].collection("scans").search(code=np.frombuffer(q.code, np.uint8), k=q.k)
        assert len(store.monitor.log) == len(plan)
        assert b"ana" not in (tmp_path / "s" / "monitor" / "queries.log").read_bytes()
        store.monitor.fit(detector=QueryAnomalyDetector(stride=8))
        mallory = store.session(store.create_user("mallory", role="reader"))
        refused = 0
        for q in sim.attack("scraper", "mallory", start_day=9, n_queries=100):
            now[0] = q.time
            try:
                mallory.collection("scans").search(code=np.frombuffer(q.code, np.uint8), k=q.k)
            except PermissionDeniedError:
                refused += 1
        assert refused > 0
        report = store.monitor.report()
        assert report[0]["principal"] == "mallory" and report[0]["blocked"]
    finally:
        store.close()

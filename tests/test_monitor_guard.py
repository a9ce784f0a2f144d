"""QueryGuard actions, the query log, and StoreMonitor end to end on a directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _monitor_helpers import Clock, make_world

from securecmr.errors import BlockedError, IntegrityError, MonitorError, ThrottledError
from securecmr.monitor import (
    GuardPolicy,
    HammingIndex,
    QueryAnomalyDetector,
    QueryEvent,
    QueryGuard,
    QueryLog,
    StoreMonitor,
    TrafficSimulator,
)
from securecmr.monitor._simulator import EPOCH


@pytest.fixture(scope="module")
def world() -> tuple[TrafficSimulator, HammingIndex, QueryAnomalyDetector]:
    return make_world(2)


def _drive(guard: QueryGuard, clock: Clock, index: HammingIndex, plan: list) -> tuple[int, int, int]:
    """Run a plan through check/search/observe; count throttled, blocked and served searches."""
    throttled = blocked = served = 0
    for q in plan:
        clock.t = q.time
        try:
            k = guard.check(q.principal, q.k)
        except ThrottledError:
            throttled += 1
            continue
        except BlockedError:
            blocked += 1
            continue
        ids, scores = index.search(q.code, k)
        served += 1
        guard.observe(
            QueryEvent(
                q.principal, q.time, "c", k, q.code, tuple(ids), scores[0], scores[1], collection_size=400
            )
        )
    return throttled, blocked, served


def test_scraper_is_throttled_then_blocked_and_admin_unblocks(world: tuple) -> None:
    sim, index, det = world
    clock = Clock(EPOCH)
    alerts: list = []
    guard = QueryGuard(
        det, GuardPolicy(action="block", strikes_to_block=2), clock=clock, on_alert=alerts.append
    )
    plan = sim.attack("scraper", "mallory", start_day=13, n_queries=200)
    _throttled, blocked, served = _drive(guard, clock, index, plan)
    assert guard.is_blocked("mallory")
    assert blocked > 0 and served < 200
    assert alerts and alerts[0].principal == "mallory" and alerts[0].queries <= 200
    assert alerts[-1].action == "block" and alerts[0].reasons
    assert "mallory" in guard.state_dict()
    guard.unblock("mallory")
    assert guard.check("mallory", 10) == 10


def test_throttle_caps_k_and_rate(world: tuple) -> None:
    sim, index, det = world
    clock = Clock(EPOCH)
    guard = QueryGuard(det, GuardPolicy(action="throttle", throttle_k=3, throttle_interval=10.0), clock=clock)
    plan = sim.attack("enumerator", "eve", start_day=13, n_queries=80)
    throttled, blocked, _served = _drive(guard, clock, index, plan)
    assert throttled > 0 and blocked == 0
    clock.t = plan[-1].time + 60.0
    assert guard.check("eve", 50) == 3
    with pytest.raises(ThrottledError):
        guard.check("eve", 50)


def test_benign_user_keeps_working(world: tuple) -> None:
    sim, index, det = world
    clock = Clock(EPOCH)
    guard = QueryGuard(det, GuardPolicy(action="alert"), clock=clock)
    throttled, blocked, served = _drive(guard, clock, index, sim.benign("u1", days=(12, 16)))
    assert throttled == blocked == 0 and served > 0
    assert not guard.is_blocked("u1")


def test_alert_only_policy_never_blocks(world: tuple) -> None:
    sim, index, det = world
    clock = Clock(EPOCH)
    guard = QueryGuard(det, GuardPolicy(action="alert"), clock=clock)
    _t, blocked, served = _drive(guard, clock, index, sim.attack("scraper", "m", start_day=13, n_queries=100))
    assert blocked == 0 and served == 100 and guard.alerts("m")


def test_query_log_sealed_and_corrupt(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(AESGCM.generate_key(bit_length=128))

    def seal(b: bytes) -> bytes:
        nonce = np.random.default_rng().bytes(12)
        return nonce + aead.encrypt(nonce, b, None)

    def unseal(b: bytes) -> bytes:
        return aead.decrypt(b[:12], b[12:], None)

    log = QueryLog(tmp_path / "q.log", seal=seal, unseal=unseal)
    ev = QueryEvent("dr-house", EPOCH, "ct", 10, b"\x01" * 8, ("xyz",), 0.9, 0.8, collection_size=5, bits=64)
    log.append(ev)
    log.append(ev)
    raw = (tmp_path / "q.log").read_bytes()
    assert b"dr-house" not in raw and b"xyz" not in raw
    assert list(log) == [ev, ev]
    assert "0101" not in repr(ev) and "xyz" not in repr(ev)
    with pytest.raises(MonitorError, match="sealed"):
        list(QueryLog(tmp_path / "q.log"))
    plain = QueryLog(tmp_path / "p.log")
    plain.append(ev)
    with open(tmp_path / "p.log", "ab") as fh:
        fh.write(b"{not json\n")
    with pytest.raises(IntegrityError, match="line 2"):
        list(plain)


def test_store_monitor_fit_report_persist(world: tuple, tmp_path: Path) -> None:
    sim, index, _det = world
    clock = Clock(EPOCH)
    mon = StoreMonitor(tmp_path / "monitor", store_id="store-1", key=b"k" * 32, clock=clock)
    with pytest.raises(MonitorError, match="empty"):
        mon.fit()
    with pytest.raises(MonitorError, match="not fitted"):
        mon.report()

    def search(q: object) -> None:
        clock.t = q.time  # type: ignore[attr-defined]
        k = mon.before_search(q.principal, q.k)  # type: ignore[attr-defined]
        hits = index.search(q.code, k)  # type: ignore[attr-defined]
        mon.after_search(
            q.principal,  # type: ignore[attr-defined]
            collection="c",
            k=k,
            code=q.code,  # type: ignore[attr-defined]
            result_ids=hits[0],
            scores=hits[1],
            collection_size=400,
            bits=64,
        )

    for u in ("u0", "u1"):
        for q in sim.benign(u, days=(0, 3)):
            search(q)
    with pytest.raises(MonitorError, match="too little"):
        mon.fit()
    for u in ("u0", "u1", "u2", "u3", "u4", "u5"):
        for q in sim.benign(u, days=(3, 14)):
            search(q)
    mon.fit()
    assert mon.detector_path.exists()
    blocked = 0
    for q in sim.attack("scraper", "mallory", start_day=15, n_queries=150):
        try:
            search(q)
        except BlockedError:
            blocked += 1
        except ThrottledError:
            pass
    assert blocked > 0
    report = mon.report()
    assert report and report[0]["principal"] == "mallory" and report[0]["blocked"]
    assert report[0]["score"] > 1.0 and report[0]["reasons"]
    # keyed ids only: no raw result id in the log
    assert '"r":["' in (tmp_path / "monitor" / "queries.log").read_text()
    again = StoreMonitor(tmp_path / "monitor", store_id="store-1", key=b"k" * 32, clock=clock)
    with pytest.raises(BlockedError):
        again.before_search("mallory", 10)
    again.unblock("mallory")
    assert again.before_search("mallory", 10) == 10
    with pytest.raises(MonitorError, match="another store"):
        StoreMonitor(tmp_path / "monitor", store_id="store-2", key=b"k" * 32)

"""The guard in background mode: O(1) observe, scoring in a worker, decisions at the next check."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from _monitor_helpers import Clock, make_world

from securecmr.errors import BlockedError, ConfigurationError, ThrottledError
from securecmr.monitor import (
    GuardPolicy,
    HammingIndex,
    QueryAnomalyDetector,
    QueryEvent,
    QueryGuard,
    TrafficSimulator,
    synthetic_collection,
)
from securecmr.monitor._evaluate import evaluate
from securecmr.monitor._simulator import EPOCH


@pytest.fixture(scope="module")
def world() -> tuple[TrafficSimulator, HammingIndex, QueryAnomalyDetector]:
    return make_world(3)


def _event(q, k: int, ids: list[str], scores: list[float]) -> QueryEvent:
    return QueryEvent(
        q.principal, q.time, "c", k, q.code, tuple(ids), scores[0], scores[1], collection_size=400
    )


def _outcomes(guard: QueryGuard, clock: Clock, index: HammingIndex, plan: list) -> list[str]:
    """Per planned search: 'served', 'throttled' or 'blocked' (check, search, observe)."""
    out = []
    for q in plan:
        clock.t = q.time
        try:
            k = guard.check(q.principal, q.k)
        except ThrottledError:
            out.append("throttled")
            continue
        except BlockedError:
            out.append("blocked")
            continue
        ids, scores = index.search(q.code, k)
        out.append("served")
        guard.observe(_event(q, k, ids, scores))
    return out


def _interleaved(sim: TrafficSimulator) -> list:
    """Two attackers and two clinicians, their searches interleaved in time."""
    plans = [
        sim.attack("scraper", "mallory", start_day=13, n_queries=150),
        sim.attack("enumerator", "eve", start_day=13, n_queries=150),
        sim.benign("u1", days=(12, 14)),
        sim.benign("new1", days=(12, 14)),
    ]
    return sorted((q for p in plans for q in p), key=lambda q: q.time)


@pytest.mark.parametrize("queue_size", [1024, 1])
def test_background_guard_refuses_exactly_the_searches_the_inline_guard_refuses(
    world: tuple, queue_size: int
) -> None:
    sim, index, det = world
    plan = _interleaved(sim)
    policy = GuardPolicy(action="block", strikes_to_block=2)
    inline_clock, bg_clock = Clock(EPOCH), Clock(EPOCH)
    inline = QueryGuard(det, policy, clock=inline_clock)
    bg = QueryGuard(det, policy, clock=bg_clock, background=True, queue_size=queue_size)
    expected = _outcomes(inline, inline_clock, index, plan)
    got = _outcomes(bg, bg_clock, index, plan)
    bg.close()
    assert got == expected
    assert "blocked" in expected and "served" in expected
    assert [a.to_dict() for a in bg.alerts()] == [a.to_dict() for a in inline.alerts()]
    assert bg.principals() == inline.principals()


def test_a_block_decided_by_rescoring_applies_to_the_very_next_search(world: tuple) -> None:
    sim, index, det = world
    clock = Clock(EPOCH)
    guard = QueryGuard(det, GuardPolicy(action="block", strikes_to_block=1), clock=clock, background=True)
    plan = sim.attack("scraper", "mallory", start_day=13, n_queries=200)
    served = 0
    for q in plan:
        clock.t = q.time
        try:
            k = guard.check(q.principal, q.k)
        except BlockedError:
            break
        ids, scores = index.search(q.code, k)
        guard.observe(_event(q, k, ids, scores))  # returns at once; the window is scored in the worker
        served += 1
    else:
        pytest.fail("the scraper was never blocked")
    alerts = guard.alerts("mallory")
    guard.close()
    assert alerts[0].action == "block"
    assert served == alerts[0].queries  # the search right after the scored window was refused


def test_observe_only_queues_until_a_window_completes(world: tuple) -> None:
    sim, index, det = world
    guard = QueryGuard(det, GuardPolicy(action="alert"), background=True)
    plan = sim.attack("scraper", "m", start_day=13, n_queries=det.min_events - 1)
    for q in plan:
        ids, scores = index.search(q.code, q.k)
        assert guard.observe(_event(q, q.k, ids, scores)) is None
    st = guard._states["m"]
    assert st.tracker.count == 0 and len(st.pending) == len(plan)  # nothing tracked on the search path
    assert guard._worker is None  # no window yet: the worker was not even started
    assert guard.principals()["m"]["queries"] == len(plan)  # reading drains
    guard.close()


def test_alerts_reach_on_alert_on_a_calling_thread_and_close_stops_the_worker(world: tuple) -> None:
    sim, index, det = world
    threads: list[str] = []
    guard = QueryGuard(
        det,
        GuardPolicy(action="alert"),
        background=True,
        on_alert=lambda a: threads.append(threading.current_thread().name),
    )
    for q in sim.attack("enumerator", "m", start_day=13, n_queries=120):
        ids, scores = index.search(q.code, q.k)
        guard.observe(_event(q, q.k, ids, scores))
    worker = guard._worker
    assert worker is not None
    guard.close()
    assert not worker.is_alive()
    assert threads and set(threads) == {threading.current_thread().name}
    assert len(threads) == len(guard.alerts("m"))


def test_hard_rate_throttle_is_immediate_and_refills(world: tuple) -> None:
    _sim, _index, det = world
    clock = Clock(EPOCH)
    guard = QueryGuard(
        det, GuardPolicy(action="throttle", max_rate=5, rate_seconds=60.0), clock=clock, background=True
    )
    for _ in range(5):
        assert guard.check("fresh", 10) == 10  # a principal never seen before: no window, no score
    with pytest.raises(ThrottledError, match="hard rate"):
        guard.check("fresh", 10)  # the 6th search within the same second, refused at once
    assert guard.check("other", 10) == 10  # per principal
    clock.t += 12.0  # one search's worth of tokens back (5 per 60 s)
    assert guard.check("fresh", 10) == 10
    with pytest.raises(ThrottledError):
        guard.check("fresh", 10)
    alert_only = QueryGuard(det, GuardPolicy(action="alert", max_rate=1), clock=clock)
    assert [alert_only.check("x", 3) for _ in range(3)] == [3, 3, 3]  # alert mode never refuses
    guard.close()


def test_bad_rate_and_queue_settings_are_refused(world: tuple) -> None:
    _sim, _index, det = world
    with pytest.raises(ConfigurationError):
        GuardPolicy(max_rate=0)
    with pytest.raises(ConfigurationError):
        GuardPolicy(max_rate=5, rate_seconds=0.0)
    with pytest.raises(ConfigurationError):
        QueryGuard(det, background=True, queue_size=0)


def test_evaluation_through_background_guards_matches_inline() -> None:
    codes, topics = synthetic_collection(500, n_topics=8, seed=7)
    kw = {"n_benign": 6, "n_new_benign": 2, "attacks_per_type": 2, "attack_queries": 80, "seed": 7}
    inline = evaluate(codes, topics, **kw, detector=QueryAnomalyDetector(n_estimators=30, random_state=7))
    bg = evaluate(
        codes, topics, **kw, detector=QueryAnomalyDetector(n_estimators=30, random_state=7), background=True
    )
    for key in ("attacks", "benign_false_positive_rate", "benign_windows", "benign_flagged_windows"):
        assert bg[key] == inline[key]
    assert any(a["detection_rate"] > 0 for a in inline["attacks"].values())
    assert np.isfinite(inline["benign_false_positive_rate"])


def test_background_query_log_writes_in_groups_off_the_searching_thread(tmp_path) -> None:
    import gc

    from securecmr.monitor import QueryLog

    path = tmp_path / "q.log"
    sealed = QueryLog(
        path,
        seal=lambda b: b[::-1],
        unseal=lambda b: b[::-1],
        flush_every=3,
        flush_seconds=3600.0,
        background=True,
    )
    evs = [QueryEvent("p", EPOCH + i, "c", 5, bytes([i]) * 8, ("a", "b"), 0.9, 0.5) for i in range(8)]
    for ev in evs[:2]:
        sealed.append(ev)
    assert sealed._writer is None  # fewer than a group: kept, nothing encoded or written yet
    sealed.append(evs[2])
    writer = sealed._writer
    assert writer is not None and writer.thread is not threading.current_thread()
    sealed.append(evs[3])
    assert [e.to_dict() for e in sealed.events()] == [e.to_dict() for e in evs[:4]]  # reading waits
    assert all(line.startswith(b"s") for line in path.read_bytes().splitlines())  # sealed lines
    sealed.extend(evs[4:7])
    sealed.close()
    assert not writer.thread.is_alive()
    assert len(path.read_bytes().splitlines()) == 7
    dropped = QueryLog(
        path, unseal=lambda b: b[::-1], seal=lambda b: b[::-1], flush_every=100, background=True
    )
    dropped.append(evs[7])
    dropped.flush()  # starts the writer, writes the one event
    dropped.extend(evs[:2])  # kept: handed over only when the log is dropped
    del dropped
    gc.collect()
    reread = QueryLog(path, seal=lambda b: b[::-1], unseal=lambda b: b[::-1])
    assert [e.time for e in reread] == [e.time for e in evs[:7]] + [evs[7].time] + [evs[0].time, evs[1].time]


def test_background_query_log_reports_a_write_error(tmp_path) -> None:
    from securecmr.errors import MonitorError
    from securecmr.monitor import QueryLog

    def bad_seal(_b: bytes) -> bytes:
        raise OSError("disk full")

    log = QueryLog(tmp_path / "q.log", seal=bad_seal, unseal=lambda b: b, flush_every=1, background=True)
    log.append(QueryEvent("p", EPOCH, "c", 5, b"\x01" * 8))
    with pytest.raises(MonitorError, match="could not be written"):
        log.flush()
    log.close()

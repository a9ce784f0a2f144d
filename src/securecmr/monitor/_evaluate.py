"""End-to-end evaluation of the detector on simulated traffic (used by bench/anomaly.py and tests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._detector import QueryAnomalyDetector
from ._events import QueryEvent
from ._guard import GuardPolicy, QueryGuard
from ._simulator import ATTACKS, HammingIndex, PlannedQuery, TrafficSimulator, run_plan

__all__ = ["evaluate"]

Search = Callable[[PlannedQuery], tuple[list[str], list[float]]]


def evaluate(
    codes: np.ndarray,
    topics: Sequence[int] | np.ndarray,
    *,
    n_benign: int = 30,
    n_new_benign: int = 10,
    train_days: int = 21,
    test_days: int = 7,
    attacks_per_type: int = 10,
    attack_queries: int = 300,
    seed: int = 0,
    search: Search | None = None,
    detector: QueryAnomalyDetector | None = None,
    background: bool = False,
) -> dict[str, Any]:
    """Fit on ``train_days`` of benign traffic, then replay held-out benign and attack traffic.

    Returns per-attack detection rates and median queries to detection, the share of benign
    principal-windows flagged (held-out days of known users plus brand-new users) and counts.
    ``background=True`` replays through background guards as the search path does (``check``
    before each search, which is where a decision from the worker lands): an attack counts as
    detected at the search whose window raised the first alert, as inline.
    """
    sim = TrafficSimulator(codes, topics, seed=seed)
    index = HammingIndex(codes)
    run: Search = search if search is not None else (lambda q: index.search(q.code, q.k))
    size, bits = len(index), index.bits

    def replay(plan: list[PlannedQuery]) -> list[QueryEvent]:
        return run_plan(plan, run, collection_size=size, bits=bits)

    users = [f"user{i:03d}" for i in range(n_benign)]
    train = {u: replay(sim.benign(u, days=(0, train_days))) for u in users}
    det = detector if detector is not None else QueryAnomalyDetector(random_state=seed)
    det.fit_events(train, store_id="simulation")

    # held-out benign traffic
    windows = flagged = 0
    benign_reasons: dict[str, int] = {}
    for u in users + [f"new{i:03d}" for i in range(n_new_benign)]:
        guard = QueryGuard(det, GuardPolicy(action="alert"), background=background)
        for ev in train.get(u, []):
            guard.warm(ev)
        for ev in replay(sim.benign(u, days=(train_days, train_days + test_days))):
            guard.observe(ev)
        for past in guard.alerts(u):
            for r in past.reasons:
                key = r.split(" (")[0]
                benign_reasons[key] = benign_reasons.get(key, 0) + 1
        summary = guard.principals().get(u)
        guard.close()
        if summary:
            windows += summary["windows"]
            flagged += summary["flagged_windows"]

    attacks: dict[str, Any] = {}
    for kind in ATTACKS:
        to_detect: list[int] = []
        reasons: dict[str, int] = {}
        for i in range(attacks_per_type):
            guard = QueryGuard(det, GuardPolicy(action="alert"), background=background)
            if kind == "credential_misuse":
                victim = users[i % len(users)]
                for ev in train[victim]:
                    guard.warm(ev)
                name = victim
                vt = sorted({int(t) for t in _victim_topics(sim, victim)})
                plan = sim.attack(
                    kind, name, start_day=train_days + 1, n_queries=attack_queries, victim_topics=vt
                )
            else:
                name = f"{kind}{i:02d}"
                plan = sim.attack(kind, name, start_day=train_days + 1 + i % 5, n_queries=attack_queries)
            warm = guard.principals().get(name, {}).get("queries", 0)
            events: list[QueryEvent | None] = [*replay(plan), None]
            for nxt in events:
                if background:  # the first alert, as seen by the next search's check
                    guard.check(name, 1)
                    st = guard._states.get(name)
                    alert = st.alerts[0] if st is not None and st.alerts else None
                    if alert is None and nxt is not None:
                        guard.observe(nxt)
                elif nxt is None:
                    break
                else:
                    alert = guard.observe(nxt)
                if alert is not None:
                    to_detect.append(alert.queries - warm)
                    for r in alert.reasons:
                        key = r.split(" (")[0]
                        reasons[key] = reasons.get(key, 0) + 1
                    break
            guard.close()
        attacks[kind] = {
            "detection_rate": len(to_detect) / attacks_per_type,
            "median_queries_to_detect": float(np.median(to_detect)) if to_detect else None,
            "max_queries_to_detect": int(max(to_detect)) if to_detect else None,
            "instances": attacks_per_type,
            "queries_per_instance": attack_queries,
            "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        }
    return {
        "attacks": attacks,
        "benign_false_positive_rate": flagged / windows if windows else 0.0,
        "benign_windows": windows,
        "benign_flagged_windows": flagged,
        "benign_flag_reasons": dict(sorted(benign_reasons.items(), key=lambda kv: -kv[1])),
        "train_windows": det.n_windows_,
        "detector": det,
    }


def _victim_topics(sim: TrafficSimulator, victim: str) -> list[int]:
    urng = sim._rng("user", victim)
    return urng.choice(sim.topic_ids, size=int(urng.integers(1, 4)), replace=False).tolist()


def guard_overhead(
    det: QueryAnomalyDetector,
    plan: Sequence[PlannedQuery],
    search: Search,
    *,
    collection_size: int,
    bits: int,
    repeats: int = 3,
    event_code: Callable[[PlannedQuery], bytes] | None = None,
    background: bool = True,
) -> dict[str, Any]:
    """Per-search seconds without and with the guard (check + event + observe), and the overhead.

    Each planned search runs twice in a row, once bare and once guarded, so both see the same
    machine load; the guard sees every search once, in time order. Per repeat the mean over the
    plan is taken; the medians over ``repeats`` are returned. ``event_code`` gives the query code
    to log when the plan's ``code`` is not one (text queries). Times are CPU seconds of the
    calling thread: the latency a search pays. With ``background=True`` the worker's scoring is
    not in it, so the total CPU of all threads is measured too (``total_*``: a bare pass, then a
    guarded pass that ends once the worker has drained) and its relative overhead.
    """
    plan = sorted(plan, key=lambda q: q.time)
    clock = time.thread_time
    a, b, ta, tb = [], [], [], []
    for _ in range(repeats):
        guard = QueryGuard(det, GuardPolicy(action="alert"), background=background)
        bare = guarded = 0.0
        for i, q in enumerate(plan):
            if i % 2:  # alternate which of the pair runs first
                guarded += _guarded_search(guard, q, search, collection_size, bits, event_code)
            t0 = clock()
            search(q)
            bare += clock() - t0
            if not i % 2:
                guarded += _guarded_search(guard, q, search, collection_size, bits, event_code)
        guard.close()
        a.append(bare / len(plan))
        b.append(guarded / len(plan))
        # total CPU of the process (all threads): a bare pass, then a guarded pass plus drain
        t0 = time.process_time()
        for q in plan:
            search(q)
        ta.append((time.process_time() - t0) / len(plan))
        guard = QueryGuard(det, GuardPolicy(action="alert"), background=background)
        t0 = time.process_time()
        for q in plan:
            _guarded_search(guard, q, search, collection_size, bits, event_code)
        guard.close()
        tb.append((time.process_time() - t0) / len(plan))
    base, with_guard = float(np.median(a)), float(np.median(b))
    tbase, twith = float(np.median(ta)), float(np.median(tb))
    return {
        "search_s": base,
        "search_with_guard_s": with_guard,
        "overhead": (with_guard - base) / base,
        "total_cpu_search_s": tbase,
        "total_cpu_with_guard_s": twith,
        "total_cpu_overhead": (twith - tbase) / tbase,
        "background": background,
        "searches": len(plan),
        "repeats": repeats,
    }


def _guarded_search(
    guard: QueryGuard,
    q: PlannedQuery,
    search: Search,
    collection_size: int,
    bits: int,
    event_code: Callable[[PlannedQuery], bytes] | None,
) -> float:
    """Seconds for one search with the guard around it (check, search, event, observe)."""
    t0 = time.thread_time()
    k = guard.check(q.principal, q.k)
    ids, scores = search(q)
    guard.observe(
        QueryEvent(
            principal=q.principal,
            time=q.time,
            collection="sim",
            k=k,
            code=q.code if event_code is None else event_code(q),
            result_ids=tuple(ids),
            top1=scores[0] if scores else None,
            top2=scores[1] if len(scores) > 1 else None,
            collection_size=collection_size,
            bits=bits,
        )
    )
    return time.thread_time() - t0

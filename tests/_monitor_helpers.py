"""Shared pieces of the monitor tests: a small fitted world, a settable clock, and the access
the real store with its query monitor."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from securecmr import Store
from securecmr.monitor import (
    HammingIndex,
    QueryAnomalyDetector,
    TrafficSimulator,
    run_plan,
    synthetic_collection,
)


def make_world(seed: int) -> tuple[TrafficSimulator, HammingIndex, QueryAnomalyDetector]:
    """400 synthetic codes in 8 topics, a simulator over them and a detector fitted on 8 benign users."""
    codes, topics = synthetic_collection(400, n_topics=8, seed=seed)
    sim = TrafficSimulator(codes, topics, seed=seed)
    index = HammingIndex(codes)
    train = {
        u: run_plan(
            sim.benign(u, days=(0, 12)), lambda q: index.search(q.code, q.k), collection_size=400, bits=64
        )
        for u in [f"u{i}" for i in range(8)]
    }
    det = QueryAnomalyDetector(n_estimators=50).fit_events(train, store_id="s1")
    return sim, index, det


class Clock:
    """A clock the test sets by hand."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def MStore(path: str | os.PathLike[str], clock: Callable[[], float]) -> Store:
    """A real store (brute-force index, default protection) in ``<path>/store`` with its query
    monitor, driven by ``clock``."""
    return Store.create(Path(path) / "store", "monitor-test-passphrase", clock=clock, index_backend="brute")

"""Shared pieces of the monitor tests: a small fitted world, a settable clock, and the access
engineer's in-memory store double with the query monitor wired in as the facade wires it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from _access_double import DStore

from securecmr.monitor import (
    HammingIndex,
    MonitorMixin,
    QueryAnomalyDetector,
    TrafficSimulator,
    open_store_monitor,
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


class MStore(DStore, MonitorMixin):
    """The store double with a query monitor in ``<path>/monitor``."""

    def __init__(self, path: str | os.PathLike[str], clock: Callable[[], float]) -> None:
        super().__init__(path, clock=clock)
        self._monitor = open_store_monitor(
            Path(path) / "monitor", b"s" * 32, store_id="store-x", clock=clock, audit=self._access.audit
        )

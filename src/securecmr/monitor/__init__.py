"""Query-log anomaly detection: catch scraping, enumeration and probing, and act on it.

>>> det = QueryAnomalyDetector().fit_events(benign_events, store_id=store.id)   # doctest: +SKIP
>>> guard = QueryGuard(det, GuardPolicy(action="block"), clock=store.clock)     # doctest: +SKIP
>>> guard.check(principal, k); ...search...; guard.observe(event)              # doctest: +SKIP

The log keeps no raw query: only the salted query code and keyed result ids.
"""

from __future__ import annotations

from ._detector import QueryAnomalyDetector
from ._events import QueryEvent, QueryLog, keyed_id
from ._features import FEATURE_NAMES, PrincipalTracker, hour_profile, principal_features
from ._guard import Alert, GuardPolicy, QueryGuard
from ._mixin import MonitorMixin, open_store_monitor
from ._rules import MonitorRules, RuleGuard
from ._simulator import (
    ATTACKS,
    HammingIndex,
    PlannedQuery,
    TrafficSimulator,
    hash_vectors,
    run_plan,
    synthetic_collection,
)
from ._store import StoreMonitor

__all__ = [
    "ATTACKS",
    "FEATURE_NAMES",
    "Alert",
    "GuardPolicy",
    "HammingIndex",
    "MonitorMixin",
    "MonitorRules",
    "PlannedQuery",
    "PrincipalTracker",
    "QueryAnomalyDetector",
    "QueryEvent",
    "QueryGuard",
    "QueryLog",
    "RuleGuard",
    "StoreMonitor",
    "TrafficSimulator",
    "hash_vectors",
    "hour_profile",
    "keyed_id",
    "open_store_monitor",
    "principal_features",
    "run_plan",
    "synthetic_collection",
]

"""Explicit rules that protect a store from its first search, before the detector can be fitted.

The anomaly detector needs days of normal history (at least ``min_windows`` feature windows);
until then these four rules, with conservative defaults, guard every session search:

* **rate**: at most ``max_searches`` searches per principal per ``window_seconds``; a search over
  it is refused (ThrottledError).
* **k**: a search asking for more than ``max_k`` hits is served ``max_k`` (capped, not refused).
* **coverage**: once a principal has been shown more than ``max_coverage`` of a collection's
  items (and at least ``min_coverage_items`` distinct ones) within ``coverage_seconds``, the
  principal is throttled for ``cooldown_seconds``: that is what dumping a collection looks like.
* **refused calls**: more than ``max_refused`` refused searches per ``window_seconds`` (probing
  for collections or items one may not see) throttle the principal for ``cooldown_seconds``.

Each trip of the coverage or refused rule raises one :class:`Alert` (written to the audit log by
the store). State is rebuilt from the query log when a store is opened, so the rules hold across
processes (a CLI call, a restarted server).

The defaults are set not to trouble people at work: in the bundled traffic simulator (six
benign users over 14 days on a 400-item collection) a benign user peaks at 20 searches in ten
minutes, k = 50 and a refusal or two, far under 200 searches, k = 100 and 20 refusals. Benign
users there do see up to 86% of that small collection in a day, which is why coverage needs at
least 1,000 distinct items before it counts: on small collections rate and refusals protect.
Service accounts that search faster get their own limits with ``store.monitor.set_rules(...)``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigurationError, ThrottledError
from ._events import QueryEvent
from ._guard import Alert

__all__ = ["MonitorRules", "RuleGuard"]


@dataclass(frozen=True)
class MonitorRules:
    """The explicit rules and their limits (see the module docstring)."""

    max_searches: int = 200
    window_seconds: float = 600.0
    max_k: int = 100
    max_coverage: float = 0.5
    min_coverage_items: int = 1000
    coverage_seconds: float = 86400.0
    max_refused: int = 20
    cooldown_seconds: float = 900.0

    def __post_init__(self) -> None:
        if min(self.max_searches, self.max_k, self.min_coverage_items, self.max_refused) < 1:
            raise ConfigurationError("max_searches, max_k, min_coverage_items and max_refused must be >= 1")
        if not 0.0 < self.max_coverage <= 1.0:
            raise ConfigurationError("max_coverage must be in (0, 1]")
        if min(self.window_seconds, self.coverage_seconds) <= 0 or self.cooldown_seconds < 0:
            raise ConfigurationError("window_seconds and coverage_seconds must be > 0, cooldown_seconds >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Principal:
    searches: deque[float] = field(default_factory=deque)
    refused: deque[float] = field(default_factory=deque)
    seen: dict[str, dict[str, float]] = field(default_factory=dict)  # collection -> keyed id -> time
    sizes: dict[str, int] = field(default_factory=dict)
    throttled_until: float = 0.0
    capped: int = 0
    alerts: list[Alert] = field(default_factory=list)
    total: int = 0


class RuleGuard:
    """Applies :class:`MonitorRules` per principal: :meth:`check` before a search, :meth:`observe`
    after it (served or refused)."""

    def __init__(
        self,
        rules: MonitorRules,
        *,
        clock: Callable[[], float],
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        self.rules = rules
        self.clock = clock
        self.on_alert = on_alert
        self._states: dict[str, _Principal] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RuleGuard({len(self._states)} principals)"

    def _state(self, principal: str) -> _Principal:
        st = self._states.get(principal)
        if st is None:
            st = self._states.setdefault(principal, _Principal())
        return st

    def _prune(self, st: _Principal, now: float) -> None:
        edge = now - self.rules.window_seconds
        while st.searches and st.searches[0] <= edge:
            st.searches.popleft()
        while st.refused and st.refused[0] <= edge:
            st.refused.popleft()

    def check(self, principal: str, k: int) -> int:
        """Raise ThrottledError, or return the k the search may use."""
        now = float(self.clock())
        with self._lock:
            st = self._state(principal)
            self._prune(st, now)
            if now < st.throttled_until:
                wait = st.throttled_until - now
                raise ThrottledError(f"too many searches: this account is throttled; retry in {wait:.0f} s")
            if len(st.searches) >= self.rules.max_searches:
                raise ThrottledError(
                    f"too many searches: more than {self.rules.max_searches} in "
                    f"{self.rules.window_seconds:.0f} s; retry later"
                )
            if isinstance(k, int) and k > self.rules.max_k:
                st.capped += 1
                return self.rules.max_k
            return k

    def observe(self, event: QueryEvent) -> Alert | None:
        """Count a logged search; returns the alert a rule raised (if any)."""
        with self._lock:
            alert = self._track(event)
        if alert is not None and self.on_alert is not None:
            self.on_alert(alert)
        return alert

    def warm(self, events: Iterable[QueryEvent], now: float) -> None:
        """Rebuild state from logged events (the recent ones matter), without alerting again."""
        horizon = now - max(self.rules.window_seconds, self.rules.coverage_seconds)
        with self._lock:
            for ev in events:
                if ev.time >= horizon:
                    self._track(ev, quiet=True)

    def _track(self, ev: QueryEvent, *, quiet: bool = False) -> Alert | None:
        r = self.rules
        st = self._state(ev.principal)
        st.total += 1
        self._prune(st, ev.time)
        if ev.denied:
            if ev.reason == "throttled":
                return None  # refusals by the throttle itself do not count again
            st.refused.append(ev.time)
            if len(st.refused) > r.max_refused and ev.time >= st.throttled_until:
                return self._trip(
                    st, ev, f"refused calls: {len(st.refused)} in {r.window_seconds:.0f} s", quiet
                )
            return None
        st.searches.append(ev.time)
        if not ev.result_ids:
            return None
        seen = st.seen.setdefault(ev.collection, {})
        for rid in ev.result_ids:
            seen[rid] = ev.time
        if ev.collection_size:
            st.sizes[ev.collection] = int(ev.collection_size)
        edge = ev.time - r.coverage_seconds
        if len(seen) > 2 * r.min_coverage_items and min(seen.values()) <= edge:
            for rid in [x for x, t in seen.items() if t <= edge]:
                del seen[rid]
        size = st.sizes.get(ev.collection, 0)
        over = size and len(seen) >= r.min_coverage_items and len(seen) > r.max_coverage * size
        if over and ev.time >= st.throttled_until:
            share = len(seen) / size
            seen.clear()  # a fresh count after the cool-down
            return self._trip(st, ev, f"distinct-result coverage: {share:.0%} of the collection", quiet)
        return None

    def _trip(self, st: _Principal, ev: QueryEvent, reason: str, quiet: bool) -> Alert | None:
        st.throttled_until = ev.time + self.rules.cooldown_seconds
        alert = Alert(ev.principal, ev.time, st.total, 1.0, (reason,), "throttle")
        st.alerts.append(alert)
        return None if quiet else alert

    def principals(self) -> dict[str, dict[str, Any]]:
        """Per principal: searches and refusals in the current window, capped searches, the largest
        coverage of a collection, when a throttle ends, and the reasons of its alerts."""
        now = float(self.clock())
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for name, st in sorted(self._states.items()):
                self._prune(st, now)
                cover = max(
                    (len(ids) / st.sizes[c] for c, ids in st.seen.items() if st.sizes.get(c)), default=0.0
                )
                out[name] = {
                    "searches_in_window": len(st.searches),
                    "refused_in_window": len(st.refused),
                    "capped_k": st.capped,
                    "coverage": round(cover, 4),
                    "throttled_until": st.throttled_until if st.throttled_until > now else None,
                    "alerts": [a.to_dict() for a in st.alerts],
                    "queries": st.total,
                }
        return out

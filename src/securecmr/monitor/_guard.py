"""The query guard: alert, throttle or block principals whose recent windows look anomalous.

The guard sits in the search path. :meth:`QueryGuard.check` runs before a search (cheap
dictionary look-ups: is the principal blocked or throttled?), :meth:`QueryGuard.observe`
after it: the event goes into the principal's tracker and, once every ``stride`` searches,
the window is scored. So the detector runs per window, not per query.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import BlockedError, ConfigurationError, ThrottledError
from ._detector import QueryAnomalyDetector
from ._events import QueryEvent
from ._features import PrincipalTracker

__all__ = ["Alert", "GuardPolicy", "QueryGuard"]

Action = Literal["alert", "throttle", "block"]


@dataclass(frozen=True)
class GuardPolicy:
    """What the guard does about an anomalous window.

    ``action``: ``"alert"`` only records an alert; ``"throttle"`` also throttles the principal
    for ``throttle_seconds`` (k capped at ``throttle_k``, at most one search per
    ``throttle_interval`` seconds, else ThrottledError); ``"block"`` also blocks the principal
    after ``strikes_to_block`` anomalous windows (BlockedError until an admin unblocks).
    """

    action: Action = "block"
    throttle_seconds: float = 900.0
    throttle_k: int = 5
    throttle_interval: float = 10.0
    strikes_to_block: int = 2

    def __post_init__(self) -> None:
        if self.action not in ("alert", "throttle", "block"):
            raise ConfigurationError("guard action must be 'alert', 'throttle' or 'block'")
        if self.throttle_k < 1 or self.strikes_to_block < 1 or self.throttle_seconds < 0:
            raise ConfigurationError("throttle_k and strikes_to_block must be >= 1, throttle_seconds >= 0")


@dataclass(frozen=True)
class Alert:
    """One anomalous window: who, when, after how many searches, the score and the reasons."""

    principal: str
    time: float
    queries: int
    score: float
    reasons: tuple[str, ...]
    action: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "time": self.time,
            "queries": self.queries,
            "score": round(self.score, 4),
            "reasons": list(self.reasons),
            "action": self.action,
        }


@dataclass
class _State:
    tracker: PrincipalTracker
    strikes: int = 0
    windows: int = 0
    flagged: int = 0
    throttled_until: float = 0.0
    last_allowed: float = float("-inf")
    blocked: bool = False
    max_score: float = 0.0
    alerts: list[Alert] = field(default_factory=list)


class QueryGuard:
    """Per-principal guard in front of search; see :class:`GuardPolicy` for the actions."""

    def __init__(
        self,
        detector: QueryAnomalyDetector,
        policy: GuardPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        detector._check_fitted()
        self.detector = detector
        self.policy = policy or GuardPolicy()
        self.clock = clock
        self.on_alert = on_alert
        self._states: dict[str, _State] = {}

    def __repr__(self) -> str:
        return f"QueryGuard(action={self.policy.action!r}, principals={len(self._states)})"

    def _state(self, principal: str) -> _State:
        st = self._states.get(principal)
        if st is None:
            d = self.detector
            st = _State(
                PrincipalTracker(
                    window=d.window,
                    stride=d.stride,
                    min_events=d.min_events,
                    profile=d.profile_for(principal),
                )
            )
            self._states[principal] = st
        return st

    def check(self, principal: str, k: int) -> int:
        """Before a search: raise BlockedError/ThrottledError, or return the k to use."""
        st = self._states.get(principal)
        if st is None:
            return k
        if st.blocked:
            raise BlockedError("this account is blocked by the query guard; an administrator must unblock it")
        now = self.clock()
        if now < st.throttled_until:
            if now - st.last_allowed < self.policy.throttle_interval:
                wait = self.policy.throttle_interval
                raise ThrottledError(f"too many searches: this account is throttled; retry in {wait:.0f} s")
            st.last_allowed = now
            return min(k, self.policy.throttle_k)
        return k

    def observe(self, event: QueryEvent) -> Alert | None:
        """After a search (served or refused): track the event; score the window when one is due.

        A blocked principal's further (refused) searches are tracked but raise no new alerts.
        """
        st = self._state(event.principal)
        row = st.tracker.push(event)
        if row is None or st.blocked:
            return None
        score = float(self.detector.score(row)[0])
        st.windows += 1
        st.max_score = max(st.max_score, score)
        if score <= 1.0:
            return None
        st.strikes += 1
        st.flagged += 1
        action = "alert"
        if self.policy.action in ("throttle", "block"):
            action = "throttle"
            st.throttled_until = event.time + self.policy.throttle_seconds
        if self.policy.action == "block" and st.strikes >= self.policy.strikes_to_block:
            action = "block"
            st.blocked = True
        alert = Alert(
            principal=event.principal,
            time=event.time,
            queries=st.tracker.count,
            score=score,
            reasons=tuple(self.detector.explain(row)),
            action=action,
        )
        st.alerts.append(alert)
        if self.on_alert is not None:
            self.on_alert(alert)
        return alert

    def warm(self, event: QueryEvent) -> None:
        """Feed a past event (replaying the log on open) without scoring or acting."""
        self._state(event.principal).tracker.push(event)

    def unblock(self, principal: str) -> None:
        """Lift a block and any throttle (the caller checks that an admin asked)."""
        st = self._states.get(principal)
        if st is not None:
            st.blocked = False
            st.strikes = 0
            st.throttled_until = 0.0

    def block(self, principal: str) -> None:
        self._state(principal).blocked = True

    def is_blocked(self, principal: str) -> bool:
        st = self._states.get(principal)
        return bool(st and st.blocked)

    def alerts(self, principal: str | None = None) -> list[Alert]:
        if principal is not None:
            st = self._states.get(principal)
            return list(st.alerts) if st else []
        return [a for st in self._states.values() for a in st.alerts]

    def principals(self) -> dict[str, dict[str, Any]]:
        """Per-principal summary: searches seen, strikes, max score, blocked."""
        return {
            p: {
                "queries": st.tracker.count,
                "windows": st.windows,
                "flagged_windows": st.flagged,
                "strikes": st.strikes,
                "max_score": st.max_score,
                "blocked": st.blocked,
            }
            for p, st in self._states.items()
        }

    def state_dict(self) -> dict[str, Any]:
        """Blocks and throttles, to persist across restarts."""
        return {
            p: {"blocked": st.blocked, "strikes": st.strikes, "throttled_until": st.throttled_until}
            for p, st in self._states.items()
            if st.blocked or st.strikes or st.throttled_until
        }

    def load_state(self, state: dict[str, Any]) -> None:
        for p, s in state.items():
            st = self._state(str(p))
            st.blocked = bool(s.get("blocked", False))
            st.strikes = int(s.get("strikes", 0))
            st.throttled_until = float(s.get("throttled_until", 0.0))

"""The query guard: alert, throttle or block principals whose recent windows look anomalous.

The guard sits in the search path. :meth:`QueryGuard.check` runs before a search (cheap
dictionary look-ups: is the principal blocked or throttled? over the hard rate limit?),
:meth:`QueryGuard.observe` after it: the event goes into the principal's tracker and, once
every ``stride`` searches, the window is scored. So the detector runs per window, not per query.

With ``background=True`` (what a store's monitor uses) :meth:`~QueryGuard.observe` only
appends the event to the principal's pending list (O(1)); tracking, window features and
scoring run in one worker thread. The decision is still applied exactly where the inline guard
applies it: a principal's :meth:`~QueryGuard.check` waits for the scoring of any window that
its earlier searches completed, so a throttle or block decided on the window ending at search
``n`` refuses search ``n + 1``, as inline. A principal's searches do not wait otherwise (a
search that completes no window never waits; one that follows a completed window waits only
when it arrives before the worker is done, about 0.3 ms). ``on_alert`` runs on a calling thread
(the next ``check``/``observe``/``drain``), never on the worker.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
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

    ``max_rate`` (off by default) is a hard rate rule checked before every search in O(1): a
    token bucket of ``max_rate`` searches refilled evenly over ``rate_seconds``. Under
    ``"throttle"`` or ``"block"`` a search over that rate is refused at once (ThrottledError),
    without waiting for a window to be scored; under ``"alert"`` it is served.
    """

    action: Action = "block"
    throttle_seconds: float = 900.0
    throttle_k: int = 5
    throttle_interval: float = 10.0
    strikes_to_block: int = 2
    max_rate: int | None = None
    rate_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.action not in ("alert", "throttle", "block"):
            raise ConfigurationError("guard action must be 'alert', 'throttle' or 'block'")
        if self.throttle_k < 1 or self.strikes_to_block < 1 or self.throttle_seconds < 0:
            raise ConfigurationError("throttle_k and strikes_to_block must be >= 1, throttle_seconds >= 0")
        if self.max_rate is not None and (self.max_rate < 1 or not self.rate_seconds > 0):
            raise ConfigurationError("max_rate must be >= 1 (or None) and rate_seconds > 0")


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
    tokens: float = -1.0  # hard-rate bucket (-1: not started)
    bucket_time: float = 0.0
    pending: list[QueryEvent] = field(default_factory=list)  # observed, not yet tracked (background)
    seen: int = 0  # events observed (tracked + pending)
    due: int = 0  # ``seen`` at the last completed window handed to the worker
    done: threading.Event = field(default_factory=threading.Event)  # set when nothing is in flight
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards pending/seen/due
    run_lock: threading.Lock = field(default_factory=threading.Lock)  # one tracker update at a time

    def __post_init__(self) -> None:
        self.done.set()


_STOP = object()


class QueryGuard:
    """Per-principal guard in front of search; see :class:`GuardPolicy` for the actions.

    ``background=True`` moves tracking and scoring to a worker thread (see the module
    docstring for when decisions land); ``queue_size`` bounds the windows waiting for it: when
    the queue is full, the searching thread scores the window itself. :meth:`drain` waits for the
    worker, :meth:`close` stops it.
    """

    def __init__(
        self,
        detector: QueryAnomalyDetector,
        policy: GuardPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        on_alert: Callable[[Alert], None] | None = None,
        background: bool = False,
        queue_size: int = 1024,
    ) -> None:
        detector._check_fitted()
        if queue_size < 1:
            raise ConfigurationError("queue_size must be >= 1")
        self.detector = detector
        self.policy = policy or GuardPolicy()
        self.clock = clock
        self.on_alert = on_alert
        self.background = background
        self.queue_size = queue_size
        self._states: dict[str, _State] = {}
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._worker: threading.Thread | None = None
        self._outbox: deque[Alert] = deque()  # alerts decided by the worker, delivered by callers
        self._start_lock = threading.Lock()
        self._stride = detector.stride
        self._min_events = detector.min_events

    def __repr__(self) -> str:
        mode = ", background" if self.background else ""
        return f"QueryGuard(action={self.policy.action!r}, principals={len(self._states)}{mode})"

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
            st = self._states.setdefault(principal, st)  # two threads, one new principal: one state
        return st

    def check(self, principal: str, k: int) -> int:
        """Before a search: raise BlockedError/ThrottledError, or return the k to use.

        In background mode it first waits for the scoring of a window this principal's earlier
        searches completed (if the worker has not finished it yet), so the decision applies now.
        """
        if self._outbox:
            self._deliver()
        st = self._states.get(principal)
        if st is None:
            if self.policy.max_rate is None:
                return k
            st = self._state(principal)
        if not st.done.is_set():
            st.done.wait()
            self._deliver()
        if st.blocked:
            raise BlockedError("this account is blocked by the query guard; an administrator must unblock it")
        if self.policy.max_rate is None and not st.throttled_until:
            return k  # the common case: no clock read, no bucket
        now = self.clock()
        over_rate = self.policy.max_rate is not None and not self._take_token(st, now)
        if over_rate and self.policy.action != "alert":
            raise ThrottledError("too many searches: over this account's hard rate limit; retry later")
        if now < st.throttled_until:
            if now - st.last_allowed < self.policy.throttle_interval:
                wait = self.policy.throttle_interval
                raise ThrottledError(f"too many searches: this account is throttled; retry in {wait:.0f} s")
            st.last_allowed = now
            return min(k, self.policy.throttle_k)
        return k

    def _take_token(self, st: _State, now: float) -> bool:
        """Hard-rate token bucket: False when this search is over ``max_rate`` per ``rate_seconds``."""
        cap = float(self.policy.max_rate or 0)
        if st.tokens < 0:
            st.tokens, st.bucket_time = cap, now
        else:
            st.tokens = min(cap, st.tokens + (now - st.bucket_time) * cap / self.policy.rate_seconds)
            st.bucket_time = now
        if st.tokens < 1.0:
            return False
        st.tokens -= 1.0
        return True

    def observe(self, event: QueryEvent) -> Alert | None:
        """After a search (served or refused): track the event; score the window when one is due.

        A blocked principal's further (refused) searches are tracked but raise no new alerts.
        Inline, returns the alert this event's window raised (or None). In background mode it
        only queues the event (and, when it completes a window, hands the window to the worker)
        and returns None; the alert is in :meth:`alerts` once the worker is done.
        """
        if not self.background:
            st = self._state(event.principal)
            return self._track(st, event)
        if self._outbox:
            self._deliver()
        st = self._state(event.principal)
        with st.lock:
            st.pending.append(event)
            st.seen += 1
            n = st.seen
            if n < self._min_events or n % self._stride:
                return None  # no window completes here: tracked later, in a batch
            st.done.clear()
            st.due = n
        try:
            self._ensure_worker()
            self._queue.put_nowait(st)
        except queue.Full:  # the worker is behind: score here rather than queue without bound
            self._run(st)
        return None

    def _track(self, st: _State, event: QueryEvent) -> Alert | None:
        row = st.tracker.push(event)
        if row is None or st.blocked:
            return None
        return self._decide(st, event, row)

    def _run(self, st: _State) -> None:
        """Track a principal's pending events (scoring the windows they complete), in order."""
        with st.run_lock:  # one thread at a time per principal, so events are tracked in order
            try:
                with st.lock:
                    events, st.pending = st.pending, []
                    upto = st.seen
                for ev in events:
                    alert = self._track(st, ev)
                    if alert is not None:
                        self._outbox.append(alert)
            finally:
                with st.lock:
                    if st.due <= upto:  # no window completed since: nothing left in flight
                        st.done.set()

    def _ensure_worker(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            return
        with self._start_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="securecmr-query-guard", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            st = self._queue.get()
            try:
                if st is _STOP:
                    return
                self._run(st)
            finally:
                self._queue.task_done()

    def _deliver(self) -> None:
        """Hand alerts decided by the worker to ``on_alert`` (on the calling thread)."""
        while self._outbox:
            try:
                alert = self._outbox.popleft()
            except IndexError:
                return
            if self.on_alert is not None:
                self.on_alert(alert)

    def drain(self) -> None:
        """Wait until the worker has tracked and scored everything observed so far."""
        if self.background:
            if self._worker is not None and self._worker.is_alive():
                self._queue.join()
            for st in list(self._states.values()):
                if st.pending:  # events after the last completed window: track them now
                    self._run(st)
        self._deliver()

    def close(self) -> None:
        """Drain, then stop the worker thread (a later background ``observe`` restarts it)."""
        self.drain()
        worker = self._worker
        if worker is not None and worker.is_alive():
            self._queue.put(_STOP)
            worker.join()
        self._worker = None

    def _decide(self, st: _State, event: QueryEvent, row: Any) -> Alert | None:
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
        if self.on_alert is not None and not self.background:
            self.on_alert(alert)
        return alert

    def warm(self, event: QueryEvent) -> None:
        """Feed a past event (replaying the log on open) without scoring or acting."""
        st = self._state(event.principal)
        if st.pending:
            self.drain()
        st.tracker.push(event)
        st.seen = st.tracker.count

    def unblock(self, principal: str) -> None:
        """Lift a block and any throttle (the caller checks that an admin asked)."""
        self.drain()
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
        self.drain()
        if principal is not None:
            st = self._states.get(principal)
            return list(st.alerts) if st else []
        return [a for st in self._states.values() for a in st.alerts]

    def principals(self) -> dict[str, dict[str, Any]]:
        """Per-principal summary: searches seen, strikes, max score, blocked."""
        self.drain()
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
        self.drain()
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

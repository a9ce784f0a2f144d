"""The store's monitor: query log, fitted detector and live guard under ``<store>/monitor/``.

The store facade builds one :class:`StoreMonitor` and the access layer calls
:meth:`StoreMonitor.before_search` / :meth:`StoreMonitor.after_search` around every search
made through a session. Until :meth:`fit` has run the monitor only logs; afterwards the guard
scores each principal's windows and alerts, throttles or blocks per its policy. The guard runs
in background mode (see :mod:`securecmr.monitor._guard`): a search only queues its event, the
window is scored in a worker thread, and the decision lands before that principal's next search.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import MonitorError
from ._detector import QueryAnomalyDetector
from ._events import QueryEvent, QueryLog, keyed_id
from ._guard import Alert, GuardPolicy, QueryGuard
from ._rules import MonitorRules, RuleGuard

__all__ = ["StoreMonitor"]


class StoreMonitor:
    """Monitor of one store: ``fit()`` learns normal use from the log, ``report()`` lists anomalies.

    ``key`` keys result-id fingerprints (never store raw ids); ``seal``/``unseal`` seal the log
    lines when the store is encrypted; ``on_alert`` receives each :class:`Alert` (the store
    writes it to the audit log).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        store_id: str,
        key: bytes,
        clock: Callable[[], float] = time.time,
        seal: Callable[[bytes], bytes] | None = None,
        unseal: Callable[[bytes], bytes] | None = None,
        policy: GuardPolicy | None = None,
        on_alert: Callable[[Alert], None] | None = None,
        rules: MonitorRules | None = None,
    ) -> None:
        self.directory = Path(directory)
        self._seal, self._unseal = seal, unseal
        self._rule_guard: RuleGuard | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self.store_id = store_id
        self._key = key
        self._ids: dict[object, str] = {}  # str(id) -> keyed id
        self.clock = clock
        self.policy = policy or GuardPolicy()
        self.on_alert = on_alert
        # lines go to disk 16 at a time (one write per 16 searches, not per search); see QueryLog
        self.log = QueryLog(
            self.directory / "queries.log", seal=seal, unseal=unseal, flush_every=16, background=True
        )
        self._write_info()
        self.rules = rules or self._load_rules() or MonitorRules()
        self.guard: QueryGuard | None = None
        if self.detector_path.exists():
            self._start_guard(QueryAnomalyDetector.load(self.detector_path, store_id=store_id))

    def __repr__(self) -> str:
        return f"StoreMonitor({self.directory}, fitted={self.guard is not None})"

    def _write_info(self) -> None:
        info = self.directory / "monitor.json"
        if info.exists():
            try:
                known = json.loads(info.read_text("utf-8")).get("store_id")
            except (ValueError, AttributeError):
                raise MonitorError(f"{info} is corrupt") from None
            if known != self.store_id:
                raise MonitorError(
                    f"{self.directory} belongs to another store; refit the monitor for this one"
                )
            return
        info.write_text(json.dumps({"store_id": self.store_id, "format": 1}), "utf-8")

    @classmethod
    def from_directory(
        cls, directory: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> StoreMonitor:
        """Open an existing monitor directory for admin work (fit/report) without the store.

        Only works for an unsealed log; an encrypted store's monitor is reached through the store.
        """
        info = Path(directory) / "monitor.json"
        try:
            store_id = str(json.loads(info.read_text("utf-8"))["store_id"])
        except FileNotFoundError:
            raise MonitorError(f"{directory} holds no query monitor (no searches logged yet)") from None
        except (ValueError, KeyError, TypeError):
            raise MonitorError(f"{info} is corrupt") from None
        return cls(directory, store_id=store_id, key=b"", clock=clock)

    @property
    def detector_path(self) -> Path:
        return self.directory / "detector.npz"

    @property
    def state_path(self) -> Path:
        return self.directory / "guard.json"

    @property
    def detector(self) -> QueryAnomalyDetector | None:
        return None if self.guard is None else self.guard.detector

    def _start_guard(self, detector: QueryAnomalyDetector) -> None:
        if self.guard is not None:
            self.guard.close()
        guard = QueryGuard(detector, self.policy, clock=self.clock, on_alert=self._alert, background=True)
        for ev in self.log.events():  # rebuild each principal's window from the log
            guard.warm(ev)
        if self.state_path.exists():
            try:
                guard.load_state(json.loads(self.state_path.read_text("utf-8")))
            except (ValueError, TypeError, AttributeError):
                raise MonitorError(f"{self.state_path} is corrupt; delete it to clear blocks") from None
        self.guard = guard

    def _alert(self, alert: Alert) -> None:
        self._save_state()
        if self.on_alert is not None:
            self.on_alert(alert)

    def _save_state(self) -> None:
        if self.guard is None:
            return
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps(self.guard.state_dict()), "utf-8")
        os.replace(tmp, self.state_path)

    def flush(self) -> None:
        """Finish pending scoring, save the guard's state and write every logged query to disk
        (a snapshot calls this before it copies the monitor's files)."""
        if self.guard is not None:
            self.guard.drain()
            self._save_state()
        self.log.flush()

    def close(self) -> None:
        """Finish pending scoring, stop the guard's worker and close the log (the store calls this)."""
        if self.guard is not None:
            self.guard.close()
        self.log.close()

    # ------------------------------------------------------------------ search path
    def before_search(self, principal: str, k: int) -> int:
        """Raise BlockedError/ThrottledError, or return the k the search may use. Until the
        detector is fitted the explicit :class:`MonitorRules` decide."""
        if self.guard is None:
            return self.rule_guard.check(principal, k)
        return self.guard.check(principal, k)

    @property
    def rules_path(self) -> Path:
        return self.directory / "rules.json"

    def set_rules(self, rules: MonitorRules) -> None:
        """Replace the explicit rules and keep them with the store (sealed when the log is);
        their counters are rebuilt from the log."""
        body = json.dumps(rules.to_dict(), sort_keys=True).encode()
        data = self._seal(body) if self._seal is not None else body
        tmp = self.rules_path.with_name(self.rules_path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.rules_path)
        self.rules = rules
        self._rule_guard = None

    def _load_rules(self) -> MonitorRules | None:
        if not self.rules_path.exists():
            return None
        data = self.rules_path.read_bytes()
        try:
            body = self._unseal(data) if self._unseal is not None else data
            return MonitorRules(**json.loads(body))
        except Exception:
            raise MonitorError(
                f"{self.rules_path.name} is corrupt or was altered; set the rules again"
            ) from None

    @property
    def rule_guard(self) -> RuleGuard:
        """The explicit rules' guard, its state rebuilt from the query log on first use."""
        rg = self._rule_guard
        if rg is None:
            rg = RuleGuard(self.rules, clock=self.clock, on_alert=self.on_alert)
            self.log.flush()
            rg.warm(self.log.events(), float(self.clock()))
            self._rule_guard = rg
        return rg

    def after_search(
        self,
        principal: str,
        *,
        collection: str,
        k: int,
        code: bytes,
        result_ids: Sequence[object] = (),
        scores: Sequence[float] = (),
        collection_size: int = 0,
        bits: int = 0,
        tenant: str | None = None,
        denied: bool = False,
        reason: str | None = None,
    ) -> Alert | None:
        """Log the search (keyed ids, salted code) and let the guard score the window if due.

        A refused search is logged too (``denied=True`` and the refusal ``reason``), with its
        code when one was at hand (``b""`` otherwise), so enumeration through refused calls shows.
        """
        if type(code) is not bytes:
            code = bytes(code)
        if code and len(code) * 8 != bits:  # measure a code in its own width
            bits = len(code) * 8
        # keyed ids: one dict lookup per hit; HMAC only for an id not seen lately (see _keyed)
        known = self._ids.get
        keyed = tuple([known(r) or self._keyed(r) for r in result_ids])
        n_scores = len(scores)
        ev = QueryEvent(
            principal,
            float(self.clock()),
            collection,
            int(k),
            code,
            keyed,
            float(scores[0]) if n_scores > 0 else None,
            float(scores[1]) if n_scores > 1 else None,
            bool(denied),
            tenant,
            int(collection_size),
            int(bits),
            reason,
        )
        self.log.append(ev)
        if self.guard is None:
            return self.rule_guard.observe(ev)
        return self.guard.observe(ev)

    def _keyed(self, item_id: object) -> str:
        """:func:`keyed_id`, memoised (the same ids come back again and again)."""
        key = str(item_id)
        out = self._ids.get(key)
        if out is None:
            if len(self._ids) >= 65536:
                self._ids.clear()
            out = self._ids[key] = keyed_id(self._key, key)
        return out

    # ------------------------------------------------------------------ admin
    def fit(
        self,
        *,
        until: float | None = None,
        exclude: Sequence[str] = (),
        detector: QueryAnomalyDetector | None = None,
    ) -> QueryAnomalyDetector:
        """Learn normal use from the log (optionally only events before ``until``, minus principals)."""
        skip = set(exclude)
        events = [
            e for e in self.log.events() if e.principal not in skip and (until is None or e.time < until)
        ]
        if not events:
            raise MonitorError(
                "the query log is empty: let users search for a while (days of normal work) before fitting"
            )
        det = detector if detector is not None else QueryAnomalyDetector()
        det.fit_events(events, store_id=self.store_id)
        det.save(self.detector_path)
        state = self.guard.state_dict() if self.guard is not None else None
        self._start_guard(det)
        if state and self.guard is not None:
            self.guard.load_state(state)
        return det

    def unblock(self, principal: str) -> None:
        """Lift a block (the store checks that an admin asked)."""
        if self.guard is not None:
            self.guard.unblock(principal)
            self._save_state()

    def status(self, *, all_principals: bool = False) -> dict[str, Any]:
        """What protects the store now and what it found, at any time (never raises for lack of
        history): ``active`` is ``"detector"`` once fitted, else ``"rules"``; ``rules`` gives the
        explicit rules' limits; ``flagged`` lists principals as :meth:`report` does (by the
        detector when fitted, else by the rules: throttled or alerted principals)."""
        fitted = self.guard is not None
        out: dict[str, Any] = {
            "fitted": fitted,
            "active": "detector" if fitted else "rules",
            "rules": self.rules.to_dict(),
            "queries_logged": len(self.log),
        }
        if fitted:
            det = self.guard.detector if self.guard is not None else None
            out["detector"] = {
                "windows": int(getattr(det, "n_windows_", 0)),
                "principals": len(getattr(det, "profiles_", {}) or {}),
            }
            out["flagged"] = self.report(all_principals=all_principals)
            return out
        out["detector"] = None
        flagged = []
        for name, s in self.rule_guard.principals().items():
            if not s["alerts"] and s["throttled_until"] is None and not all_principals:
                continue
            reasons: list[str] = []
            for a in s["alerts"]:
                for r in a["reasons"]:
                    key = r.split(":")[0]
                    if key not in reasons:
                        reasons.append(key)
            flagged.append(
                {
                    "principal": name,
                    "queries": s["queries"],
                    "searches_in_window": s["searches_in_window"],
                    "refused_in_window": s["refused_in_window"],
                    "capped_k": s["capped_k"],
                    "coverage": s["coverage"],
                    "throttled_until": s["throttled_until"],
                    "alerts": len(s["alerts"]),
                    "first_flagged": s["alerts"][0]["time"] if s["alerts"] else None,
                    "reasons": reasons,
                    "blocked": False,
                }
            )
        flagged.sort(key=lambda e: (-e["alerts"], e["principal"]))
        out["flagged"] = flagged
        return out

    def report(self, *, all_principals: bool = False) -> list[dict[str, Any]]:
        """Principals whose windows the detector flags (replaying the whole log), worst first.

        Each entry names the ``principal`` and gives ``score`` (max window score; > 1 is
        anomalous), ``flagged_windows``, ``windows``, ``queries``, ``first_flagged`` (time),
        ``reasons`` and ``blocked``.
        """
        if self.guard is None:
            raise MonitorError("the monitor is not fitted: run store.monitor.fit() / `securecmr monitor fit`")
        det = self.guard.detector
        replay = QueryGuard(det, GuardPolicy(action="alert"))
        for ev in self.log.events():
            replay.observe(ev)
        out: list[dict[str, Any]] = []
        for principal, s in replay.principals().items():
            alerts = replay.alerts(principal)
            if not alerts and not all_principals and not self.guard.is_blocked(principal):
                continue
            reasons: list[str] = []
            for a in alerts:
                for r in a.reasons:
                    key = r.split(" (")[0]
                    if key not in reasons:
                        reasons.append(key)
            out.append(
                {
                    "principal": principal,
                    "score": round(float(s["max_score"]), 4),
                    "flagged_windows": int(s["flagged_windows"]),
                    "windows": int(s["windows"]),
                    "queries": int(s["queries"]),
                    "first_flagged": alerts[0].time if alerts else None,
                    "reasons": reasons,
                    "blocked": self.guard.is_blocked(principal),
                }
            )
        out.sort(key=lambda e: (-e["score"], e["principal"]))
        return out

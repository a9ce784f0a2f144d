"""The explicit rules that guard a store before its detector can be fitted: rate, k,
distinct-result coverage and refused-call enumeration; ``monitor report`` at any time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import securecmr
from securecmr.cli.main import app
from securecmr.errors import ConfigurationError, ThrottledError
from securecmr.monitor import Alert, MonitorRules, StoreMonitor

T0 = 1_790_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def _monitor(tmp_path: Path, rules: MonitorRules, clock: Clock, alerts: list[Alert]) -> StoreMonitor:
    return StoreMonitor(
        tmp_path / "monitor", store_id="s", key=b"k" * 32, clock=clock, rules=rules, on_alert=alerts.append
    )


def _search(mon: StoreMonitor, who: str, ids: list[str], size: int = 5000, k: int = 10) -> int:
    k = mon.before_search(who, k)
    mon.after_search(who, collection="c", k=k, code=b"\0" * 8, result_ids=ids, collection_size=size, bits=64)
    return k


def test_rate_and_k_rules(tmp_path: Path) -> None:
    clock, alerts = Clock(), []
    mon = _monitor(tmp_path, MonitorRules(max_searches=5, window_seconds=60, max_k=20), clock, alerts)
    assert _search(mon, "ana", ["a"], k=500) == 20  # capped, not refused
    for _ in range(4):
        clock.t += 1
        _search(mon, "ana", ["a"])
    with pytest.raises(ThrottledError, match="more than 5"):
        mon.before_search("ana", 10)
    assert mon.before_search("ben", 10) == 10  # per principal
    clock.t += 61
    assert mon.before_search("ana", 10) == 10  # the window moved on
    mon.close()
    # a new process (a CLI call, a restart) rebuilds the counters from the query log
    again = _monitor(tmp_path, MonitorRules(max_searches=5, window_seconds=60 * 60), clock, alerts)
    with pytest.raises(ThrottledError):
        again.before_search("ana", 10)
    again.close()
    assert alerts == []
    assert MonitorRules().max_searches >= 100
    with pytest.raises(ConfigurationError):
        MonitorRules(max_coverage=0)


def test_coverage_rule_alerts_and_throttles(tmp_path: Path) -> None:
    clock, alerts = Clock(), []
    rules = MonitorRules(max_coverage=0.5, min_coverage_items=100, cooldown_seconds=300, max_searches=10**6)
    mon = _monitor(tmp_path, rules, clock, alerts)
    for start in range(0, 900, 50):  # a dump of a 1,000-item collection, 50 at a time
        clock.t += 1
        try:
            _search(mon, "mallory", [f"i{j}" for j in range(start, start + 50)], size=1000)
        except ThrottledError:
            break
    else:
        pytest.fail("the dump was never throttled")
    assert start == 550  # refused right after crossing 50% (501+ distinct items)
    (alert,) = alerts
    assert alert.principal == "mallory" and "coverage" in alert.reasons[0] and alert.action == "throttle"
    for _ in range(30):  # a benign user re-finding the same 40 items is never troubled
        clock.t += 5
        _search(mon, "ana", [f"i{j}" for j in range(40)], size=1000)
    status = mon.status()
    assert status["active"] == "rules" and status["fitted"] is False
    assert [e["principal"] for e in status["flagged"]] == ["mallory"]
    assert status["flagged"][0]["reasons"] == ["distinct-result coverage"]
    clock.t += 301
    assert mon.before_search("mallory", 10) == 10  # the cool-down ends
    mon.close()


def test_refused_calls_rule(tmp_path: Path) -> None:
    clock, alerts = Clock(), []
    mon = _monitor(
        tmp_path, MonitorRules(max_refused=3, window_seconds=60, cooldown_seconds=120), clock, alerts
    )
    for _ in range(4):  # probing collections or items one may not see
        clock.t += 1
        mon.before_search("eve", 10)
        mon.after_search("eve", collection="c", k=10, code=b"", denied=True, reason="permission")
    assert len(alerts) == 1 and "refused calls" in alerts[0].reasons[0]
    with pytest.raises(ThrottledError):
        mon.before_search("eve", 10)
    mon.close()


def test_rules_guard_a_real_store_and_report_any_time(tmp_path: Path) -> None:
    path = tmp_path / "st"
    securecmr.Store.create(path, passphrase="pw").close()
    with securecmr.Store.open(path, passphrase="pw", readonly=True):  # beside a writer, at any time
        res = CliRunner().invoke(
            app, ["monitor", "report", str(path), "--json"], env={"SECURECMR_PASSPHRASE": "pw"}
        )
        assert res.exit_code == 0, res.output
        status = json.loads(res.stdout)
        assert status["active"] == "rules" and status["flagged"] == [] and status["queries_logged"] == 0
    with securecmr.Store.open(path, passphrase="pw") as st:
        coll = st.create_collection("c")
        rng = np.random.default_rng(0)
        coll.add(
            [
                securecmr.Item(f"i{i}", codes={"text": rng.integers(0, 256, 8, dtype=np.uint8)})
                for i in range(300)
            ]
        )
        st.monitor.set_rules(MonitorRules(max_coverage=0.5, min_coverage_items=100, max_searches=10**6))
        reader = st.session(st.create_user("mallory", role="reader")).collection("c")
        assert len(reader.search(code=rng.integers(0, 256, 8, dtype=np.uint8), k=1000)) == 100  # k capped
        with pytest.raises(ThrottledError):
            for _ in range(10):
                reader.search(code=rng.integers(0, 256, 8, dtype=np.uint8), k=100)
        alerts = [r for r in st.audit.records() if r["action"] == "monitor.alert"]
        assert len(alerts) == 1 and alerts[0]["principal"] == "mallory"
    res = CliRunner().invoke(app, ["monitor", "report", str(path)], env={"SECURECMR_PASSPHRASE": "pw"})
    assert res.exit_code == 0 and res.stdout.startswith("active: explicit rules")
    assert "principal" in res.stdout and "mallory" in res.stdout


def test_rules_cli(tmp_path: Path) -> None:
    path = tmp_path / "st"
    securecmr.Store.create(path, passphrase="pw").close()
    env = {"SECURECMR_PASSPHRASE": "pw"}
    res = CliRunner().invoke(app, ["monitor", "rules", str(path), "--json"], env=env)
    assert res.exit_code == 0 and json.loads(res.stdout) == MonitorRules().to_dict()
    res = CliRunner().invoke(
        app, ["monitor", "rules", str(path), "--max-searches", "5000", "--json"], env=env
    )
    assert res.exit_code == 0 and json.loads(res.stdout)["max_searches"] == 5000
    with securecmr.Store.open(path, passphrase="pw") as st:
        assert st.monitor.rules.max_searches == 5000 and st.monitor.rules.max_k == MonitorRules().max_k
    res = CliRunner().invoke(app, ["monitor", "rules", str(path), "--max-coverage", "2", "--json"], env=env)
    assert res.exit_code == 1 and json.loads(res.stdout)["error"]["type"] == "ConfigurationError"
    rules_file = path / "monitor" / "rules.json"
    data = bytearray(rules_file.read_bytes())
    data[-1] ^= 1
    rules_file.write_bytes(bytes(data))
    with pytest.raises(securecmr.errors.MonitorError, match=r"rules\.json"):
        securecmr.Store.open(path, passphrase="pw")

"""``securecmr monitor fit|report|unblock`` on a monitor directory filled by simulated traffic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from securecmr.cli.main import app
from securecmr.monitor import HammingIndex, StoreMonitor, TrafficSimulator, synthetic_collection
from securecmr.monitor._simulator import EPOCH


def test_cli_fit_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURECMR_PASSPHRASE", "not-used-here")
    codes, topics = synthetic_collection(300, n_topics=6, seed=4)
    sim = TrafficSimulator(codes, topics, seed=4)
    index = HammingIndex(codes)
    now = [EPOCH]
    mon = StoreMonitor(tmp_path / "monitor", store_id="cli-store", key=b"k" * 32, clock=lambda: now[0])

    def replay(plans: list) -> None:
        for q in sorted((q for p in plans for q in p), key=lambda q: q.time):
            now[0] = q.time
            ids, scores = index.search(q.code, q.k)
            mon.after_search(
                q.principal, collection="c", k=q.k, code=q.code, result_ids=ids, scores=scores,
                collection_size=300, bits=64,
            )  # fmt: skip

    replay([sim.benign(f"u{i}", days=(0, 12)) for i in range(6)])
    runner = CliRunner()
    res = runner.invoke(app, ["monitor", "report", str(tmp_path), "--json"])
    assert res.exit_code == 0  # not fitted yet: the explicit rules are active
    status = json.loads(res.stdout)
    assert status["fitted"] is False and status["active"] == "rules" and status["rules"]["max_k"] >= 1
    res = runner.invoke(app, ["monitor", "fit", str(tmp_path)], catch_exceptions=False)
    assert res.exit_code == 0 and "fitted on" in res.output
    mon = StoreMonitor(tmp_path / "monitor", store_id="cli-store", key=b"k" * 32, clock=lambda: now[0])
    replay([sim.attack("enumerator", "intruder", start_day=13, n_queries=60)])
    res = runner.invoke(app, ["monitor", "report", str(tmp_path), "--json"], catch_exceptions=False)
    assert res.exit_code == 0
    flagged = json.loads(res.output)["flagged"]
    assert flagged and flagged[0]["principal"] == "intruder"
    assert flagged[0]["score"] > 1.0 and flagged[0]["reasons"]
    res = runner.invoke(app, ["monitor", "report", str(tmp_path)], catch_exceptions=False)
    assert "intruder" in res.output
    res = runner.invoke(app, ["monitor", "unblock", str(tmp_path), "intruder"], catch_exceptions=False)
    assert res.exit_code == 0

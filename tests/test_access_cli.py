"""``securecmr users add|revoke`` and ``securecmr audit verify|export``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import securecmr
from securecmr.cli.users import _parse_attrs
from securecmr.errors import ConfigurationError

PASS = "cli passphrase 123"


def test_parse_attrs() -> None:
    assert _parse_attrs(["departments=neuro,onco", "clearance=2", "site=A", "site=B", "flag=true"]) == {
        "departments": ["neuro", "onco"],
        "clearance": 2,
        "site": ["A", "B"],
        "flag": True,
    }
    with pytest.raises(ConfigurationError):
        _parse_attrs(["novalue"])


def _cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "SECURECMR_PASSPHRASE": PASS, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "securecmr.cli.main", *args], capture_output=True, text=True, env=env
    )


@pytest.mark.skipif(not hasattr(securecmr, "Store"), reason="securecmr.Store is not available yet")
def test_users_and_audit_cli(tmp_path: Path) -> None:
    path = tmp_path / "store"
    securecmr.Store.create(path, passphrase=PASS).close()
    out = _cli("users", "add", str(path), "ana", "--role", "reader", "--attr", "departments=neuro")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.startswith("scmr1.")
    with securecmr.Store.open(path, passphrase=PASS) as store:
        assert store.session(token).user == "ana"
    assert _cli("users", "revoke", str(path), "ana").returncode == 0
    ok = _cli("audit", "verify", str(path), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    exported = _cli("audit", "export", str(path))
    assert exported.returncode == 0
    lines = [json.loads(x) for x in exported.stdout.splitlines()]
    assert {"user.create", "user.revoke"} <= {r["action"] for r in lines}
    assert token not in exported.stdout
    log = next(path.rglob("audit.jsonl"))
    data = bytearray(log.read_bytes())
    data[len(data) // 2] ^= 1
    log.write_bytes(bytes(data))
    bad = _cli("audit", "verify", str(path))
    assert bad.returncode == 1
    assert "audit record" in bad.stderr

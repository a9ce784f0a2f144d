"""Every ``securecmr`` command: ``--help`` works, a malformed call is a short usage error (exit 2,
no traceback, JSON with ``--json``), and a runtime error is a short message (exit 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from securecmr.cli.main import app

PASS = "matrix passphrase"


def _leaves() -> list[tuple[str, ...]]:
    """The path of every visible command (group names, then the command's name)."""
    out: list[tuple[str, ...]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is None:
            out.append(path)
            return
        for name, sub in subs.items():
            if not getattr(sub, "hidden", False):
                walk(sub, (*path, name))

    walk(get_command(app), ())
    return sorted(out)


LEAVES = _leaves()
GROUPS = sorted({p[:-1] for p in LEAVES if len(p) > 1})


def _invoke(args: list[str], **env: str) -> Any:
    res = CliRunner().invoke(
        app, args, env={"SECURECMR_PASSPHRASE": PASS, "SECURECMR_NO_PROGRESS": "1", **env}
    )
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, res.exception)
    assert "Traceback" not in res.output, (args, res.output)
    return res


def test_the_cli_covers_the_operations() -> None:
    names = {" ".join(p) for p in LEAVES}
    expected = {
        "store create", "store info",
        "collection create", "collection list", "collection info", "collection drop",
        "ingest", "search", "get", "delete", "hold", "release", "compact", "purge",
        "keys rotate", "snapshot export", "snapshot import", "snapshot verify",
        "roles list", "roles create",
        "users create", "users list", "users show", "users update", "users token", "users revoke",
        "audit verify", "audit export", "audit records",
        "monitor fit", "monitor report", "monitor rules", "monitor unblock",
        "models export", "models verify",
    }  # fmt: skip
    assert expected <= names, expected - names


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_help_of_every_command(path: tuple[str, ...]) -> None:
    res = _invoke([*path, "--help"])
    assert res.exit_code == 0
    assert res.stdout.startswith("Usage: ")
    assert "<bool>" not in res.stdout and "``" not in res.stdout


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_malformed_call_of_every_command(path: tuple[str, ...], tmp_path: Path) -> None:
    res = _invoke([*path, str(tmp_path / "x"), "--no-such-flag"])
    assert res.exit_code == 2
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert 1 <= len(lines) <= 2, res.stderr
    assert lines[0].startswith("error: ") and "--no-such-flag" in lines[0]
    assert lines[-1].startswith("hint: ") and "--help" in lines[-1]
    res = _invoke([*path, str(tmp_path / "x"), "--no-such-flag", "--json"])
    doc = json.loads(res.stdout)
    assert res.exit_code == 2 and doc["ok"] is False and doc["error"]["type"] == "UsageError"


@pytest.mark.parametrize("group", GROUPS, ids=" ".join)
def test_bare_group_prints_its_help(group: tuple[str, ...]) -> None:
    res = _invoke(list(group))
    assert res.exit_code == 2 and "Commands:" in res.output


_NEEDS_STORE = [
    p
    for p in LEAVES
    if p[0] in {"store", "collection", "users", "roles", "audit", "keys"} and p != ("store", "create")
]


@pytest.mark.parametrize("path", _NEEDS_STORE, ids=" ".join)
def test_runtime_error_on_a_missing_store(path: tuple[str, ...], tmp_path: Path) -> None:
    """A missing store is a one-line error in CLI terms (exit 1), with --json a JSON document."""
    args = [*path, str(tmp_path / "nowhere")]
    if path in {("collection", "create"), ("collection", "info"), ("collection", "drop"),
                ("collection", "fit"), ("users", "show"),
                ("users", "update"), ("users", "token"), ("users", "revoke")}:  # fmt: skip
        args.append("name")
    if path == ("users", "create"):
        args += ["ana", "--role", "reader"]
    if path == ("roles", "create"):
        args += ["triage", "-p", "search"]
    if path == ("users", "update"):
        args += ["--role", "reader"]
    if path == ("collection", "drop"):
        args.append("--yes")
    res = _invoke([*args, "--json"], SECURECMR_NEW_PASSPHRASE="x")
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    assert doc["error"]["type"] == "StoreNotFoundError"
    assert "Store.create" not in doc["error"]["message"] and "store create" in doc["error"]["message"]


def test_console_script_has_no_traceback(tmp_path: Path) -> None:
    """The real entry point (sys.argv, exit status) behaves like the in-process runner."""
    env = {**os.environ, "SECURECMR_PASSPHRASE": PASS}
    run = subprocess.run(
        [sys.executable, "-m", "securecmr.cli.main", "search", str(tmp_path), "c", "--bogus"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("error: No such option: --bogus")
    run = subprocess.run(
        [sys.executable, "-m", "securecmr.cli.main", "search", str(tmp_path / "none"), "c", "q"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 2

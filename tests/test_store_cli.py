"""CLI: store init, collection create, manifest errors (all-out), purge, compact, keys rotate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import securecmr
from securecmr.cli.store import read_manifest
from securecmr.errors import DecryptionError, ManifestError


def _run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    from typer.testing import CliRunner

    from securecmr.cli.main import app

    res = CliRunner().invoke(app, args, env=env)
    return res.exit_code, res.output


def test_cli_lifecycle(tmp_path: Path) -> None:
    env = {"SECURECMR_PASSPHRASE": "pw-one", "SECURECMR_NEW_PASSPHRASE": "pw-two"}
    st = str(tmp_path / "st")
    assert _run(["store", "init", st], env)[0] == 0
    assert _run(["collection", "create", st, "c", "--bits", "64", "--protection", "salted"], env)[0] == 0
    assert _run(["purge", st], env)[0] == 0
    code, out = _run(["compact", st, "--json"], env)
    assert code == 0 and json.loads(out)["count"] == 0
    assert _run(["keys", "rotate", st, "--reencrypt"], env)[0] == 0
    with pytest.raises(DecryptionError):
        securecmr.Store.open(st, passphrase="pw-one")
    with securecmr.Store.open(st, passphrase="pw-two") as store:
        assert store.collections() == ["c"]


def test_manifest_errors_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "ok.png").write_bytes(b"x")
    m = tmp_path / "m.jsonl"
    m.write_text('{"id": "a", "image": "ok.png"}\n{"id": "b", "image": "missing.png"}\n')
    with pytest.raises(ManifestError, match="line 2"):
        read_manifest(m)
    m.write_text('{"id": "a", "text": "t"}\nnot json\n')
    with pytest.raises(ManifestError, match="line 2"):
        read_manifest(m)
    m.write_text('{"id": "a", "text": "t", "labels": ["x"], "attrs": {"s": 1}, "ref": "r"}\n')
    (item,) = read_manifest(m)
    assert item.id == "a" and item.labels == ("x",) and item.attrs == {"s": 1}

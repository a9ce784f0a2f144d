"""`securecmr models export|verify` and `securecmr demo` on the session's exported models."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from securecmr.cli.demo import run_demo

pytestmark = pytest.mark.models


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "securecmr.cli.main", *args], capture_output=True, text=True)


def test_models_export_is_a_noop_on_a_verified_export(models_dir: Path) -> None:
    before = (models_dir / "manifest.json").read_bytes()
    out = _cli("models", "export", "--dir", str(models_dir), "--int8")
    assert out.returncode == 0, out.stderr
    assert "already exported" in out.stderr
    assert (models_dir / "manifest.json").read_bytes() == before
    ver = _cli("models", "verify", "--dir", str(models_dir), "--json")
    assert ver.returncode == 0, ver.stderr
    report = json.loads(ver.stdout)
    assert report["ok"] and set(report["files"]) >= {"text.onnx", "image.onnx", "tokenizer.json"}


def test_verify_without_models_says_what_to_do(tmp_path: Path) -> None:
    out = _cli("models", "verify", "--dir", str(tmp_path))
    assert out.returncode == 1
    assert "securecmr models export" in out.stderr


def test_demo_ranks_the_sample_photos(models_dir: Path) -> None:
    console = Console(file=io.StringIO(), width=120)
    result = run_demo(console, json_out=False)
    assert "text -> image" in console.file.getvalue()  # type: ignore[attr-defined]
    first = {row["query"]: row["results"][0]["image"] for row in result["text_to_image"]}
    assert first["a cat"] == "chelsea"
    assert first["a rocket launch"] == "rocket"
    assert first["a hot drink"] == "coffee"
    for row in result["image_to_text"]:
        scores = [r["score"] for r in row["results"]]
        assert scores == sorted(scores, reverse=True)
    protected = result["protected_store"]
    assert protected["protection"] == "salted+encrypted" and protected["items"] == 2 * result["images"]
    store_first = {row["query"]: row["results"][0]["image"] for row in protected["text_to_image"]}
    assert store_first["a cat"] == "chelsea"

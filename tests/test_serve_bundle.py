"""``securecmr bundle OUT``: an offline install folder that installs with ``pip --no-index``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from _serve_helpers import free_port

from securecmr._bundle import INSTALL_SH, make_bundle
from securecmr.errors import ConfigurationError, ModelIntegrityError

REPO = Path(__file__).resolve().parent.parent


def test_refuses_a_non_empty_folder_and_unverified_models(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("keep me")
    with pytest.raises(ConfigurationError, match="not empty"):
        make_bundle(busy, models=tmp_path)
    assert (busy / "x").read_text() == "keep me"
    models = tmp_path / "models"
    models.mkdir()
    (models / "text.onnx").write_bytes(b"tampered")
    (models / "manifest.json").write_text(json.dumps({"format": 1, "files": {"text.onnx": "0" * 64}}))
    with pytest.raises(ModelIntegrityError, match=r"text\.onnx.*securecmr models export"):
        make_bundle(tmp_path / "out", models=models)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_install_script_is_one_offline_line() -> None:
    line = INSTALL_SH % "serve"
    assert (
        line.count("\n") == 1 and "--no-index" in line and "sha256sum" in line and "securecmr[serve]" in line
    )


@pytest.mark.slow
def test_bundle_installs_offline_into_a_fresh_venv(models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "adapters")])}
    r = subprocess.run(
        [sys.executable, "-m", "securecmr.cli.main", "bundle", str(out), "--models", str(models_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "SHA256SUMS").is_file() and (out / "home" / "models" / "manifest.json").is_file()
    assert any(p.name.startswith("securecmr-") for p in (out / "wheels").iterdir())
    offline = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "SECURECMR_"))}
    offline.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", VENV=str(tmp_path / "venv"))
    r = subprocess.run(
        ["sh", str(out / "install.sh")], env=offline, capture_output=True, text=True, timeout=1200
    )
    assert r.returncode == 0, r.stderr[-3000:]
    run_env = {**offline, "SECURECMR_HOME": str(out / "home")}
    exe = str(tmp_path / "venv" / "bin" / "securecmr")
    r = subprocess.run(
        [exe, "--version"], env=run_env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert r.returncode == 0 and r.stdout.startswith("securecmr ")
    r = subprocess.run(
        [exe, "models", "verify"], env=run_env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert r.returncode == 0 and "all files match" in r.stdout, r.stdout + r.stderr
    # the installed wheel serves the API docs and the console from its own files
    py = str(tmp_path / "venv" / "bin" / "python")
    make = "import securecmr; securecmr.Store.create('store', passphrase='pw').close()"
    assert subprocess.run([py, "-c", make], env=run_env, cwd=tmp_path, timeout=300).returncode == 0
    port = free_port()
    proc = subprocess.Popen(
        [exe, "serve", "store", "--port", str(port)],
        env={**run_env, "SECURECMR_PASSPHRASE": "pw"},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.3)
        for path in ("/console", "/console/static/console.js", "/docs/assets/swagger-ui-bundle.js"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
                assert resp.status == 200 and len(resp.read()) > 500, path
    finally:
        proc.terminate()
        proc.wait(timeout=60)

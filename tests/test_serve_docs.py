"""The curl examples of docs/guides/serve.md run as written against a live server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _serve_helpers import REPO, running
from _store_helpers import PASS

import securecmr

GUIDE = REPO / "docs" / "guides" / "serve.md"


def _blocks() -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("## Calling it from any language", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def test_guide_has_curl_examples() -> None:
    blocks = _blocks()
    assert len(blocks) >= 5 and all("curl" in b for b in blocks)


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("jq") is None, reason="needs curl and jq")
def test_curl_examples_run_against_a_live_server(tmp_path: Path) -> None:
    store = securecmr.Store.create(tmp_path / "store", passphrase=PASS)
    token = store.create_user("root", role="admin")
    store.close()
    with running(tmp_path / "store", PASS) as server:
        env = {**os.environ, "SECURECMR_URL": server.url, "TOKEN": token}
        for block in _blocks():
            r = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert r.returncode == 0, f"{block}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert any('"action":"search"' in line for line in lines)

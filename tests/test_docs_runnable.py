"""The code blocks the guides mark ``<!-- runnable -->`` run as written, in document order, in a
temporary directory (Python blocks in one namespace per guide; shell blocks with ``securecmr``
being this checkout's CLI)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"<!-- runnable -->\s*\n```(python|bash)\n(.*?)```", re.S)


def _guides() -> dict[str, list[tuple[str, str]]]:
    out = {}
    for md in sorted([*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"]):
        blocks = _BLOCK.findall(md.read_text(encoding="utf-8"))
        if blocks:
            out[str(md.relative_to(ROOT))] = blocks
    return out


GUIDES = _guides()


def test_there_are_runnable_blocks() -> None:
    assert sum(len(b) for b in GUIDES.values()) >= 2


@pytest.mark.parametrize("guide", sorted(GUIDES))
def test_runnable_blocks(guide: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "src"), str(ROOT / "adapters"), os.environ.get("PYTHONPATH", "")]
        ),
        "SECURECMR_NO_PROGRESS": "1",
    }
    shell_prelude = f'set -euo pipefail\nsecurecmr() {{ "{sys.executable}" -m securecmr.cli.main "$@"; }}\n'
    for n, (lang, code) in enumerate(GUIDES[guide], 1):
        cmd = [sys.executable, "-c", code] if lang == "python" else ["bash", "-c", shell_prelude + code]
        run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"{guide} block {n} ({lang}) failed:\n{run.stdout}\n{run.stderr}"
        assert "Traceback" not in run.stderr, f"{guide} block {n}:\n{run.stderr}"

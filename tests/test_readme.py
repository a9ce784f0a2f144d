"""The README's promises: exactly two quick-start commands, and the Python example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, flags=re.S | re.M)
    if match is None:
        pytest.fail(f"README has no '## {title}' section")
    return match.group(1)


def test_quick_start_is_exactly_make_demo_and_make_test() -> None:
    block = re.search(r"```bash\n(.*?)```", _section("Quick start"), flags=re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^test: ", makefile, flags=re.M)


def test_readme_links_resolve() -> None:
    for target in re.findall(r"\]\(((?:docs|examples)/[^)#]+)\)", README):
        assert (REPO / target).exists(), f"README links to missing {target}"


def test_python_example_runs(models_dir: Path, tmp_path: Path) -> None:
    from PIL import Image
    from skimage import data

    code = re.search(r"```python\n(.*?)```", _section("Fifteen lines of Python"), flags=re.S)
    assert code is not None
    assert len(code.group(1).strip().splitlines()) <= 16
    Image.fromarray(data.chelsea()).save(tmp_path / "cat.jpg")
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.jpg")
    for _run in range(2):  # the example can be rerun as it is (open_or_create, exist_ok, upsert)
        out = subprocess.run(
            [sys.executable, "-c", code.group(1)], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr[-2000:]
        lines = out.stdout.splitlines()
        # the nurse sees only ward "a": the cat photo, never the coffee photo
        assert lines[0].startswith("img-1 ")
        assert not any(line.startswith("img-2") for line in lines)
        assert "AuditReport(" in lines[-1]


def test_every_guide_is_in_the_docs_index_and_the_mkdocs_nav() -> None:
    index = (REPO / "docs" / "index.md").read_text(encoding="utf-8")
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    for page in sorted((REPO / "docs").glob("*/*.md")):
        rel = page.relative_to(REPO / "docs").as_posix()
        assert f"]({rel})" in index, f"docs/index.md does not link {rel}"
        assert rel in nav, f"mkdocs.yml nav lacks {rel}"

"""Education adapter with the built-in (exported ONNX) encoders: a student's question finds the page
and the minute of the lecture; rendered pages are indexed as images in the shared space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _education_helpers import make_pdf
from securecmr_education import EducationIndex, create_course_collection

import securecmr

pytestmark = pytest.mark.models

PAGES = [
    "The Golgi apparatus modifies, sorts and packages proteins into vesicles for secretion",
    "Gradient descent updates the weights of a neural network to minimise the loss",
    "The French Revolution began in 1789 with the storming of the Bastille",
]

SRT = """1
00:00:02,000 --> 00:00:20,000
Welcome back. Last week we looked at supply and demand curves in markets.

2
00:01:05,000 --> 00:01:25,000
Photosynthesis converts light energy into chemical energy stored in glucose.
"""


@pytest.fixture()
def index(models_dir: Path, tmp_path: Path) -> Any:
    store = securecmr.Store.create(tmp_path / "store", passphrase="a long test passphrase")
    coll = create_course_collection(store, "material")
    yield EducationIndex(coll, model_dir=models_dir, render_px=224, window_s=30.0, store_text=True)
    store.close()


def test_question_finds_page_and_lecture_minute(index: Any, tmp_path: Path) -> None:
    report = index.add_pdf(make_pdf(tmp_path / "mixed.pdf", PAGES), course="gen-ed")
    assert report.items == 3 and report.problems == []
    srt = tmp_path / "week3.srt"
    srt.write_text(SRT, encoding="utf-8")
    assert index.add_lecture(course="gen-ed", transcript=srt).items == 2

    top = index.search(text="how does the golgi apparatus package proteins?", k=3)[0]
    assert (top.source, top.page) == ("mixed", 1)
    assert index.search(text="how are neural networks trained?", k=1)[0].page == 2
    minute = index.search(text="how do plants turn sunlight into sugar?", k=1)[0]
    assert (minute.kind, minute.start, minute.end) == ("lecture", 60.0, 85.0)
    assert minute.where() == "gen-ed / week3 1:00-1:25"


def test_rendered_pages_are_encoded_as_images(index: Any, tmp_path: Path) -> None:
    index.add_pdf(make_pdf(tmp_path / "scan.pdf", [None, None]), course="gen-ed")
    hits = index.search(text="a blue rectangle", k=5)
    assert len(hits) == 2 and {h.modality for h in hits} == {"image"} and {h.page for h in hits} == {1, 2}
    vec = index.encode_images([np.zeros((32, 32, 3), np.uint8)])
    assert vec.shape == (1, 384) and np.isclose(np.linalg.norm(vec), 1.0, atol=1e-3)

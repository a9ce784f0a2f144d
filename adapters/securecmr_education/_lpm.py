"""The LPM (Lecture Presentations Multimodal) slide annotations: course, lecture, slide number, text.

``figure_annotations.csv`` has one row per slide: ``Input.save_dir`` (``data/<course>/<series>/
<lecture>/slide_<n>.jpg``), ``ocr`` (the slide's text, lower-cased OCR) and ``boundingBoxes``
(figures, JSON). Slide images are not part of the file.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from securecmr.errors import DocumentError, EmptyInputError

__all__ = ["LpmSlide", "load_lpm"]

_SLIDE = re.compile(r"slide_(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class LpmSlide:
    """One slide: ``course`` (e.g. ``bio-4``), ``lecture`` (``course/series/lecture``, unique),
    ``slide`` number, OCR ``text`` and the number of annotated figures."""

    course: str
    lecture: str
    slide: int
    text: str
    figures: int

    @property
    def id(self) -> str:
        return f"{self.lecture}#slide={self.slide}"


def load_lpm(path: str | os.PathLike[str], *, min_words: int = 1) -> list[LpmSlide]:
    """Read ``figure_annotations.csv`` (or a folder holding it). Slides with fewer than
    ``min_words`` words of text are left out; rows whose path does not have the
    ``data/<course>/<series>/<lecture>/slide_<n>`` shape raise :class:`DocumentError` naming the row."""
    p = Path(path)
    if p.is_dir():
        p = p / "figure_annotations.csv"
    if not p.is_file():
        raise DocumentError(f"{p.name}: not found; pass the LPM folder or its figure_annotations.csv")
    out: list[LpmSlide] = []
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"Input.save_dir", "ocr"} - set(reader.fieldnames or ())
        if missing:
            raise DocumentError(f"{p.name}: missing column(s) {sorted(missing)}")
        for row_no, row in enumerate(reader, start=2):
            parts = (row["Input.save_dir"] or "").strip("/").split("/")
            m = _SLIDE.search(parts[-1]) if parts else None
            if len(parts) < 5 or m is None:
                raise DocumentError(f"{p.name}, line {row_no}: unexpected slide path shape")
            text = " ".join((row["ocr"] or "").split())
            if len(text.split()) < min_words:
                continue
            try:
                figures = len(json.loads(row.get("boundingBoxes") or "[]"))
            except ValueError:
                figures = 0
            out.append(
                LpmSlide(
                    course=parts[1],
                    lecture="/".join(parts[1:-1]),
                    slide=int(m.group(1)),
                    text=text,
                    figures=figures,
                )
            )
    if not out:
        raise EmptyInputError(f"{p.name}: no slide with at least {min_words} word(s) of text")
    return out

"""Generated course material for the education tests: PDFs (PyMuPDF), subtitles, deterministic encoders."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pymupdf = pytest.importorskip("pymupdf")

DIM = 384


def make_pdf(
    path: Path,
    pages: Sequence[str | None],
    *,
    picture: int | None = None,
    caption: str = "",
    password: str | None = None,
) -> Path:
    """A PDF with one page per entry (``None`` = a page with no text layer, only a drawn shape);
    ``picture`` = 0-based page that gets an embedded picture with ``caption`` below it."""
    doc = pymupdf.open()
    for i, text in enumerate(pages):
        page = doc.new_page(width=480, height=360)
        if text is None:
            page.draw_rect(pymupdf.Rect(60, 60, 300, 200), color=(0, 0, 1), fill=(0.2, 0.4, 0.9))
        else:
            page.insert_textbox(pymupdf.Rect(30, 30, 450, 150), text, fontsize=14)
        if picture == i:
            rgb = np.zeros((64, 96, 3), np.uint8)
            rgb[:, :48] = (220, 30, 30)
            rgb[:, 48:] = (30, 200, 40)
            pix = pymupdf.Pixmap(pymupdf.csRGB, 96, 64, rgb.tobytes(), False)
            page.insert_image(pymupdf.Rect(100, 170, 292, 298), pixmap=pix)
            if caption:
                page.insert_text((100, 316), caption, fontsize=11)
    if password is None:
        doc.save(str(path))
    else:
        doc.save(
            str(path), encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=password, owner_pw=password + "-owner"
        )
    doc.close()
    return path


def damage_page_content(src: Path, dst: Path, page: int) -> Path:
    """Copy ``src`` with page ``page``'s (0-based) content stream replaced by bytes that do not
    inflate (a real kind of damage: the stream claims FlateDecode)."""
    doc = pymupdf.open(str(src))
    xref = doc[page].get_contents()[0]
    doc.update_stream(xref, b"these bytes are not zlib data", compress=False)
    doc.xref_set_key(xref, "Filter", "/FlateDecode")
    doc.save(str(dst))
    doc.close()
    return dst


def _word_vector(word: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(word.encode())).standard_normal(DIM)


class BagOfWords:
    """Deterministic 384-d text encoder: the sum of per-word random vectors, unit-normalised."""

    dim = DIM

    def encode(self, texts: Sequence[str], **_: Any) -> np.ndarray:
        rows = []
        for t in texts:
            words = [w.strip(".,?!:;()").lower() for w in t.split()]
            v = np.sum([_word_vector(w) for w in words if w], axis=0)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, np.float32)


_COLOUR = np.random.default_rng(7).standard_normal((3, DIM))


def _as_rgb(x: Any) -> np.ndarray:
    if isinstance(x, str | Path):
        from PIL import Image, UnidentifiedImageError

        from securecmr.errors import ImageDecodeError

        try:
            with Image.open(x) as im:
                return np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:  # as the real encoder reports it
            raise ImageDecodeError(f"{Path(x).name}: not a readable image") from exc
    return np.asarray(x)


class MeanColour:
    """Deterministic 384-d image / frame encoder: the mean colour through a fixed projection."""

    dim = DIM
    feature_dim = None

    def encode(self, images: Sequence[Any], *, output: str = "zeroshot", **_: Any) -> np.ndarray:
        means = np.stack([_as_rgb(x).reshape(-1, 3).mean(0) / 255.0 - 0.4 for x in images])
        y = means @ _COLOUR + 1e-3
        return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)

    def encode_frames(
        self, frames: Sequence[np.ndarray], *, output: str = "zeroshot", batch_size: int = 32
    ) -> np.ndarray:
        return self.encode(list(frames))


SRT = """1
00:00:01,000 --> 00:00:05,000
Today: the <i>golgi apparatus</i> packages proteins.

2
00:00:05,500 --> 00:00:09,000
Vesicles bud from the trans face &amp; travel to the membrane.

3
00:00:40,000 --> 00:00:44,000
Next, mitochondria make ATP by oxidative phosphorylation.
"""

VTT = """WEBVTT - lecture 2

NOTE this block is a comment

intro
00:00.000 --> 00:04.000 align:start position:10%
<v Prof>Neural networks learn weights by gradient descent</v>

00:00:35.000 --> 00:00:39.500
backpropagation computes the gradient layer by layer
"""

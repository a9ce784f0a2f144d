"""PDF slide decks and documents: text per page, a rendered page image, figures with captions.

Uses PyMuPDF (``pymupdf``, the ``education`` extra), imported on first use. Handling:

* a file that is not a PDF, is empty or is damaged beyond repair raises :class:`PDFReadError`;
  a damaged file that MuPDF repairs opens, and :attr:`PdfDocument.notes` says it was repaired;
* an encrypted PDF without ``password`` (or with a wrong one) raises :class:`EncryptedPDFError`;
  PDFs that only restrict permissions (owner password) open normally;
* a page with no text layer (a scan, a picture-only slide) yields empty ``text`` and its rendered
  image, with a note; nothing is OCR-ed;
* a page whose content is damaged yields what MuPDF could extract, with the library's warnings as a
  note; a page that raises while being read or rendered yields ``error`` (a :class:`PageError`
  message) and no content, and the following pages are still read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from securecmr._lazy import require
from securecmr.errors import ConfigurationError

from .errors import EncryptedPDFError, PDFReadError

__all__ = ["Figure", "PageContent", "PdfDocument"]

_SPACE = re.compile(r"\s+")
_MAX_NOTE = 200


def _pymupdf() -> Any:
    return require("pymupdf", extra="education")


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _warnings(mod: Any) -> str:
    w = str(mod.TOOLS.mupdf_warnings(reset=True) or "").strip()
    w = _SPACE.sub(" ", w)
    return w if len(w) <= _MAX_NOTE else w[: _MAX_NOTE - 3] + "..."


def _to_rgb(pix: Any) -> np.ndarray:
    h, w, n = int(pix.height), int(pix.width), int(pix.n)
    buf = np.frombuffer(pix.samples, dtype=np.uint8).reshape(h, int(pix.stride))
    arr = buf[:, : w * n].reshape(h, w, n)
    if n == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


@dataclass(frozen=True)
class Figure:
    """An embedded picture on a page: its ``bbox`` (PDF points), the nearest caption text (may be
    empty) and the rendered region."""

    index: int
    bbox: tuple[float, float, float, float]
    caption: str
    image: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class PageContent:
    """One page (``number`` is 1-based): its text (whitespace-normalised, may be empty), the rendered
    RGB image (``None`` when rendering was off or failed), its figures, notes on what was odd about
    it, and ``error`` when the page could not be read at all."""

    number: int
    text: str = field(repr=False)
    image: np.ndarray | None = field(repr=False)
    figures: tuple[Figure, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None

    @property
    def has_text(self) -> bool:
        return bool(self.text)


class PdfDocument:
    """An open PDF; iterate :meth:`pages` for :class:`PageContent` (streamed: one page in memory).

    Parameters: ``password`` (for encrypted files), ``render_px`` (longer side of the rendered page
    image; ``None`` = do not render), ``figures`` (extract embedded pictures with captions),
    ``min_figure`` (pictures whose shorter side is below this fraction of the page's shorter side are
    icons or logos and ignored).
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        password: str | None = None,
        render_px: int | None = 512,
        figures: bool = True,
        min_figure: float = 0.1,
    ) -> None:
        if render_px is not None and render_px < 32:
            raise ConfigurationError(f"render_px must be >= 32 or None, got {render_px}")
        if not 0.0 <= min_figure <= 1.0:
            raise ConfigurationError(f"min_figure must be in [0, 1], got {min_figure}")
        mod = _pymupdf()
        p = Path(path)
        self.name = p.name
        self.render_px = render_px
        self.figures = figures
        self.min_figure = min_figure
        if not p.is_file():
            raise PDFReadError(f"{self.name}: no such file")
        _warnings(mod)
        try:
            doc = mod.open(os.fspath(p), filetype="pdf")
        except Exception as exc:  # pymupdf raises FileDataError, EmptyFileError, RuntimeError, ...
            kind = "empty file" if "empty" in str(exc).lower() else "not a readable PDF"
            raise PDFReadError(f"{self.name}: {kind}; check that it is a complete PDF file") from None
        self._doc = doc
        try:
            if not getattr(doc, "is_pdf", True):
                raise PDFReadError(f"{self.name}: not a PDF (its content is another format)")
            if doc.needs_pass:
                if password is None:
                    raise EncryptedPDFError(f"{self.name} is encrypted; pass password= to index it")
                if not doc.authenticate(password):
                    raise EncryptedPDFError(f"{self.name}: the password does not open this PDF")
            if doc.page_count < 1:
                raise PDFReadError(f"{self.name}: the PDF has no pages")
        except Exception:
            doc.close()
            raise
        notes = []
        opened = _warnings(mod)
        if getattr(doc, "is_repaired", False):
            notes.append(
                f"the file was damaged and repaired on open ({opened or 'no detail'}); "
                "some pages may be empty"
            )
        self.notes: tuple[str, ...] = tuple(notes)

    def __repr__(self) -> str:
        return f"PdfDocument({self.name!r}, pages={self.page_count})"

    def __enter__(self) -> PdfDocument:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._doc is not None:
            self._doc.close()
            self._doc = None

    @property
    def page_count(self) -> int:
        return 0 if self._doc is None else int(self._doc.page_count)

    @property
    def title(self) -> str:
        meta = (self._doc.metadata or {}) if self._doc is not None else {}
        return _clean(str(meta.get("title") or ""))

    def pages(self) -> Iterator[PageContent]:
        """Yield every page in order; a page that fails yields ``error`` and the next one is read."""
        if self._doc is None:
            raise ConfigurationError("the document is closed")
        mod = _pymupdf()
        for i in range(self._doc.page_count):
            _warnings(mod)
            try:
                yield self._page(mod, i)
            except Exception as exc:  # one broken page must not stop the deck
                detail = _warnings(mod) or type(exc).__name__
                yield PageContent(i + 1, "", None, error=f"page {i + 1} could not be read ({detail})")

    def _page(self, mod: Any, i: int) -> PageContent:
        page = self._doc.load_page(i)
        text = _clean(page.get_text("text", sort=True))
        image = None
        figures: tuple[Figure, ...] = ()
        if self.render_px is not None:
            rect = page.rect
            zoom = self.render_px / max(float(rect.width), float(rect.height), 1.0)
            matrix = mod.Matrix(zoom, zoom)
            image = _to_rgb(page.get_pixmap(matrix=matrix, alpha=False, colorspace=mod.csRGB))
            if self.figures:
                figures = self._figures(mod, page, matrix)
        notes = []
        warn = _warnings(mod)
        if warn:
            notes.append(f"damaged page content ({warn})")
        if not text:
            notes.append(
                "no text layer; indexed by its rendered image only"
                if image is not None
                else "no text layer and no rendering; nothing to index"
            )
        return PageContent(i + 1, text, image, figures, tuple(notes))

    def _figures(self, mod: Any, page: Any, matrix: Any) -> tuple[Figure, ...]:
        blocks = [b for b in page.get_text("blocks", sort=True) if len(b) >= 7 and b[6] == 0]
        height = float(page.rect.height)
        min_side = self.min_figure * min(float(page.rect.width), height)
        out: list[Figure] = []
        seen: set[tuple[int, int, int, int]] = set()
        for info in page.get_image_info():
            x0, y0, x1, y1 = (float(v) for v in info.get("bbox", (0, 0, 0, 0)))
            key = (round(x0), round(y0), round(x1), round(y1))
            if key in seen or min(x1 - x0, y1 - y0) < max(min_side, 1.0):
                continue
            seen.add(key)
            clip = mod.Rect(x0, y0, x1, y1) & page.rect
            if clip.is_empty:
                continue
            img = _to_rgb(page.get_pixmap(matrix=matrix, clip=clip, alpha=False, colorspace=mod.csRGB))
            out.append(Figure(len(out), (x0, y0, x1, y1), _caption(blocks, (x0, y0, x1, y1), height), img))
        return tuple(out)


def _caption(blocks: list[Any], bbox: tuple[float, float, float, float], page_height: float) -> str:
    """The text block nearest below the picture (within 15 % of the page height) that overlaps it
    horizontally; else the nearest above (within 8 %); else a block starting with 'Figure'/'Fig.'."""
    x0, y0, x1, y1 = bbox
    below: list[tuple[float, str]] = []
    above: list[tuple[float, str]] = []
    labelled: list[tuple[float, str]] = []
    for b in blocks:
        bx0, by0, bx1, by1, text = float(b[0]), float(b[1]), float(b[2]), float(b[3]), _clean(str(b[4]))
        if not text:
            continue
        overlaps = min(x1, bx1) - max(x0, bx0) > 0
        if overlaps and -2.0 <= by0 - y1 <= 0.15 * page_height:
            below.append((by0 - y1, text))
        elif overlaps and -2.0 <= y0 - by1 <= 0.08 * page_height:
            above.append((y0 - by1, text))
        elif re.match(r"(?i)^(figure|fig\.)\s*\d", text):
            labelled.append((min(abs(by0 - y1), abs(y0 - by1)), text))
    for group in (below, above, labelled):
        if group:
            return min(group)[1][:500]
    return ""

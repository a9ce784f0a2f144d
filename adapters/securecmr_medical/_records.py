"""Records produced by the loaders, and the ingest report that lists skipped items."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._text import DeidReport

__all__ = ["IngestReport", "MedicalRecord", "SkippedItem"]


@dataclass(frozen=True)
class MedicalRecord:
    """One retrievable unit: de-identified text, an image (path or uint8 array) and labels.

    ``text`` is always de-identified (the raw text is never kept); ``deid`` says what was removed
    (categories and offsets only).
    """

    id: str
    text: str | None
    image: str | np.ndarray | None
    labels: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    deid: DeidReport | None = None

    def __repr__(self) -> str:
        img = (
            "none"
            if self.image is None
            else (f"array{tuple(self.image.shape)}" if isinstance(self.image, np.ndarray) else "path")
        )
        chars = 0 if self.text is None else len(self.text)
        return f"MedicalRecord(id={self.id!r}, text_chars={chars}, image={img}, labels={self.labels!r})"


@dataclass(frozen=True)
class SkippedItem:
    """An item the loader could not ingest: its name, the error class and the message."""

    item: str
    error: str
    message: str


@dataclass
class IngestReport:
    """What a loader did: records loaded, items skipped (with why), PHI removed per category."""

    loaded: int = 0
    skipped: list[SkippedItem] = field(default_factory=list)
    phi_removed: Counter[str] = field(default_factory=Counter)

    def skip(self, item: str, exc: BaseException) -> None:
        self.skipped.append(SkippedItem(item, type(exc).__name__, str(exc)))

    def add_deid(self, report: DeidReport | None) -> None:
        if report is not None:
            self.phi_removed.update(r.category for r in report.redactions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "skipped": [s.__dict__ for s in self.skipped],
            "phi_removed": dict(sorted(self.phi_removed.items())),
        }

    def __repr__(self) -> str:
        removed = dict(self.phi_removed)
        return f"IngestReport(loaded={self.loaded}, skipped={len(self.skipped)}, phi_removed={removed})"

"""Items and hits: the data types every layer shares (at the bottom of the import graph)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MODALITIES", "Hit", "Item"]

MODALITIES = ("text", "image", "video")


@dataclass
class Item:
    """One thing to store: raw ``text``/``image``/``video`` (encoded on add), or precomputed
    ``vectors`` / packed ``codes`` keyed by modality. ``labels``, ``attrs`` and ``ref`` are kept sealed."""

    id: str | int
    text: str | None = None
    image: Any = None
    video: Any = None
    labels: tuple[str, ...] | list[str] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    ref: str | None = None
    vectors: dict[str, Any] | None = None
    codes: dict[str, Any] | None = None

    def __repr__(self) -> str:
        kinds = [m for m in MODALITIES if getattr(self, m) is not None]
        kinds += [f"{m}:vector" for m in (self.vectors or {})] + [f"{m}:code" for m in (self.codes or {})]
        return f"Item(<id>, {', '.join(kinds)})"


@dataclass(frozen=True, slots=True)
class Hit:
    """A search result: ``score = 1 - distance / bits``; ``modality`` is the best-matching code's."""

    id: str | int
    score: float
    distance: int | None
    modality: str
    labels: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    ref: str | None = None

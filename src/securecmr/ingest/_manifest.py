"""Lenient, streaming reading of a JSONL ingest manifest: good rows and rejected rows, in batches.

Batch ``b`` is always the ``b``-th group of ``batch_size`` consecutive non-blank lines (rejected
lines included), so batch numbers depend only on the manifest's bytes and the batch size: that is
what lets a job journal say "batch 17 is done" and a resumed job trust it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Reject", "Row", "iter_batches"]


@dataclass
class Row:
    """One good manifest line. Workers only ever get ``line``, ``text``, ``image`` and ``video``."""

    line: int
    id: str | int
    text: str | None = None
    image: str | None = None
    video: str | None = None
    labels: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    ref: str | None = None

    def __repr__(self) -> str:  # ids may be sensitive: never in repr
        kinds = [m for m in ("text", "image", "video") if getattr(self, m) is not None]
        return f"Row(line={self.line}, {', '.join(kinds)})"

    def work(self) -> dict[str, Any]:
        """What a worker needs to encode this row (no id, labels, attrs or ref)."""
        out: dict[str, Any] = {"line": self.line}
        for m in ("text", "image", "video"):
            if getattr(self, m) is not None:
                out[m] = getattr(self, m)
        return out


@dataclass(frozen=True)
class Reject:
    """A manifest line that was not ingested, and why."""

    line: int
    reason: str


def _parse(obj: Any, base: Path) -> Row | str:
    """A Row, or the reason the line is rejected."""
    if not isinstance(obj, dict) or "id" not in obj:
        return "each line needs a JSON object with an 'id'"
    item_id = obj["id"]
    if isinstance(item_id, bool) or not isinstance(item_id, str | int) or item_id == "":
        return "'id' must be a non-empty string or an integer"
    text = obj.get("text")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        return "empty text" if isinstance(text, str) else "'text' must be a string"
    media: dict[str, str] = {}
    for key in ("image", "video"):
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            return f"'{key}' must be a file path"
        p = Path(value)
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            return f"{key} file not found: {value}"
        media[key] = str(p)
    if text is None and not media:
        return "no text, image or video to encode"
    labels = obj.get("labels", ())
    if not isinstance(labels, list | tuple) or not all(isinstance(x, str | int) for x in labels):
        return "'labels' must be a list of strings"
    attrs = obj.get("attrs", {})
    if not isinstance(attrs, dict):
        return "'attrs' must be an object"
    ref = obj.get("ref")
    if ref is not None and not isinstance(ref, str):
        return "'ref' must be a string"
    return Row(
        line=0,
        id=item_id,
        text=text,
        labels=tuple(str(x) for x in labels),
        attrs=dict(attrs),
        ref=ref,
        **media,
    )


def iter_batches(path: Path, batch_size: int) -> Iterator[tuple[int, list[Row], list[Reject]]]:
    """Yield ``(batch_no, rows, rejects)`` for consecutive groups of ``batch_size`` non-blank lines.

    Lines are rejected for bad JSON, a missing or malformed id, empty text, a missing media file, no
    content, or an id that an earlier line already used. Nothing here touches a store.
    """
    base = path.parent
    seen: dict[str | int, int] = {}
    rows: list[Row] = []
    rejects: list[Reject] = []
    count = 0
    batch_no = 0
    with open(path, "rb") as fh:
        for no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                parsed: Row | str = _parse(json.loads(raw.decode("utf-8")), base)
            except UnicodeDecodeError:
                parsed = "not UTF-8"
            except json.JSONDecodeError:
                parsed = "not valid JSON"
            if isinstance(parsed, Row):
                first = seen.get(parsed.id)
                if first is not None:
                    parsed = f"the id repeats line {first}"
                else:
                    seen[parsed.id] = no
                    parsed.line = no
                    rows.append(parsed)
            if isinstance(parsed, str):
                rejects.append(Reject(no, parsed))
            count += 1
            if count == batch_size:
                yield batch_no, rows, rejects
                batch_no += 1
                rows, rejects, count = [], [], 0
    if count:
        yield batch_no, rows, rejects

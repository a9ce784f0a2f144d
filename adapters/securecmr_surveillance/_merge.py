"""Merge search hits: adjacent segments from one camera's recording become one time range."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = ["HitLike", "TimeRange", "merge_hits"]

_Row = tuple[float, float, float, str, Mapping[str, Any], str | None]  # start, end, score, id, attrs, ref


class HitLike(Protocol):
    """What merging needs from a search hit (``securecmr.Hit`` has it)."""

    @property
    def id(self) -> str: ...

    @property
    def score(self) -> float: ...

    @property
    def attrs(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class TimeRange:
    """A search result: a camera, a time range in the recording, and the best segment score in it.

    ``start``/``end`` are seconds into the recording; ``wall_start``/``wall_end`` unix seconds when the
    recording's start time was given at ingest (see :meth:`wall_clock`). ``ids`` are the merged
    segment item ids (for legal hold or export), best first; ``refs`` the segments' footage
    references in time order (empty when the search did not return them).
    """

    camera: str
    site: str
    recording: str
    start: float
    end: float
    score: float
    ids: tuple[str, ...]
    wall_start: float | None = None
    wall_end: float | None = None
    refs: tuple[str, ...] = field(default=(), repr=False)

    def wall_clock(self) -> tuple[datetime, datetime] | None:
        """(start, end) as UTC datetimes, or None when the recording start was not given."""
        if self.wall_start is None or self.wall_end is None:
            return None
        return (datetime.fromtimestamp(self.wall_start, UTC),
                datetime.fromtimestamp(self.wall_end, UTC))

    def __str__(self) -> str:
        wc = self.wall_clock()
        when = (f"{wc[0]:%Y-%m-%d %H:%M:%S}-{wc[1]:%H:%M:%S} UTC" if wc
                else f"{self.start:7.2f}s-{self.end:7.2f}s")
        n = len(self.ids)
        segs = f"{n} segment" if n == 1 else f"{n} segments"
        return f"{self.camera} [{self.site}] {when} score={self.score:.3f} ({segs})"


def merge_hits(hits: Iterable[HitLike], *, gap_s: float = 1.0) -> list[TimeRange]:
    """Group hits by camera and recording, merge those whose time ranges touch or are at most
    ``gap_s`` apart, and return the ranges by best score (ties: camera, then start).

    Hits without ``camera``/``start``/``end`` attributes are skipped (they are not video segments).
    """
    groups: dict[tuple[str, str], list[_Row]] = {}
    for h in hits:
        a = h.attrs
        if not all(key in a for key in ("camera", "start", "end")):
            continue
        key = (str(a["camera"]), str(a.get("recording", "")))
        ref = getattr(h, "ref", None)
        groups.setdefault(key, []).append(
            (float(a["start"]), float(a["end"]), float(h.score), h.id, a, None if ref is None else str(ref)))
    out: list[TimeRange] = []
    for (camera, recording), items in groups.items():
        items.sort(key=lambda t: (t[0], t[1]))
        run = [items[0]]
        for item in items[1:]:
            if item[0] - max(r[1] for r in run) <= gap_s:
                run.append(item)
            else:
                out.append(_range(camera, recording, run))
                run = [item]
        out.append(_range(camera, recording, run))
    out.sort(key=lambda r: (-r.score, r.camera, r.start))
    return out


def _range(camera: str, recording: str, run: list[_Row]) -> TimeRange:
    first = min(run, key=lambda r: r[0])
    last = max(run, key=lambda r: r[1])
    best = sorted(run, key=lambda r: -r[2])
    ws, we = first[4].get("wall_start"), last[4].get("wall_end")
    return TimeRange(
        camera=camera, site=str(first[4].get("site", "")), recording=recording,
        start=first[0], end=last[1], score=best[0][2], ids=tuple(r[3] for r in best),
        wall_start=None if ws is None else float(ws), wall_end=None if we is None else float(we),
        refs=tuple(r[5] for r in sorted(run, key=lambda r: r[0]) if r[5] is not None),
    )

"""Segment records: one stored item per video segment (camera, site, times, sealed footage ref)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from securecmr import VideoEncoder
from securecmr.errors import ConfigurationError

from ._privacy import FrameFilter

__all__ = ["SegmentRecord", "iter_segment_records", "recording_id_for"]


def _wall(recording_start: datetime | None, offset: float) -> float | None:
    if recording_start is None:
        return None
    return recording_start.timestamp() + offset


@dataclass(frozen=True)
class SegmentRecord:
    """One video segment ready to store.

    ``start``/``end`` are seconds from the beginning of the file; ``wall_start``/``wall_end`` are
    unix seconds when the caller gave the recording's start time (else None). ``ref`` points at the
    footage (``<file>#t=<start>,<end>``, a media-fragment URI); the store seals it in encrypted
    collections.
    """

    id: str
    camera: str
    site: str
    recording: str
    start: float
    end: float
    wall_start: float | None
    wall_end: float | None
    ref: str
    keyframe_times: tuple[float, ...]
    vector: np.ndarray = field(repr=False)

    def attrs(self) -> dict[str, Any]:
        """The attributes stored with the item (access policies can use ``item.site``, ``item.camera``)."""
        out: dict[str, Any] = {
            "camera": self.camera, "site": self.site, "recording": self.recording,
            "start": round(self.start, 3), "end": round(self.end, 3), "kind": "video-segment",
        }
        if self.wall_start is not None and self.wall_end is not None:
            out["wall_start"] = round(self.wall_start, 3)
            out["wall_end"] = round(self.wall_end, 3)
        return out


def recording_id_for(path: str | os.PathLike[str], camera: str) -> str:
    """A stable id for one recording: the camera plus a short hash of the file name."""
    digest = hashlib.sha256(f"{camera}\x00{Path(path).name}".encode()).hexdigest()[:12]
    return f"{camera}-{digest}"


def _check_label(name: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string")


def iter_segment_records(
    encoder: VideoEncoder,
    path: str | os.PathLike[str],
    *,
    camera: str,
    site: str,
    recording_start: datetime | None = None,
    recording_id: str | None = None,
    ref_base: str | None = None,
    window_s: float | None = None,
    scene_change: bool | None = None,
    privacy_filter: FrameFilter | None = None,
) -> Iterator[SegmentRecord]:
    """Stream :class:`SegmentRecord` s for one video file (see ``VideoEncoder.iter_segments``).

    ``recording_start`` (timezone-aware; naive datetimes are taken as UTC) gives wall-clock times.
    Damaged files yield the records decoded before the damage and then raise ``VideoDecodeError``.
    """
    _check_label("camera", camera)
    _check_label("site", site)
    if recording_start is not None and recording_start.tzinfo is None:
        recording_start = recording_start.replace(tzinfo=UTC)
    rec = recording_id or recording_id_for(path, camera)
    base = ref_base if ref_base is not None else os.fspath(path)
    for seg in encoder.iter_segments(path, window_s=window_s, scene_change=scene_change,
                                     frame_filter=privacy_filter):
        yield SegmentRecord(
            id=f"{rec}@{round(seg.start * 1000):010d}",
            camera=camera, site=site, recording=rec, start=seg.start, end=seg.end,
            wall_start=_wall(recording_start, seg.start), wall_end=_wall(recording_start, seg.end),
            ref=f"{base}#t={seg.start:.3f},{seg.end:.3f}", keyframe_times=seg.keyframe_times,
            vector=seg.vector,
        )

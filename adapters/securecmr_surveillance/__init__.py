"""securecmr_surveillance: privacy-preserving search over CCTV footage, on securecmr's public API.

- Ingest video files (any container PyAV reads), streamed: fixed windows and scene-change cuts,
  keyframes, one pooled vector per segment; each item records camera, site, start/end (and
  wall-clock times when the recording start is given) and a reference to the footage that the
  store seals in encrypted collections (:class:`SurveillanceIndex`, :func:`iter_segment_records`).
- Search by text, example image or example clip; adjacent hits from one camera merge into one time
  range (:class:`TimeRange`, :func:`merge_hits`).
- Retention and access: :func:`create_surveillance_collection` sets a TTL (72 h by default) and a
  site policy (``item.site in user.sites``).
- Disclosure: :func:`disclose` records every export of footage in the audit log first.
- Privacy: :class:`FaceBlur` (OpenCV Haar cascades, off by default; see its limits) or any
  ``frame -> frame`` filter, applied before encoding.

Needs the ``surveillance`` extra (OpenCV) only for :class:`FaceBlur`.
"""

from __future__ import annotations

from ._disclose import FootageExport, disclose
from ._index import (
    DEFAULT_POLICY,
    DEFAULT_TTL_HOURS,
    IngestReport,
    PartialIngestError,
    SurveillanceIndex,
    create_surveillance_collection,
)
from ._merge import TimeRange, merge_hits
from ._privacy import FaceBlur, FrameFilter, compose_filters
from ._records import SegmentRecord, iter_segment_records, recording_id_for

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_TTL_HOURS",
    "FaceBlur",
    "FootageExport",
    "FrameFilter",
    "IngestReport",
    "PartialIngestError",
    "SegmentRecord",
    "SurveillanceIndex",
    "TimeRange",
    "compose_filters",
    "create_surveillance_collection",
    "disclose",
    "iter_segment_records",
    "merge_hits",
    "recording_id_for",
]

"""Ingest footage into a securecmr collection and search it by text, image or clip."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import securecmr
from securecmr import VideoEncoder
from securecmr.errors import ConfigurationError, EmptyInputError, VideoDecodeError

from ._merge import TimeRange, merge_hits
from ._privacy import FrameFilter
from ._records import SegmentRecord, iter_segment_records

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_TTL_HOURS",
    "IngestReport",
    "PartialIngestError",
    "SurveillanceIndex",
    "create_surveillance_collection",
]

DEFAULT_TTL_HOURS = 72.0
DEFAULT_POLICY = "item.site in user.sites"


class CollectionLike(Protocol):
    """The part of ``securecmr`` collections the index uses."""

    def add(self, items: Sequence[Any]) -> Any: ...

    def search(self, *, vector: np.ndarray | None = None, k: int = 10, **kwargs: Any) -> list[Any]: ...


class TextEncoderLike(Protocol):
    def encode(self, texts: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class IngestReport:
    """What one ingest stored: ``segments`` items covering ``seconds`` of video, ``ids`` in order."""

    recording: str
    camera: str
    segments: int
    seconds: float
    ids: tuple[str, ...]


class PartialIngestError(VideoDecodeError):
    """The video was damaged part-way. The segments decoded before the damage *are stored*
    (``report`` says which); the rest of the file was not indexed."""

    def __init__(self, message: str, report: IngestReport) -> None:
        super().__init__(message)
        self.report = report


def create_surveillance_collection(
    store: Any,
    name: str,
    *,
    ttl_hours: float | None = DEFAULT_TTL_HOURS,
    policy: str | None = DEFAULT_POLICY,
    bits: int = 64,
    protection: str = "salted+encrypted",
    hasher: Any = None,
) -> Any:
    """Create a footage collection: retention ``ttl_hours`` (default 72 h, enforced by the store),
    and a record-level ``policy`` restricting operators to their sites (default
    ``item.site in user.sites``; give users a ``sites`` attribute)."""
    return store.create_collection(name, bits=bits, protection=protection, hasher=hasher,
                                   ttl_hours=ttl_hours, policy=policy)


class SurveillanceIndex:
    """Segment, encode and store footage; search it and get merged per-camera time ranges.

    ``collection``: a securecmr collection (or a session-checked one); ``video_encoder``: a
    :class:`securecmr.VideoEncoder`; ``text_encoder``: for text queries (built-in by default, loaded
    on first use); ``privacy_filter``: applied to every sampled frame before encoding (e.g.
    :class:`FaceBlur`; off by default); ``batch_items``: segments per ``collection.add`` call (a
    crash loses at most that many); ``item_factory``: builds items (default ``securecmr.Item``).
    """

    def __init__(
        self,
        collection: CollectionLike,
        video_encoder: VideoEncoder,
        *,
        text_encoder: TextEncoderLike | None = None,
        privacy_filter: FrameFilter | None = None,
        batch_items: int = 16,
        item_factory: Callable[..., Any] | None = None,
    ) -> None:
        if batch_items < 1:
            raise ConfigurationError("batch_items must be >= 1")
        self.collection = collection
        self.video_encoder = video_encoder
        self.text_encoder = text_encoder
        self.privacy_filter = privacy_filter
        self.batch_items = batch_items
        self.item_factory = item_factory

    @classmethod
    def with_builtin_encoders(
        cls, collection: CollectionLike, *, model_dir: str | Path | None = None, int8: bool = True,
        num_threads: int | None = 1, **kwargs: Any,
    ) -> SurveillanceIndex:
        """An index using the built-in video (image) and text encoders (int8 by default)."""
        video = securecmr.load_video_encoder(model_dir, int8=int8, num_threads=num_threads)
        text = securecmr.load_text_encoder(model_dir, int8=int8, num_threads=num_threads)
        return cls(collection, video, text_encoder=text, **kwargs)

    def _make_item(self, rec: SegmentRecord) -> Any:
        factory = self.item_factory or securecmr.Item
        return factory(rec.id, attrs=rec.attrs(), ref=rec.ref, vectors={"video": rec.vector})

    def ingest(
        self,
        path: str | os.PathLike[str],
        *,
        camera: str,
        site: str,
        recording_start: datetime | None = None,
        recording_id: str | None = None,
        ref_base: str | None = None,
        window_s: float | None = None,
        scene_change: bool | None = None,
        skip_ids: Collection[str] = (),
    ) -> IngestReport:
        """Stream one video file into the collection, ``batch_items`` segments at a time.

        A file that cannot be opened or has no decodable frame raises ``VideoDecodeError`` and stores
        nothing; a file damaged part-way stores every segment decoded before the damage and then
        raises :class:`PartialIngestError` (a ``VideoDecodeError``) carrying the report.

        ``skip_ids``: segment ids already stored (e.g. ``PartialIngestError.report.ids`` from an earlier
        attempt on the same recording, now repaired); they are decoded but not added again. The
        report counts only what this call stored.
        """
        pending: list[SegmentRecord] = []
        stored: list[str] = []
        seconds = 0.0
        recording = ""

        def flush() -> None:
            nonlocal seconds
            if not pending:
                return
            self.collection.add([self._make_item(r) for r in pending])
            stored.extend(r.id for r in pending)
            seconds += sum(r.end - r.start for r in pending)
            pending.clear()

        def report() -> IngestReport:
            return IngestReport(recording=recording, camera=camera, segments=len(stored),
                                seconds=seconds, ids=tuple(stored))

        records = iter_segment_records(
            self.video_encoder, path, camera=camera, site=site, recording_start=recording_start,
            recording_id=recording_id, ref_base=ref_base, window_s=window_s, scene_change=scene_change,
            privacy_filter=self.privacy_filter,
        )
        try:
            for rec in records:
                recording = rec.recording
                if rec.id in skip_ids:
                    continue
                pending.append(rec)
                if len(pending) >= self.batch_items:
                    flush()
        except VideoDecodeError as exc:
            flush()
            if not stored:
                raise
            raise PartialIngestError(f"{exc} ({len(stored)} segments stored)", report()) from None
        flush()
        return report()

    def _query_vector(self, text: str | None, image: Any, clip: str | os.PathLike[str] | None) -> np.ndarray:
        given = [x is not None for x in (text, image, clip)]
        if sum(given) != 1:
            raise ConfigurationError("give exactly one of text=, image= or clip=")
        if text is not None:
            if not text.strip():
                raise EmptyInputError("the text query is empty; describe the event to search for")
            if self.text_encoder is None:
                self.text_encoder = securecmr.load_text_encoder(num_threads=1)
            return np.asarray(self.text_encoder.encode([text]), dtype=np.float32)[0]
        if image is not None:
            frame_encoder: Any = self.video_encoder.frame_encoder
            return np.asarray(frame_encoder.encode([image]), dtype=np.float32)[0]
        if clip is None:  # unreachable: exactly one was given
            raise ConfigurationError("give exactly one of text=, image= or clip=")
        return self.video_encoder.encode(clip, frame_filter=self.privacy_filter)[0]

    def search(
        self,
        *,
        text: str | None = None,
        image: Any = None,
        clip: str | os.PathLike[str] | None = None,
        k: int = 20,
        gap_s: float = 1.0,
    ) -> list[TimeRange]:
        """Search by a text description, an example image or an example clip.

        The ``k`` best segments are merged into time ranges per camera recording (segments at most
        ``gap_s`` apart join) and returned best first.
        """
        q = self._query_vector(text, image, clip)
        hits = self.collection.search(vector=q, k=k)
        return merge_hits(hits, gap_s=gap_s)

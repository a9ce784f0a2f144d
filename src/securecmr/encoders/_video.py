"""The video encoder: streamed frames -> image encoder -> pooled clip and segment vectors.

Frames are decoded with PyAV as a stream (see :mod:`._video_decode`), sampled uniformly (``fps``,
default 1 per second) and at scene changes, encoded in batches by any frame encoder (the built-in
image encoder by default) and pooled: the mean of the frames' unit vectors, renormalised. A clip
gives one vector; :meth:`VideoEncoder.iter_segments` streams one :class:`VideoSegment` per segment
(at most ``window_s`` seconds long, never spanning a scene cut) with start and end timestamps in
seconds from the frames' ``pts * time_base``.

Damaged files: a file that cannot be opened, or in which no frame decodes, raises
:class:`~securecmr.errors.VideoDecodeError`. When decoding fails part-way (a truncated or corrupted
file), :meth:`VideoEncoder.iter_segments` first yields every segment decoded before the damage (the
last one possibly shorter than ``window_s``) and then raises ``VideoDecodeError``; callers that
ingest segment by segment keep what they already stored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from .._progress import progress
from ..errors import ConfigurationError, EmptyInputError, ShapeError, VideoDecodeError
from ._video_decode import DecodeCursor, SampledFrame, iter_sampled_frames, prefetched

__all__ = ["FrameEncoder", "VideoEncoder", "VideoSegment", "load_video_encoder"]

Output = Literal["zeroshot", "features"]
FrameFilter = Callable[[np.ndarray], np.ndarray]
VideoPath = str | os.PathLike[str]


@runtime_checkable
class FrameEncoder(Protocol):
    """What the video encoder needs from an image encoder."""

    @property
    def dim(self) -> int: ...

    @property
    def feature_dim(self) -> int | None: ...

    def encode_frames(
        self, frames: Sequence[np.ndarray], *, output: Output = ..., batch_size: int = ...,
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class VideoSegment:
    """One segment of a video: ``[start, end)`` in seconds, its pooled unit ``vector`` and the times
    of the frames that were encoded for it (``keyframe_times``)."""

    start: float
    end: float
    vector: np.ndarray = field(repr=False)
    keyframe_times: tuple[float, ...]

    @property
    def duration(self) -> float:
        return self.end - self.start


def _pool(vectors: np.ndarray) -> np.ndarray:
    """Mean of unit rows, renormalised (float32)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, 1e-12)
    mean = unit.mean(axis=0)
    n = float(np.linalg.norm(mean))
    if n < 1e-12:  # opposite frames cancel out: fall back to the first frame
        return unit[0].astype(np.float32)
    return (mean / n).astype(np.float32)


class VideoEncoder:
    """Encode videos into the image encoder's space (one pooled vector per clip or per segment).

    Parameters: ``frame_encoder`` (anything with ``dim``, ``feature_dim`` and ``encode_frames``),
    ``fps`` (uniform sampling rate), ``scene_change`` (also sample at, and cut segments at, scene
    changes), ``scene_threshold`` (mean absolute grey-level difference between consecutive
    downscaled frames, in [0, 1], above which a frame starts a new scene), ``min_scene_s`` (shortest
    scene), ``window_s`` (default segment length), ``batch_size`` (frames per encoder call; on CPU
    small batches were as fast or faster per frame than 16), ``max_short_side`` (sampled frames are
    downscaled to this shorter side before encoding and filtering; None keeps full resolution) and
    ``prefetch`` (decode in a background thread, up to this many sampled frames ahead, so decoding
    overlaps encoding when a second core is free; 0 decodes inline).
    """

    def __init__(
        self,
        frame_encoder: FrameEncoder,
        *,
        fps: float = 1.0,
        scene_change: bool = True,
        scene_threshold: float = 0.12,
        min_scene_s: float = 0.5,
        window_s: float = 10.0,
        batch_size: int = 4,
        max_short_side: int | None = 320,
        prefetch: int = 8,
    ) -> None:
        if fps <= 0:
            raise ConfigurationError(f"fps must be > 0, got {fps}")
        if window_s <= 0:
            raise ConfigurationError(f"window_s must be > 0, got {window_s}")
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 < scene_threshold <= 1.0:
            raise ConfigurationError(f"scene_threshold must be in (0, 1], got {scene_threshold}")
        if prefetch < 0:
            raise ConfigurationError(f"prefetch must be >= 0, got {prefetch}")
        if max_short_side is not None and max_short_side < 16:
            raise ConfigurationError(f"max_short_side must be >= 16 or None, got {max_short_side}")
        self.frame_encoder = frame_encoder
        self.fps = fps
        self.scene_change = scene_change
        self.scene_threshold = scene_threshold
        self.min_scene_s = min_scene_s
        self.window_s = window_s
        self.batch_size = batch_size
        self.max_short_side = max_short_side
        self.prefetch = prefetch

    @property
    def dim(self) -> int:
        """Width of ``output="zeroshot"`` vectors (the shared text/image space)."""
        return int(self.frame_encoder.dim)

    @property
    def feature_dim(self) -> int | None:
        """Width of ``output="features"`` vectors, if the frame encoder has them."""
        return self.frame_encoder.feature_dim

    def __repr__(self) -> str:
        return (f"VideoEncoder(dim={self.dim}, fps={self.fps}, window_s={self.window_s}, "
                f"scene_change={self.scene_change}, scene_threshold={self.scene_threshold})")

    def _width(self, output: Output) -> int:
        if output == "zeroshot":
            return self.dim
        if output == "features":
            if self.feature_dim is None:
                raise ConfigurationError("this frame encoder has no features output; use output='zeroshot'")
            return int(self.feature_dim)
        raise ConfigurationError(f"output must be 'zeroshot' or 'features', not {output!r}")

    def _encode(
        self, frames: list[np.ndarray], output: Output, frame_filter: FrameFilter | None
    ) -> np.ndarray:
        if frame_filter is not None:
            filtered = []
            for f in frames:
                g = frame_filter(f)
                if not isinstance(g, np.ndarray) or g.shape != f.shape or g.dtype != np.uint8:
                    raise ShapeError("frame_filter must return a uint8 array of the frame's shape")
                filtered.append(g)
            frames = filtered
        out = np.asarray(self.frame_encoder.encode_frames(frames, output=output, batch_size=self.batch_size),
                         dtype=np.float32)
        if out.shape != (len(frames), self._width(output)):
            raise ShapeError(f"frame encoder returned shape {out.shape}, expected ({len(frames)}, "
                             f"{self._width(output)})")
        return out

    def _segments(
        self, path: VideoPath, *, window_s: float | None, scene_change: bool, output: Output,
        frame_filter: FrameFilter | None, fps: float | None,
    ) -> Iterator[tuple[VideoSegment, np.ndarray]]:
        """Yield (segment, its frame vectors). Frames are encoded as soon as ``batch_size`` of them
        wait, so at most one batch of decoded frames is held, however long a segment or clip is."""
        self._width(output)
        waiting: list[SampledFrame] = []  # decoded, not yet encoded
        chunks: list[np.ndarray] = []  # encoded vectors of the current segment
        times: list[float] = []
        last_end = 0.0

        def encode_waiting() -> None:
            if waiting:
                chunks.append(self._encode([f.rgb for f in waiting], output, frame_filter))
                waiting.clear()

        def flush(end: float) -> tuple[VideoSegment, np.ndarray]:
            encode_waiting()
            vecs = np.concatenate(chunks, axis=0)
            seg = VideoSegment(start=times[0], end=end, vector=_pool(vecs), keyframe_times=tuple(times))
            chunks.clear()
            times.clear()
            return seg, vecs

        cursor = DecodeCursor()
        decoded = iter_sampled_frames(
            path, fps=self.fps if fps is None else fps, scene_change=scene_change,
            scene_threshold=self.scene_threshold, min_scene_s=self.min_scene_s,
            max_short_side=self.max_short_side, window_s=window_s, cursor=cursor,
        )
        frames: Iterator[SampledFrame] = prefetched(decoded, self.prefetch) if self.prefetch else decoded
        try:
            for frame in frames:
                if frame.boundary and times:
                    yield flush(frame.time)
                waiting.append(frame)
                times.append(frame.time)
                last_end = frame.end
                if len(waiting) >= self.batch_size:
                    encode_waiting()
        except VideoDecodeError:
            if times:  # keep what decoded before the damage, then report it
                yield flush(max(cursor.end, last_end))
            raise
        if times:
            yield flush(max(cursor.end, last_end))

    def iter_segments(
        self,
        path: VideoPath,
        *,
        window_s: float | None = None,
        scene_change: bool | None = None,
        output: Output = "zeroshot",
        frame_filter: FrameFilter | None = None,
    ) -> Iterator[VideoSegment]:
        """Stream the segments of one video, in order.

        ``window_s`` (default: the encoder's) bounds a segment's length; with ``scene_change``
        (default: the encoder's) a scene cut also starts a new segment. ``frame_filter`` is applied
        to every sampled frame before encoding (e.g. face blurring); it gets and returns an
        (H, W, 3) uint8 RGB array. Segment ends are the next segment's start; the last one ends one
        frame after its last decoded frame.

        Raises :class:`VideoDecodeError` for unreadable files or files with no decodable frame; a file
        damaged part-way yields the segments decoded before the damage, then raises.
        """
        w = self.window_s if window_s is None else window_s
        sc = self.scene_change if scene_change is None else scene_change
        for seg, _ in self._segments(path, window_s=w, scene_change=sc, output=output,
                                     frame_filter=frame_filter, fps=None):
            yield seg

    def encode(
        self,
        paths: VideoPath | Sequence[VideoPath],
        *,
        output: Output = "zeroshot",
        frame_filter: FrameFilter | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """(n, dim) float32 unit rows, one per video: the pooled vector of all its sampled frames.

        A single path (not in a list) gives one row. Any damaged video raises
        :class:`VideoDecodeError` (whole-clip vectors are not produced from partial files).
        """
        items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        if not items:
            raise EmptyInputError("no videos to encode; pass a non-empty list of paths")
        width = self._width(output)
        out = np.empty((len(items), width), dtype=np.float32)
        for i, p in enumerate(progress(items, total=len(items), description="encoding videos",
                                       show=show_progress, min_total=8)):
            chunks = [vecs for _, vecs in self._segments(
                p, window_s=None, scene_change=self.scene_change, output=output,
                frame_filter=frame_filter, fps=None)]
            out[i] = _pool(np.concatenate(chunks, axis=0))
        return out


def load_video_encoder(
    model_dir: str | Path | None = None,
    *,
    int8: bool = False,
    num_threads: int | None = None,
    **params: Any,
) -> VideoEncoder:
    """The built-in video encoder: the built-in image encoder applied to sampled frames.

    ``model_dir``, ``int8`` and ``num_threads`` go to :func:`securecmr.load_image_encoder`; other
    keyword arguments (``fps``, ``window_s``, ``scene_threshold``, ...) to :class:`VideoEncoder`.
    Vectors are in the text encoder's 384-d space (``output="zeroshot"``) or the 1280-d image
    features (``output="features"``).
    """
    from ._load import load_image_encoder

    return VideoEncoder(load_image_encoder(model_dir, int8=int8, num_threads=num_threads), **params)

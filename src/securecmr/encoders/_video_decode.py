"""Streaming video decoding for the video encoder: uniform + scene-change frame sampling.

Frames are decoded one at a time with PyAV and only the *sampled* frames are kept (downscaled), so
memory stays flat however long the recording is. Every decoded frame is reduced to a tiny grey
thumbnail for the cheap scene-change test (mean absolute difference between consecutive thumbnails,
in [0, 1]).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError, VideoDecodeError

__all__ = ["DecodeCursor", "SampledFrame", "iter_sampled_frames", "open_video", "prefetched"]

_THUMB_W, _THUMB_H = 32, 24


@dataclass(frozen=True)
class SampledFrame:
    """One decoded frame chosen by the sampler.

    ``time`` is the presentation time in seconds (``pts * time_base``); ``cut`` is True when the frame
    starts a new scene; ``end`` is the time the frame stops being shown (``time`` + one frame
    duration), which the segmenter uses for the end of the last segment; ``boundary`` is True when
    the frame opens a new segment (first frame, a scene cut, or ``window_s`` elapsed since the
    current segment started).
    """

    time: float
    end: float
    rgb: np.ndarray
    cut: bool
    boundary: bool


@dataclass
class DecodeCursor:
    """Where decoding got to: frames decoded and the end time of the last decoded frame (sampled or
    not). The segmenter reads it to end the last segment where the video really ends."""

    frames: int = 0
    end: float = 0.0


def _display_name(path: str | os.PathLike[str]) -> str:
    return Path(path).name


def open_video(path: str | os.PathLike[str]) -> tuple[Any, Any]:
    """Open ``path`` and return (container, first video stream), or raise VideoDecodeError."""
    import av

    name = _display_name(path)
    if not Path(path).is_file():
        raise VideoDecodeError(f"video {name!r} does not exist or is not a file; check the path")
    try:
        container = av.open(os.fspath(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise VideoDecodeError(
            f"cannot open video {name!r}: not a readable video container ({type(exc).__name__}); "
            "check the file is complete and in a format FFmpeg reads"
        ) from None
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"video {name!r} has no video stream; pass a file with video in it")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.thread_count = 1
    return container, stream


_LUMA_FIRST = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21",
               "gray", "yuv410p", "yuv411p", "yuv440p"}


def _thumbnail(frame: Any) -> np.ndarray:
    """A 24x32 grey thumbnail (int16): block means of the luma plane when the frame has one (no
    colour conversion, ~0.2 ms for SD), else a scaled grey conversion."""
    if frame.format.name in _LUMA_FIRST and frame.height >= _THUMB_H and frame.width >= _THUMB_W:
        plane = frame.planes[0]
        raw = np.frombuffer(plane, np.uint8, count=plane.line_size * frame.height)
        y = raw.reshape(frame.height, plane.line_size)[:, : frame.width]
        y = y[:: max(1, frame.height // (4 * _THUMB_H)), :: max(1, frame.width // (4 * _THUMB_W))]
        bh, bw = y.shape[0] // _THUMB_H, y.shape[1] // _THUMB_W
        blocks = y[: bh * _THUMB_H, : bw * _THUMB_W].reshape(_THUMB_H, bh, _THUMB_W, bw)
        # floor of the block mean, in integers (the same values as a float mean then truncation)
        return (blocks.sum(axis=(1, 3), dtype=np.int32) // (bh * bw)).astype(np.int16)
    thumb = frame.to_ndarray(format="gray", width=_THUMB_W, height=_THUMB_H)
    return np.asarray(thumb, dtype=np.int16)


def _scaled_size(width: int, height: int, max_short_side: int | None) -> tuple[int, int]:
    short = min(width, height)
    if max_short_side is None or short <= max_short_side:
        return width, height
    s = max_short_side / short
    return max(1, round(width * s)), max(1, round(height * s))


def _declared_duration(stream: Any, step: float) -> float | None:
    """The video stream's length as its header declares it (None when unknown)."""
    values = []
    if stream.duration is not None and stream.time_base is not None:
        values.append(float(stream.duration * stream.time_base))
    if stream.frames:
        values.append(stream.frames * step)
    return max(values) if values else None


def _frame_step(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    try:
        return 1.0 / float(rate) if rate else 0.04
    except ZeroDivisionError:
        return 0.04


def iter_sampled_frames(
    path: str | os.PathLike[str],
    *,
    fps: float = 1.0,
    scene_change: bool = True,
    scene_threshold: float = 0.12,
    min_scene_s: float = 0.5,
    max_short_side: int | None = 320,
    window_s: float | None = None,
    cursor: DecodeCursor | None = None,
) -> Generator[SampledFrame, None, None]:
    """Decode ``path`` as a stream and yield the sampled frames in presentation order.

    A frame is sampled when at least ``1 / fps`` seconds passed since the last sample, when it starts a
    new scene (``scene_change`` and its thumbnail differs from the previous frame's by more than
    ``scene_threshold``, at least ``min_scene_s`` after the previous cut), and when it opens a new
    segment: a segment lasts at most ``window_s`` seconds (None: unbounded) and never spans a scene
    cut, and its first frame is always sampled (so every segment has at least one frame).

    Raises :class:`VideoDecodeError` if the file cannot be opened, has no decodable frame, or fails
    part-way (after yielding every frame decoded before the damage).
    """
    if fps <= 0:
        raise ConfigurationError(f"fps must be > 0, got {fps}")
    if not 0.0 < scene_threshold <= 1.0:
        raise ConfigurationError(f"scene_threshold must be in (0, 1], got {scene_threshold}")
    if window_s is not None and window_s <= 0:
        raise ConfigurationError(f"window_s must be > 0, got {window_s}")
    if min_scene_s < 0:
        raise ConfigurationError(f"min_scene_s must be >= 0, got {min_scene_s}")
    import av

    name = _display_name(path)
    cur = cursor if cursor is not None else DecodeCursor()
    container, stream = open_video(path)
    step = _frame_step(stream)
    period = 1.0 / fps
    tb = float(stream.time_base) if stream.time_base is not None else None
    # times are relative to the stream's start (MPEG-TS and some cameras start pts far from zero)
    origin = float(stream.start_time) * tb if stream.start_time is not None and tb is not None else 0.0
    size: tuple[int, int] | None = None
    prev_thumb: np.ndarray | None = None
    next_sample = -np.inf
    last_cut = -np.inf
    seg_start: float | None = None
    n_decoded = 0
    last_time = 0.0
    try:
        try:
            frames = container.decode(stream)
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                if frame.pts is not None and tb is not None:
                    t = float(frame.pts) * tb - origin
                else:
                    t = n_decoded * step
                t = max(t, 0.0)
                n_decoded += 1
                last_time = t
                cur.frames = n_decoded
                cur.end = max(cur.end, t + step)
                cut = False
                if scene_change:
                    thumb = _thumbnail(frame)
                    if prev_thumb is not None:
                        diff = int(np.abs(thumb - prev_thumb).sum()) / thumb.size / 255.0
                        if diff > scene_threshold and t - last_cut >= min_scene_s:
                            cut = True
                            last_cut = t
                    prev_thumb = thumb
                boundary = (
                    seg_start is None
                    or cut
                    or (window_s is not None and t + 1e-9 >= seg_start + window_s)
                )
                if boundary:
                    seg_start = t
                if not (boundary or t + 1e-9 >= next_sample):
                    continue
                next_sample = (np.floor(t / period + 1e-6) + 1) * period  # a fixed grid: no drift
                if size is None:
                    size = _scaled_size(frame.width, frame.height, max_short_side)
                rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                yield SampledFrame(time=t, end=t + step, rgb=rgb, cut=cut, boundary=boundary)
        except (av.FFmpegError, ValueError, EOFError, OSError) as exc:
            where = f"after {n_decoded} frames ({last_time:.2f} s)" if n_decoded else "before any frame"
            raise VideoDecodeError(
                f"video {name!r} is damaged: decoding failed {where} ({type(exc).__name__}); "
                "segments before the damage were kept; re-encode or repair the file to index the rest"
            ) from None
        if n_decoded == 0:
            raise VideoDecodeError(
                f"video {name!r} has no decodable frame; the file is empty, truncated or not a video"
            )
        declared = _declared_duration(stream, step)
        if declared is not None and cur.end < declared - max(3 * step, 0.5, 0.02 * declared):
            raise VideoDecodeError(
                f"video {name!r} is truncated: frames decoded up to {cur.end:.2f} s of the "
                f"{declared:.2f} s its header declares; segments before the damage were kept; "
                "re-encode or repair the file to index the rest"
            )
    finally:
        container.close()


_DONE = object()


def prefetched(frames: Generator[SampledFrame, None, None], depth: int) -> Iterator[SampledFrame]:
    """Run ``frames`` (a decoding generator) in a background thread, at most ``depth`` frames ahead.

    Decoding (PyAV releases the GIL) then overlaps encoding (onnxruntime releases it too). Errors
    raised by the producer are re-raised here, in order, after the frames decoded before them.
    Closing this generator stops the producer and closes the file.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for f in frames:
                if not put(f):
                    break
        except BaseException as exc:  # handed to the consumer, re-raised there
            put(exc)
            return
        finally:
            if stop.is_set():
                frames.close()
        put(_DONE)

    worker = threading.Thread(target=produce, name="securecmr-video-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()

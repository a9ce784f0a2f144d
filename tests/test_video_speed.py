"""The faster video path gives the same numbers: table-driven normalisation, integer thumbnails,
small batches and the default decode thread."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from securecmr.encoders import VideoEncoder
from securecmr.encoders._imageio import preprocess
from securecmr.encoders._video_decode import _thumbnail


def _reference_preprocess(rgb: np.ndarray, *, image_size: int, resize: int, mean: tuple[float, ...],
                          std: tuple[float, ...], interpolation: str) -> np.ndarray:
    """The straightforward version: resize, crop, then ``(x / 255 - mean) / std`` on the image."""
    from PIL import Image

    resample = Image.Resampling.BICUBIC if interpolation == "bicubic" else Image.Resampling.BILINEAR
    h, w = rgb.shape[:2]
    scale = resize / min(h, w)
    nh, nw = max(image_size, round(h * scale)), max(image_size, round(w * scale))
    img = Image.fromarray(rgb)
    if (nh, nw) != (h, w):
        img = img.resize((nw, nh), resample=resample)
    top, left = (nh - image_size) // 2, (nw - image_size) // 2
    crop = np.asarray(img, dtype=np.float32)[top : top + image_size, left : left + image_size]
    norm = (crop / np.float32(255.0) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(norm.transpose(2, 0, 1), dtype=np.float32)


@pytest.mark.parametrize("shape", [(320, 427, 3), (256, 256, 3), (600, 200, 3), (12, 17, 3)])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_preprocess_is_bit_identical_to_normalising_the_image(shape: tuple[int, int, int],
                                                              interpolation: str) -> None:
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    for mean, std in [((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), ((0.481, 0.458, 0.408), (0.269, 0.261, 0.276))]:
        got = preprocess(rgb, image_size=224, resize=256, mean=mean, std=std, interpolation=interpolation)
        want = _reference_preprocess(rgb, image_size=224, resize=256, mean=mean, std=std,
                                     interpolation=interpolation)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        assert np.array_equal(got, want)


@pytest.mark.parametrize("size", [(768, 576), (640, 272), (176, 144), (64, 48)])
def test_integer_thumbnail_equals_the_truncated_block_mean(size: tuple[int, int]) -> None:
    w, h = size
    rgb = np.random.default_rng(w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    thumb = _thumbnail(frame)
    assert thumb.shape == (24, 32) and thumb.dtype == np.int16
    if h >= 24 and w >= 32:
        y = frame.to_ndarray()[:h]  # the luma plane of a yuv420p frame
        y = y[:: max(1, h // 96), :: max(1, w // 128)]
        bh, bw = y.shape[0] // 24, y.shape[1] // 32
        ref = y[: bh * 24, : bw * 32].reshape(24, bh, 32, bw).mean(axis=(1, 3)).astype(np.int16)
        assert np.array_equal(thumb, ref)


class _Mean:
    """A deterministic frame encoder that records the batch sizes it is called with."""

    dim = 3
    feature_dim = None

    def __init__(self) -> None:
        self.batches: list[int] = []

    def encode_frames(self, frames: list[np.ndarray], *, output: str = "zeroshot",
                      batch_size: int = 32) -> np.ndarray:
        self.batches.append(len(frames))
        return np.stack([f.reshape(-1, 3).mean(axis=0) + 1.0 for f in frames]).astype(np.float32)


def _video(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(25 * 12):
            a = np.full((48, 64, 3), (40 * (i // 75)) % 256, np.uint8)  # a cut every 3 s
            a[i % 48, :] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_default_decode_thread_and_small_batches_give_the_same_segments(tmp_path: Path) -> None:
    path = _video(tmp_path / "v.avi")
    fast, slow = _Mean(), _Mean()
    default = VideoEncoder(fast, window_s=4.0, fps=4.0)
    assert default.prefetch > 0 and default.batch_size <= 8
    a = list(default.iter_segments(path))
    b = list(VideoEncoder(slow, window_s=4.0, fps=4.0, prefetch=0, batch_size=16).iter_segments(path))
    assert [(s.start, s.end, s.keyframe_times) for s in a] == [(s.start, s.end, s.keyframe_times) for s in b]
    assert all(np.array_equal(x.vector, y.vector) for x, y in zip(a, b, strict=True))
    assert max(fast.batches) <= default.batch_size < max(slow.batches)

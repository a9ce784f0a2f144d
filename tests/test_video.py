"""Video encoder: streaming decode, uniform + scene-change sampling, segments, pooling, damaged files.

Videos are generated with PyAV: solid colour blocks that switch at known times (plus a moving dark
line so consecutive frames differ a little).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest

import securecmr
from securecmr.encoders import VideoEncoder, VideoSegment
from securecmr.errors import (
    ConfigurationError,
    EmptyInputError,
    InputError,
    ShapeError,
    VideoDecodeError,
)

FPS = 25
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
BLOCKS = [(RED, 2.0), (GREEN, 3.0), (BLUE, 1.5), (WHITE, 4.0)]  # cuts at 2.0, 5.0, 6.52 (frame-rounded)
FRAME = 1.0 / FPS


def make_video(path: Path, blocks: Sequence[tuple[tuple[int, int, int], float]], *, fps: int = FPS,
               codec: str = "mpeg4", size: tuple[int, int] = (64, 48)) -> Path:
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    for colour, seconds in blocks:
        for i in range(round(seconds * fps)):
            a = np.empty((size[1], size[0], 3), np.uint8)
            a[:] = colour
            a[i % size[1], :] = [c // 2 for c in colour]
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


class ColourEncoder:
    """A deterministic frame encoder: mean RGB colour and colour histogram through a fixed projection."""

    dim = 8
    feature_dim = 12

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self._w = {"zeroshot": rng.normal(size=(3 + 12, 8)), "features": rng.normal(size=(3 + 12, 12))}
        self.calls = 0
        self.frames_seen = 0

    def encode_frames(self, frames: Sequence[np.ndarray], *, output: str = "zeroshot",
                      batch_size: int = 32) -> np.ndarray:
        self.calls += 1
        self.frames_seen += len(frames)
        self.max_batch = max(getattr(self, "max_batch", 0), len(frames))
        rows = []
        for f in frames:
            px = f.reshape(-1, 3).astype(np.float64) / 255.0
            hist = np.concatenate([np.histogram(px[:, c], bins=4, range=(0, 1))[0] for c in range(3)])
            rows.append(np.concatenate([px.mean(0), hist / len(px)]))
        y = np.asarray(rows) @ self._w[output]
        return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    out = {
        "avi": make_video(d / "blocks.avi", BLOCKS),
        "mp4": make_video(d / "blocks.mp4", BLOCKS, codec="libx264" if "libx264" in av.codecs_available
                          else "mpeg4"),
        "ts": make_video(d / "blocks.ts", BLOCKS),
        "mkv": make_video(d / "blocks.mkv", BLOCKS),
        "red": make_video(d / "red.avi", [(RED, 3.0)]),
        "blue": make_video(d / "blue.avi", [(BLUE, 3.0)]),
    }
    data = out["avi"].read_bytes()
    (d / "truncated.avi").write_bytes(data[: len(data) * 6 // 10])
    out["truncated"] = d / "truncated.avi"
    mp4 = out["mp4"].read_bytes()
    (d / "truncated.mp4").write_bytes(mp4[: len(mp4) // 2])
    out["truncated_mp4"] = d / "truncated.mp4"
    (d / "empty.mp4").write_bytes(b"")
    out["empty"] = d / "empty.mp4"
    (d / "junk.avi").write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    out["junk"] = d / "junk.avi"
    return out


def spans(segments: Sequence[VideoSegment]) -> list[float]:
    """Flattened [start0, end0, start1, end1, ...] (pytest.approx takes flat sequences)."""
    return [t for s in segments for t in (s.start, s.end)]


@pytest.mark.parametrize("kind", ["avi", "mp4", "ts", "mkv"])
def test_segments_cut_at_scene_changes_with_timestamps(videos: dict[str, Path], kind: str) -> None:
    enc = VideoEncoder(ColourEncoder(), window_s=30.0)
    segs = list(enc.iter_segments(videos[kind]))
    expected = [(0.0, 2.0), (2.0, 5.0), (5.0, 6.52), (6.52, 10.52)]
    assert len(segs) == len(expected)
    for (s, e), seg in zip(expected, segs, strict=True):
        assert seg.start == pytest.approx(s, abs=FRAME + 1e-6)
        assert seg.end == pytest.approx(e, abs=FRAME + 1e-6)
        assert seg.keyframe_times[0] == seg.start
        assert all(seg.start <= t < seg.end for t in seg.keyframe_times)
        assert seg.vector.shape == (8,) and seg.vector.dtype == np.float32
        assert np.linalg.norm(seg.vector) == pytest.approx(1.0, abs=1e-5)
    # consecutive segments tile the video
    assert all(a.end == b.start for a, b in itertools.pairwise(segs))
    # each segment is one colour: its pooled vector matches a single frame of that colour
    colours = ColourEncoder()
    for (colour, _), seg in zip(BLOCKS, segs, strict=True):
        frame = np.empty((48, 64, 3), np.uint8)
        frame[:] = colour
        ref = colours.encode_frames([frame])[0]
        assert float(ref @ seg.vector) > 0.95
    assert float(segs[0].vector @ segs[2].vector) < 0.9  # red and blue differ


def test_fixed_windows_without_scene_change(videos: dict[str, Path]) -> None:
    enc = VideoEncoder(ColourEncoder(), fps=1.0)
    segs = list(enc.iter_segments(videos["avi"], window_s=4.0, scene_change=False))
    assert spans(segs) == pytest.approx([0.0, 4.0, 4.0, 8.0, 8.0, 10.52], abs=1e-6)
    # uniform 1 fps sampling
    assert segs[0].keyframe_times == pytest.approx((0.0, 1.0, 2.0, 3.0))
    assert segs[-1].keyframe_times == pytest.approx((8.0, 9.0, 10.0))


def test_window_and_cuts_combine(videos: dict[str, Path]) -> None:
    segs = list(VideoEncoder(ColourEncoder(), window_s=2.0).iter_segments(videos["avi"]))
    starts = [s.start for s in segs]
    assert starts == pytest.approx([0.0, 2.0, 4.0, 5.0, 6.52, 8.52], abs=1e-6)
    assert all(s.duration <= 2.0 + 1e-6 for s in segs)
    # cut frames are sampled even between uniform samples
    assert any(t == pytest.approx(6.52) for t in segs[4].keyframe_times)


def test_scene_threshold_controls_cuts(videos: dict[str, Path]) -> None:
    # green -> blue and red -> green are big grey-level jumps; a threshold of 1.0 never cuts
    enc = VideoEncoder(ColourEncoder(), window_s=30.0, scene_threshold=1.0)
    segs = list(enc.iter_segments(videos["avi"]))
    assert spans(segs) == pytest.approx([0.0, 10.52])


def test_encode_clips_is_pooled_unit_vector(videos: dict[str, Path]) -> None:
    enc = VideoEncoder(ColourEncoder())
    x = enc.encode([videos["red"], videos["blue"], videos["red"]])
    assert x.shape == (3, 8) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(x[0], x[2], atol=1e-6)
    assert float(x[0] @ x[1]) < 0.9
    single = enc.encode(videos["red"])
    assert single.shape == (1, 8)
    feats = enc.encode(str(videos["avi"]), output="features")
    assert feats.shape == (1, 12)
    # the clip vector is the mean of all sampled frames' unit vectors
    seg_frames = sum(len(s.keyframe_times) for s in enc.iter_segments(videos["red"], window_s=100.0))
    assert seg_frames == 3


def test_frames_are_batched_and_streamed(videos: dict[str, Path]) -> None:
    fe = ColourEncoder()
    segs = list(VideoEncoder(fe, fps=2.0, window_s=30.0, scene_change=False).iter_segments(videos["avi"]))
    assert len(segs) == 1
    # a 0.5 s grid over frames 0.00 .. 10.48 s: 0.0, 0.52, 1.0, ..., 10.0
    assert fe.frames_seen == len(segs[0].keyframe_times) == 21
    assert fe.frames_seen < 263  # far fewer than the decoded frames
    # a long segment is encoded batch by batch: at most batch_size frames are held at once
    fe4 = ColourEncoder()
    enc4 = VideoEncoder(fe4, fps=2.0, window_s=30.0, scene_change=False, batch_size=4)
    (seg4,) = list(enc4.iter_segments(videos["avi"]))
    assert fe4.max_batch == 4 and fe4.calls == 6  # 21 frames: 5 batches of 4 + 1
    np.testing.assert_allclose(seg4.vector, segs[0].vector, atol=1e-6)
    clip = enc4.encode(videos["avi"])
    assert fe4.max_batch == 4
    same = VideoEncoder(ColourEncoder(), fps=2.0, scene_change=False).encode(videos["avi"])
    np.testing.assert_allclose(clip[0], same[0], atol=1e-6)


def test_frame_filter_is_applied_before_encoding(videos: dict[str, Path]) -> None:
    enc = VideoEncoder(ColourEncoder(), window_s=30.0)
    plain = list(enc.iter_segments(videos["red"]))
    seen: list[tuple[int, ...]] = []

    def invert(frame: np.ndarray) -> np.ndarray:
        seen.append(frame.shape)
        return 255 - frame

    inverted = list(enc.iter_segments(videos["red"], frame_filter=invert))
    assert len(seen) == len(inverted[0].keyframe_times)
    assert float(plain[0].vector @ inverted[0].vector) < 0.99
    with pytest.raises(ShapeError):
        list(enc.iter_segments(videos["red"], frame_filter=lambda f: f[:10]))


def test_truncated_video_keeps_segments_then_raises(videos: dict[str, Path]) -> None:
    enc = VideoEncoder(ColourEncoder(), window_s=2.0)
    got: list[VideoSegment] = []
    with pytest.raises(VideoDecodeError, match="truncated") as info:
        for seg in enc.iter_segments(videos["truncated"]):
            got.append(seg)
    assert "kept" in str(info.value)
    assert len(got) >= 3
    assert got[0].start == 0.0 and got[-1].end < 10.0
    full = list(enc.iter_segments(videos["avi"]))
    for a, b in zip(got[:-1], full, strict=False):  # complete segments are identical to the intact file's
        assert (a.start, a.end) == (b.start, b.end)
        np.testing.assert_allclose(a.vector, b.vector, atol=1e-6)
    with pytest.raises(VideoDecodeError):
        enc.encode(videos["truncated"])  # no clip vector from a partial file


@pytest.mark.parametrize("name", ["empty", "junk", "truncated_mp4"])
def test_unreadable_videos_raise_clear_errors(videos: dict[str, Path], name: str) -> None:
    enc = VideoEncoder(ColourEncoder())
    with pytest.raises(VideoDecodeError, match=r"cannot open|no decodable|damaged|truncated") as info:
        list(enc.iter_segments(videos[name]))
    assert isinstance(info.value, InputError | ValueError)
    assert videos[name].name in str(info.value)
    with pytest.raises(VideoDecodeError):
        enc.encode([videos["red"], videos[name]])


def test_missing_file_and_audio_only(tmp_path: Path) -> None:
    enc = VideoEncoder(ColourEncoder())
    with pytest.raises(VideoDecodeError, match="does not exist"):
        enc.encode(tmp_path / "nope.mp4")
    wav = tmp_path / "tone.wav"
    c = av.open(str(wav), "w")
    s = c.add_stream("pcm_s16le", rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
    frame.sample_rate = 8000
    for p in s.encode(frame):
        c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    with pytest.raises(VideoDecodeError, match="no video stream"):
        enc.encode(wav)


def test_bad_parameters() -> None:
    fe = ColourEncoder()
    for kwargs in ({"fps": 0}, {"window_s": -1.0}, {"batch_size": 0}, {"scene_threshold": 0.0},
                   {"max_short_side": 4}):
        with pytest.raises(ConfigurationError):
            VideoEncoder(fe, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(EmptyInputError):
        VideoEncoder(fe).encode([])
    with pytest.raises(ConfigurationError):
        VideoEncoder(fe).encode("x.mp4", output="logits")  # type: ignore[arg-type]


def test_downscales_sampled_frames(tmp_path: Path) -> None:
    big = make_video(tmp_path / "big.avi", [(GREEN, 1.0)], size=(640, 480))
    shapes: list[tuple[int, ...]] = []

    def record(frame: np.ndarray) -> np.ndarray:
        shapes.append(frame.shape)
        return frame

    list(VideoEncoder(ColourEncoder(), max_short_side=120).iter_segments(big, frame_filter=record))
    assert shapes and all(s == (120, 160, 3) for s in shapes)


def test_public_names_and_no_torch() -> None:
    assert securecmr.load_video_encoder is securecmr.encoders.load_video_encoder
    assert "VideoSegment" in securecmr.__all__
    import subprocess

    code = ("import sys, securecmr; from securecmr.encoders import VideoEncoder; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.models
@pytest.mark.parametrize("int8", [False, True])
def test_real_model_video_encoder(models_dir: Path, videos: dict[str, Path], int8: bool) -> None:
    enc = securecmr.load_video_encoder(models_dir, int8=int8, num_threads=1, window_s=30.0)
    assert enc.dim == 384 and enc.feature_dim == 1280
    segs = list(enc.iter_segments(videos["avi"]))
    assert len(segs) == 4
    for s in segs:
        assert s.vector.shape == (384,)
        assert np.linalg.norm(s.vector) == pytest.approx(1.0, abs=1e-4)
    x = enc.encode([videos["red"], videos["blue"]], output="features")
    assert x.shape == (2, 1280)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    # a clip's vector is close to a still image of its content
    img = np.empty((48, 64, 3), np.uint8)
    img[:] = RED
    still = securecmr.load_image_encoder(models_dir, int8=int8, num_threads=1).encode(img)[0]
    zs = enc.encode([videos["red"], videos["blue"]])
    assert float(zs[0] @ still) > float(zs[1] @ still)


def test_prefetch_thread_gives_the_same_segments_and_errors(videos: dict[str, Path]) -> None:
    inline = list(VideoEncoder(ColourEncoder(), window_s=2.0).iter_segments(videos["avi"]))
    enc = VideoEncoder(ColourEncoder(), window_s=2.0, prefetch=3)
    threaded = list(enc.iter_segments(videos["avi"]))
    assert spans(threaded) == spans(inline)
    for a, b in zip(inline, threaded, strict=True):
        np.testing.assert_array_equal(a.vector, b.vector)
    got = []
    with pytest.raises(VideoDecodeError, match="truncated"):
        for seg in enc.iter_segments(videos["truncated"]):
            got.append(seg)
    assert len(got) >= 3
    # stopping early closes the producer thread and the file
    it = enc.iter_segments(videos["avi"])
    next(it)
    it.close()  # type: ignore[attr-defined]
    import threading

    assert not [t for t in threading.enumerate() if t.name == "securecmr-video-decode"]
    with pytest.raises(ConfigurationError):
        VideoEncoder(ColourEncoder(), prefetch=-1)


@pytest.mark.parametrize("ext", ["avi", "mp4", "mkv"])
def test_zero_frame_videos(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"zero.{ext}"
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    container.start_encoding()  # header only, no frame
    container.close()
    enc = VideoEncoder(ColourEncoder())
    with pytest.raises(VideoDecodeError, match=r"no decodable frame|no video stream|cannot open") as info:
        list(enc.iter_segments(path))
    assert path.name in str(info.value)
    with pytest.raises(VideoDecodeError):
        enc.encode(path)

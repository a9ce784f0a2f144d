"""Surveillance adapter: segmenting + records, merging, face blurring, ingest/search layer.

Store integration tests (TTL, legal hold, audit, site policies) are in test_surveillance_store.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from securecmr_surveillance import (
    FaceBlur,
    PartialIngestError,
    SurveillanceIndex,
    TimeRange,
    compose_filters,
    iter_segment_records,
    merge_hits,
)

from securecmr.encoders import VideoEncoder
from securecmr.errors import ConfigurationError, EmptyInputError, ShapeError, VideoDecodeError

FPS = 25
RED, GREEN, BLUE, GREY = (255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128)


def make_video(path: Path, blocks: Sequence[tuple[tuple[int, int, int], float]], *, fps: int = FPS,
               size: tuple[int, int] = (64, 48)) -> Path:
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=fps)
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


class MeanColourEncoder:
    """Deterministic frame encoder: the mean colour of the frame, centred and normalised (3-d)."""

    dim = 3
    feature_dim = None

    def encode_frames(self, frames: Sequence[np.ndarray], *, output: str = "zeroshot",
                      batch_size: int = 32) -> np.ndarray:
        return self.encode(list(frames))

    def encode(self, images: Any) -> np.ndarray:
        x = np.stack([np.asarray(f, np.float64).reshape(-1, 3).mean(0) / 255.0 - 0.3 for f in images])
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class ColourWords:
    """Text encoder for tests: colour words map to the colour's vector."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        colours = {"red": RED, "green": GREEN, "blue": BLUE, "grey": GREY}
        frames = [np.full((2, 2, 3), colours[t.split()[-1]], np.uint8) for t in texts]
        return MeanColourEncoder().encode(frames)


@dataclass
class FakeItem:
    id: str
    attrs: dict[str, Any] = field(default_factory=dict)
    ref: str | None = None
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class FakeHit:
    id: str
    score: float
    attrs: Mapping[str, Any]
    ref: str | None = None


class MemoryCollection:
    """An in-memory stand-in for a securecmr collection (exact cosine search)."""

    def __init__(self) -> None:
        self.items: dict[str, FakeItem] = {}
        self.add_calls = 0

    def add(self, items: Sequence[FakeItem]) -> None:
        self.add_calls += 1
        for it in items:
            if it.id in self.items:
                raise ValueError("duplicate id")
            self.items[it.id] = it

    def search(self, *, vector: np.ndarray | None = None, k: int = 10, **_: Any) -> list[FakeHit]:
        assert vector is not None
        scored = [(float(vector @ it.vectors["video"]), it) for it in self.items.values()]
        scored.sort(key=lambda t: -t[0])
        return [FakeHit(it.id, s, it.attrs, it.ref) for s, it in scored[:k]]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cctv")
    out = {
        # camera 1: grey street, a red car passes 4-7 s, grey again, blue van 10-12 s
        "cam1": make_video(d / "cam1.avi", [(GREY, 4.0), (RED, 3.0), (GREY, 3.0), (BLUE, 2.0)]),
        "cam2": make_video(d / "cam2.avi", [(GREEN, 3.0), (RED, 2.0), (GREEN, 3.0)]),
        "red": make_video(d / "red.avi", [(RED, 1.0)]),
    }
    data = out["cam1"].read_bytes()
    (d / "cam1_cut.avi").write_bytes(data[: len(data) * 7 // 10])
    out["truncated"] = d / "cam1_cut.avi"
    (d / "zero.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST")
    out["zero"] = d / "zero.avi"
    return out


def make_index(coll: MemoryCollection | None = None, **kwargs: Any) -> SurveillanceIndex:
    enc = VideoEncoder(MeanColourEncoder(), window_s=2.0, scene_threshold=0.05)
    return SurveillanceIndex(coll or MemoryCollection(), enc, text_encoder=ColourWords(),
                             item_factory=FakeItem, **kwargs)


def test_records_carry_camera_site_times_and_ref(clips: dict[str, Path]) -> None:
    enc = VideoEncoder(MeanColourEncoder(), window_s=2.0, scene_threshold=0.05)
    start = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
    recs = list(iter_segment_records(enc, clips["cam1"], camera="cam-1", site="north",
                                     recording_start=start, ref_base="vault://cam1/0301.avi"))
    starts = [r.start for r in recs]
    # 2 s windows, cuts at 4, 7 and 10 s
    assert starts == pytest.approx([0.0, 2.0, 4.0, 6.0, 7.0, 9.0, 10.0], abs=1e-6)
    assert recs[-1].end == pytest.approx(12.0)
    for a, b in itertools.pairwise(recs):
        assert a.end == b.start
    r = recs[2]
    assert (r.camera, r.site) == ("cam-1", "north")
    assert r.wall_start == pytest.approx(start.timestamp() + 4.0)
    assert r.ref == "vault://cam1/0301.avi#t=4.000,6.000"
    attrs = r.attrs()
    assert attrs["site"] == "north" and attrs["camera"] == "cam-1" and attrs["start"] == 4.0
    assert len({x.id for x in recs}) == len(recs)
    # naive datetimes are UTC
    naive = list(iter_segment_records(enc, clips["red"], camera="c", site="s",
                                      recording_start=datetime(2026, 3, 1, 8, 0, 0)))
    assert naive[0].wall_start == start.timestamp()
    with pytest.raises(ConfigurationError):
        list(iter_segment_records(enc, clips["red"], camera=" ", site="s"))


def test_merge_hits_joins_adjacent_segments_per_camera() -> None:
    def hit(i: str, cam: str, s: float, e: float, score: float, rec: str = "r") -> FakeHit:
        return FakeHit(i, score, {"camera": cam, "recording": rec, "start": s, "end": e, "site": "x",
                                  "wall_start": 1000 + s, "wall_end": 1000 + e})

    hits = [hit("a", "c1", 0, 2, 0.5), hit("b", "c1", 2, 4, 0.9), hit("c", "c1", 4.5, 6, 0.6),
            hit("d", "c1", 10, 12, 0.95), hit("e", "c2", 2, 4, 0.7), hit("f", "c1", 6, 8, 0.1, rec="other"),
            FakeHit("doc", 0.99, {"kind": "not-video"})]
    ranges = merge_hits(hits, gap_s=1.0)
    assert [(r.camera, r.recording, r.start, r.end) for r in ranges] == [
        ("c1", "r", 10, 12), ("c1", "r", 0, 6), ("c2", "r", 2, 4), ("c1", "other", 6, 8)]
    assert ranges[1].score == 0.9 and ranges[1].ids == ("b", "c", "a")
    assert ranges[1].wall_start == 1000 and ranges[1].wall_end == 1006
    wc = ranges[1].wall_clock()
    assert wc is not None and wc[0].tzinfo is UTC
    assert "c1" in str(ranges[1])
    strict = merge_hits(hits, gap_s=0.0)
    assert ("c1", 0, 4) in [(r.camera, r.start, r.end) for r in strict]
    assert merge_hits([]) == []


def test_ingest_and_search_by_text_image_and_clip(clips: dict[str, Path]) -> None:
    coll = MemoryCollection()
    index = make_index(coll, batch_items=3)
    r1 = index.ingest(clips["cam1"], camera="cam-1", site="north",
                      recording_start=datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
    r2 = index.ingest(clips["cam2"], camera="cam-2", site="south")
    assert r1.segments == 7 and r1.seconds == pytest.approx(12.0)
    assert r2.segments == 5
    assert coll.add_calls == 3 + 2  # batches of 3: 3+3+1 and 3+2
    assert len(coll.items) == 12

    ranges = index.search(text="a red", k=4)
    top = {(r.camera, round(r.start, 2), round(r.end, 2)) for r in ranges[:2]}
    # the red car on cam-1 (two adjacent segments, merged) and the red spell on cam-2
    assert top == {("cam-1", 4.0, 7.0), ("cam-2", 3.0, 5.0)}
    cam1 = next(r for r in ranges if r.camera == "cam-1")
    assert cam1.wall_clock() is not None and len(cam1.ids) == 2
    assert next(r for r in ranges if r.camera == "cam-2").wall_clock() is None

    blue = index.search(image=np.full((8, 8, 3), BLUE, np.uint8), k=1)
    assert [(r.camera, r.start, r.end) for r in blue] == [("cam-1", 10.0, 12.0)]
    by_clip = index.search(clip=clips["red"], k=4)
    assert by_clip[0].score > 0.99 and by_clip[0].camera in {"cam-1", "cam-2"}

    with pytest.raises(ConfigurationError):
        index.search(text="red", image=np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ConfigurationError):
        index.search()
    with pytest.raises(EmptyInputError):
        index.search(text="  ")


def test_damaged_footage_keeps_ingested_segments(clips: dict[str, Path]) -> None:
    coll = MemoryCollection()
    index = make_index(coll, batch_items=2)
    index.ingest(clips["cam2"], camera="cam-2", site="south")
    before = dict(coll.items)
    with pytest.raises(PartialIngestError) as info:
        index.ingest(clips["truncated"], camera="cam-1", site="north")
    err = info.value
    assert isinstance(err, VideoDecodeError) and "cam1_cut.avi" in str(err) and "stored" in str(err)
    assert err.report.segments >= 3
    assert set(err.report.ids) <= set(coll.items)
    assert len(coll.items) == len(before) + err.report.segments
    assert all(coll.items[i] is before[i] for i in before)  # nothing already stored was touched
    # the stored part is searchable: the red car (4-7 s) was before the damage
    red = [r for r in index.search(text="a red", k=3) if r.camera == "cam-1"]
    assert red and red[0].start == pytest.approx(4.0)

    n = len(coll.items)
    with pytest.raises(VideoDecodeError, match=r"zero\.avi") as e2:
        index.ingest(clips["zero"], camera="cam-3", site="east")
    assert not isinstance(e2.value, PartialIngestError)
    with pytest.raises(VideoDecodeError, match="does not exist"):
        index.ingest(clips["red"].with_name("missing.avi"), camera="cam-3", site="east")
    assert len(coll.items) == n


def test_face_blur_on_a_real_face() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    face = skimage_data.astronaut()
    blur = FaceBlur()
    boxes = blur.detect(face)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert 150 < x < 210 and 40 < y < 100 and w > 60  # Eileen Collins' face
    out = blur(face)
    assert out.shape == face.shape and out.dtype == np.uint8
    assert len(blur.detect(out)) == 0
    region = (slice(y, y + h), slice(x, x + w))
    # the face region lost its detail; pixels far from it are untouched
    assert out[region].astype(float).std() < 0.6 * face[region].astype(float).std()
    np.testing.assert_array_equal(out[400:], face[400:])
    # a frame with no face is returned unchanged
    coffee = skimage_data.coffee()
    np.testing.assert_array_equal(blur(coffee), coffee)
    with pytest.raises(ShapeError):
        blur.detect(face[..., 0])
    with pytest.raises(ConfigurationError):
        FaceBlur(cascade="no_such_cascade.xml")


def test_privacy_filter_reaches_the_encoder(clips: dict[str, Path]) -> None:
    seen: list[int] = []

    def count(frame: np.ndarray) -> np.ndarray:
        seen.append(1)
        return frame

    def to_blue(frame: np.ndarray) -> np.ndarray:
        out = np.empty_like(frame)
        out[:] = BLUE
        return out

    coll = MemoryCollection()
    index = make_index(coll, privacy_filter=compose_filters(count, to_blue))
    index.ingest(clips["red"], camera="c", site="s")
    assert seen
    (item,) = coll.items.values()
    expected = MeanColourEncoder().encode([np.full((1, 1, 3), BLUE)])[0]
    np.testing.assert_allclose(item.vectors["video"], expected, atol=1e-5)


def test_time_range_str_without_wall_clock() -> None:
    r = TimeRange(camera="c", site="s", recording="r", start=1.0, end=2.5, score=0.5, ids=("a",))
    assert "1.00s" in str(r) and r.wall_clock() is None


def test_disclosure_is_audited_before_refs_are_returned(clips: dict[str, Path], tmp_path: Path) -> None:
    from securecmr_surveillance import disclose

    from securecmr.audit import AuditLog

    coll = MemoryCollection()
    index = make_index(coll)
    index.ingest(clips["cam1"], camera="cam-1", site="north", ref_base="vault://north/cam1.avi")
    ranges = index.search(text="a red", k=2)
    assert ranges[0].refs == ("vault://north/cam1.avi#t=4.000,6.000", "vault://north/cam1.avi#t=6.000,7.000")
    log = AuditLog(tmp_path / "audit", b"k" * 32, clock=lambda: 1_700_000_000.0)
    exports = disclose(ranges[:1], audit=log, principal="officer-7", recipient="police case 42",
                       reason="incident 2026-03-01", collection="footage")
    assert [e.refs for e in exports] == [ranges[0].refs]
    (rec,) = list(log.records())
    assert rec["action"] == "export" and rec["principal"] == "officer-7"
    assert rec["detail"]["recipient"] == "police case 42" and rec["detail"]["camera"] == "cam-1"
    assert len(rec["results"]) == 2 and all(i not in str(rec) for i in ranges[0].ids)  # ids are keyed
    assert log.verify().ok
    with pytest.raises(ConfigurationError):
        disclose(ranges, audit=log, principal="officer-7", recipient="x", reason=" ")
    no_ref = TimeRange(camera="c", site="s", recording="r", start=0, end=1, score=1, ids=("a",))
    with pytest.raises(ConfigurationError):
        disclose([no_ref], audit=log, principal="officer-7", recipient="x", reason="y")
    assert len(list(log.records())) == 1


@pytest.mark.models
def test_real_encoders_find_the_right_scene(models_dir: Path, tmp_path: Path) -> None:
    """Footage of four real photos (3 s each); text queries land on the right time range."""
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    path = tmp_path / "scenes.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=10)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    photos = (skimage_data.astronaut(), skimage_data.coffee(), skimage_data.rocket(), skimage_data.chelsea())
    for img in photos:
        frame = np.asarray(Image.fromarray(img).resize((320, 240)))
        for _ in range(30):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()

    index = SurveillanceIndex.with_builtin_encoders(MemoryCollection(), model_dir=models_dir, int8=True,
                                                    item_factory=FakeItem, privacy_filter=FaceBlur())
    report = index.ingest(path, camera="cam-1", site="lab")
    assert report.segments == 4 and report.seconds == pytest.approx(12.0)
    coffee = index.search(text="a cup of coffee", k=1)[0]
    cat = index.search(text="a cat", k=1)[0]
    assert (coffee.start, coffee.end) == (3.0, 6.0)
    assert (cat.start, cat.end) == (9.0, 12.0)


def test_resume_after_repair_skips_stored_segments(clips: dict[str, Path]) -> None:
    coll = MemoryCollection()
    index = make_index(coll)
    with pytest.raises(PartialIngestError) as info:
        index.ingest(clips["truncated"], camera="cam-1", site="north", recording_id="cam-1-0800")
    first = info.value.report
    # the repaired (complete) recording: only the missing segments are added, no duplicates
    rest = index.ingest(clips["cam1"], camera="cam-1", site="north", recording_id="cam-1-0800",
                        skip_ids=set(first.ids))
    assert not set(rest.ids) & set(first.ids)
    assert len(coll.items) == first.segments + rest.segments == 7

"""Surveillance adapter on the real ``securecmr.Store``: sealed refs, TTL, site policy, partial ingest.

Skipped until ``securecmr.Store`` is importable (written against the pinned store API).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from securecmr_surveillance import PartialIngestError, SurveillanceIndex, create_surveillance_collection
from test_surveillance import BLUE, GREEN, GREY, RED, make_video

import securecmr
from securecmr.encoders import VideoEncoder

pytestmark = pytest.mark.skipif(not hasattr(securecmr, "Store"),
                                reason="securecmr.Store is not available yet")

DIM = 384
_W = np.random.default_rng(0).normal(size=(3, DIM))


def _embed(means: np.ndarray) -> np.ndarray:
    y = (means - 0.3) @ _W
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


class Colour384:
    """Deterministic 384-d frame encoder (mean colour through a fixed projection)."""

    dim = DIM
    feature_dim = None

    def encode_frames(self, frames: Sequence[np.ndarray], *, output: str = "zeroshot",
                      batch_size: int = 32) -> np.ndarray:
        return _embed(np.stack([f.reshape(-1, 3).mean(0) / 255.0 for f in frames]))

    def encode(self, images: Any) -> np.ndarray:
        return self.encode_frames(list(images))


class Words384:
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        table = {"red": RED, "green": GREEN, "blue": BLUE, "grey": GREY}
        return _embed(np.array([np.array(table[t.split()[-1]]) / 255.0 for t in texts]))


PASS = "correct horse battery staple 42"


@pytest.fixture()
def setup(tmp_path: Path) -> Any:
    now = [1_772_000_000.0]
    store_cls: Any = securecmr.Store
    store = store_cls.create(tmp_path / "store", passphrase=PASS, clock=lambda: now[0])
    from securecmr import hashing

    hasher = hashing.create("zero-shot", bits=64, dim=DIM, seed=0).fit()
    coll = create_surveillance_collection(store, "footage", hasher=hasher)
    enc = VideoEncoder(Colour384(), window_s=2.0, scene_threshold=0.05)
    index = SurveillanceIndex(coll, enc, text_encoder=Words384())
    north = make_video(tmp_path / "north.avi", [(GREY, 4.0), (RED, 3.0), (GREY, 1.0)])
    south = make_video(tmp_path / "south.avi", [(GREEN, 2.0), (RED, 2.0)])
    yield store, index, enc, north, south, now
    store.close()


def test_ingest_search_and_sealed_refs(setup: Any) -> None:
    _, index, _, north, south, _ = setup
    store = setup[0]
    index.ingest(north, camera="cam-n", site="north", ref_base="vault://n.avi")
    index.ingest(south, camera="cam-s", site="south", ref_base="vault://s.avi")
    ranges = index.search(text="a red", k=3)
    assert {(r.camera, r.start, r.end) for r in ranges[:2]} == {("cam-n", 4.0, 7.0), ("cam-s", 2.0, 4.0)}
    cam_n = next(r for r in ranges if r.camera == "cam-n")
    assert cam_n.refs and all(ref.startswith("vault://n.avi#t=") for ref in cam_n.refs)
    # refs are sealed at rest: the plain reference never appears in the store's files
    store.close()
    for f in (north.parent / "store").rglob("*"):
        if f.is_file():
            assert b"vault://n.avi" not in f.read_bytes()


def test_ttl_expires_footage_except_legal_hold(setup: Any, tmp_path: Path) -> None:
    store, index, _, north, south, now = setup
    index.ingest(north, camera="cam-n", site="north")
    index.ingest(south, camera="cam-s", site="south")
    held = next(r for r in index.search(text="a red", k=3) if r.camera == "cam-n")
    index.collection.hold(held.ids)  # evidence: exempt from the 72 h retention
    now[0] += 71 * 3600
    assert store.purge() == 0
    now[0] += 2 * 3600
    # the store enforces the TTL on its own (on open and on every add): new footage arrives
    later = make_video(tmp_path / "later.avi", [(BLUE, 2.0)])
    fresh = index.ingest(later, camera="cam-s", site="south")
    left = {i for r in index.search(text="a red", k=50) for i in r.ids}
    assert left == set(held.ids) | set(fresh.ids)  # expired footage is gone, held evidence stays
    assert len(index.collection) == len(left)


def test_site_policy_limits_operators(setup: Any) -> None:
    store, index, enc, north, south, _ = setup
    index.ingest(north, camera="cam-n", site="north")
    index.ingest(south, camera="cam-s", site="south")
    token = store.create_user("op-north", role="reader", attrs={"sites": ["north"]})
    seen = SurveillanceIndex(store.session(token).collection("footage"), enc, text_encoder=Words384())
    ranges = seen.search(text="a red", k=10)
    assert ranges and {r.site for r in ranges} == {"north"}


def test_partial_ingest_keeps_segments_in_the_store(setup: Any, tmp_path: Path) -> None:
    _, index, _, north, _, _ = setup
    data = north.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 7 // 10])
    with pytest.raises(PartialIngestError) as info:
        index.ingest(cut, camera="cam-n", site="north")
    assert info.value.report.segments >= 2
    ranges = index.search(text="a grey", k=10)
    assert {i for r in ranges for i in r.ids} == set(info.value.report.ids)


def test_disclosure_goes_to_the_store_audit_log(setup: Any) -> None:
    from securecmr_surveillance import disclose

    store, index, _, north, _, _ = setup
    index.ingest(north, camera="cam-n", site="north", ref_base="vault://n.avi")
    ranges = index.search(text="a red", k=2)
    before = len(list(store.audit.records()))
    out = disclose(ranges[:1], audit=store.audit, principal="admin", recipient="court", reason="case 7",
                   collection="footage")
    assert out[0].refs == ranges[0].refs
    records = list(store.audit.records())
    assert len(records) == before + 1 and records[-1]["action"] == "export"
    assert store.audit.verify().ok

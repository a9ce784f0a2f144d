"""Store API: collections, add/search/delete, congruence across modes and backends, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _store_helpers import MODES, PASS, brute, items, new_store

import securecmr
from securecmr.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigurationError,
    DuplicateItemError,
    EmptyInputError,
    ItemNotFoundError,
    LegalHoldError,
    ShapeError,
    StoreExistsError,
    StoreLockedError,
    StoreNotFoundError,
)


@pytest.mark.parametrize("backend", ["faiss", "brute"])
def test_congruence_across_modes_and_backends(tmp_path: Path, backend: str) -> None:
    data = items(300, bits=16)  # 16 bits: many ties, so the tie rule is exercised
    rng = np.random.default_rng(1)
    queries = rng.integers(0, 256, (12, 2), dtype=np.uint8)
    with new_store(tmp_path, backend=backend) as store:
        results = {}
        for mode in MODES:
            coll = store.create_collection(mode.replace("+", "-"), bits=16, protection=mode)
            coll.add(data)
            results[mode] = [[(h.id, h.distance) for h in coll.search(code=q, k=7)] for q in queries]
            batch = coll.search_batch(codes=queries, k=7)
            assert [[(h.id, h.distance) for h in hs] for hs in batch] == results[mode]
        expected = [brute(data, q, 7) for q in queries]
        for mode in MODES:
            assert results[mode] == expected, mode


def test_persist_reopen_and_fields(tmp_path: Path) -> None:
    data = items(50)
    with new_store(tmp_path) as store:
        store.create_collection("c").add(data)
    with securecmr.Store.open(tmp_path / "store", passphrase=PASS) as store:
        coll = store.collection("c")
        assert len(coll) == 50
        q = data[9].codes["image"]  # type: ignore[index]
        hit = coll.search(code=q, k=1)[0]
        assert hit.id == "patient-00009" and hit.score == 1.0 and hit.distance == 0
        assert hit.labels == ("label-1xq",) and hit.attrs["site"] == "site-1zz" and hit.ref == "ref-9.png"
        assert hit.modality == "image"
        with pytest.raises(ConfigurationError, match="k must be"):
            coll.search(code=q, k=0)  # k >= 1 on every path
        assert len(coll.search(code=q, k=500)) == 50


def test_delete_by_id_and_filter(tmp_path: Path) -> None:
    data = items(40)
    with new_store(tmp_path) as store:
        coll = store.create_collection("c", protection="salted")
        coll.add(data)
        assert coll.delete(["patient-00001", "patient-00002"]) == 2
        assert coll.delete(where={"site": "site-0zz"}) == 19  # patient-00002 already gone
        assert len(coll) == 19
        with pytest.raises(ItemNotFoundError):
            coll.delete(["patient-00001"])
        ids = {h.id for h in coll.search(code=data[0].codes["image"], k=100)}  # type: ignore[index]
        assert "patient-00001" not in ids and "patient-00000" not in ids
        receipt = store.compact(by="dpo")
        assert receipt["count"] == 21 and store.verify_receipt(receipt)
        assert coll.id_hmac("patient-00001") in receipt["erased"]["c"]
        receipt["count"] = 1
        assert not store.verify_receipt(receipt)


def test_ttl_and_legal_hold(tmp_path: Path) -> None:
    now = [1_000_000.0]
    with new_store(tmp_path, clock=lambda: now[0]) as store:
        coll = store.create_collection("cctv", ttl_hours=72)
        coll.add(items(10))
        coll.hold(["patient-00003"])
        with pytest.raises(LegalHoldError):
            coll.delete(["patient-00003"])
        now[0] += 71 * 3600
        assert store.purge() == 0
        now[0] += 2 * 3600
        assert store.purge() == 9
        assert coll.ids() == ["patient-00003"]
        coll.release(["patient-00003"])
        assert store.purge() == 1


def test_snapshot_roundtrip_and_rotation(tmp_path: Path) -> None:
    data = items(20)
    with new_store(tmp_path) as store:
        store.create_collection("c").add(data)
        store.export_snapshot(tmp_path / "snap.bin")
        store.rotate_keys("new pass", reencrypt=True)
    with pytest.raises(securecmr.errors.DecryptionError):
        securecmr.Store.open(tmp_path / "store", passphrase=PASS)
    with securecmr.Store.open(tmp_path / "store", passphrase="new pass") as store:
        assert len(store.collection("c")) == 20
    with securecmr.Store.import_snapshot(
        tmp_path / "snap.bin", tmp_path / "restored", passphrase=PASS
    ) as store:
        q = data[4].codes["image"]  # type: ignore[index]
        assert store.collection("c").search(code=q, k=1)[0].id == "patient-00004"


def test_bad_input(tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        coll = store.create_collection("c")
        with pytest.raises(CollectionExistsError):
            store.create_collection("c")
        with pytest.raises(CollectionNotFoundError):
            store.collection("nope")
        with pytest.raises(ConfigurationError):
            store.create_collection("x", protection="rot13")
        with pytest.raises(ConfigurationError):
            store.create_collection("x", bits=12)
        with pytest.raises(EmptyInputError):
            coll.add([])
        coll.add(items(3))
        with pytest.raises(DuplicateItemError):
            coll.add(items(5))  # overlaps: nothing added
        assert len(coll) == 3
        with pytest.raises(ShapeError):
            coll.add([securecmr.Item("w", codes={"image": np.zeros(4, np.uint8)})])
        with pytest.raises(ShapeError):
            coll.search(code=np.zeros(3, np.uint8))
        with securecmr.Store.open(tmp_path / "store", passphrase=PASS, timeout=0.05) as other:
            assert len(other.collection("c")) == 3  # a second writer may open the store...
            with store._lock.hold(), pytest.raises(StoreLockedError):  # type: ignore[union-attr]
                other.collection("c").add(items(1, seed=9))  # ...but waits for a write in progress
        with securecmr.Store.open(tmp_path / "store", passphrase=PASS, readonly=True) as reader:
            assert len(reader.collection("c")) == 3
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreNotFoundError):
        securecmr.Store.open(tmp_path / "plain", passphrase=PASS)
    with pytest.raises(StoreExistsError):
        securecmr.Store.create(tmp_path / "store", passphrase=PASS)


def test_cross_modal_vectors_use_default_hasher(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((20, 384)).astype(np.float32)
    with new_store(tmp_path) as store:
        coll = store.create_collection("v")
        coll.add([securecmr.Item(i, vectors={"image": vecs[i]}) for i in range(20)])
        assert coll.search(vector=vecs[7], k=1)[0].id == 7

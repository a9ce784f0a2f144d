"""The Milvus backend on its own (Milvus Lite): exact results with heavy ties through the widening
and chunked-scan paths, pushed-down filters, tenant isolation inside one Milvus collection, and the
state marker that decides between adopting and rebuilding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the Milvus backend needs the 'milvus' extra (pymilvus, milvus-lite)")

from securecmr.errors import ConfigurationError
from securecmr.index import BruteForceIndex, MilvusConnection, MilvusIndex
from securecmr.index import _milvus as milvus_module
from securecmr.index._milvus import row_keys

BITS = 16


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusConnection]:
    c = MilvusConnection(str(tmp_path_factory.mktemp("milvus") / "m.db"))
    yield c
    c.close()


def _index(conn: MilvusConnection, tenant: str, name: str = "scmr_test_c") -> MilvusIndex:
    return MilvusIndex(BITS, connection=conn, collection=name, tenant=tenant, state="scmr_test_state")


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, (n, BITS // 8), dtype=np.uint8)  # few distinct codes: many ties
    seqs = np.arange(n) // 2 + 1  # two codes per item (text, image)
    mods = np.arange(n) % 2
    return codes, row_keys(seqs, mods)


def _brute(codes: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[list]:
    idx = np.arange(codes.shape[0]) if mask is None else np.flatnonzero(mask)
    ref = BruteForceIndex(BITS)
    ref.add(codes[idx])
    d, r = ref.search(queries, k)
    return [
        [(int(a), int(idx[b])) for a, b in zip(dd, rr, strict=True) if b >= 0]
        for dd, rr in zip(d, r, strict=True)
    ]


def _pairs(d: np.ndarray, r: np.ndarray) -> list[list]:
    return [
        [(int(a), int(b)) for a, b in zip(dd, rr, strict=True) if b >= 0] for dd, rr in zip(d, r, strict=True)
    ]


@pytest.mark.parametrize(("cap", "overfetch"), [(16384, 4096), (8, 4096), (16384, 0), (8, 0)])
def test_exact_with_ties_filters_and_deletes(
    conn: MilvusConnection, cap: int, overfetch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cap``: Milvus' top-k cap (8 forces widening and chunked scans); ``overfetch`` 0 pushes every
    record filter down as an expression instead of filtering an over-fetched answer."""
    monkeypatch.setattr(MilvusIndex, "max_limit", cap)
    monkeypatch.setattr(milvus_module, "_OVERFETCH_MAX", overfetch)
    exprs: list[str] = []
    real_raw = MilvusIndex._raw

    def recording_raw(self: MilvusIndex, queries: np.ndarray, limit: int, expr: str) -> object:
        exprs.append(expr)
        return real_raw(self, queries, limit, expr)

    monkeypatch.setattr(MilvusIndex, "_raw", recording_raw)
    scans = []
    real_scan = MilvusIndex._scan

    def counting_scan(self: MilvusIndex, *a: object, **kw: object) -> object:
        scans.append(1)
        return real_scan(self, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(MilvusIndex, "_scan", counting_scan)
    codes, keys = _data(90, seed=cap)
    ix = _index(conn, f"cap{cap}o{overfetch}")
    ix.sync(codes[:0], keys[:0], 0)
    ix.add(codes[:50], keys[:50])
    ix.add(codes[50:], keys[50:])
    queries = np.random.default_rng(1).integers(0, 4, (5, BITS // 8), dtype=np.uint8)
    for k in (1, 7, 30, 90, 120):
        assert _pairs(*ix.search(queries, k)) == _brute(codes, queries, k)
    seqs = keys >> 2
    allowed = np.unique(seqs)[::3]
    for modality in (None, 0, 1):
        mask = np.isin(seqs, allowed)
        if modality is not None:
            mask &= (keys & 3) == modality
        got = ix.search_filtered(queries, 10, seqs=allowed, modality=modality)
        assert _pairs(*got) == _brute(codes, queries, 10, mask)
    most = np.unique(seqs)[1:]  # the "seq not in [...]" form of the pushed-down filter
    got = ix.search_filtered(queries, 12, seqs=most)
    assert _pairs(*got) == _brute(codes, queries, 12, np.isin(seqs, most))
    gone = np.arange(0, 90, 4)
    ix.remove(gone)
    left = np.delete(codes, gone, axis=0)
    assert len(ix) == left.shape[0]
    assert np.array_equal(ix.codes(), left)
    for k in (5, 40):
        assert _pairs(*ix.search(queries, k)) == _brute(left, queries, k)
    empty = ix.search_filtered(queries, 5, seqs=np.array([10**9]))
    assert (empty[1] == -1).all()
    if cap == 8:
        assert scans, "the chunked scan was not exercised"
    pushed = any(" in [" in e for e in exprs)
    assert pushed == (overfetch == 0 or cap == 8)  # (with cap 8 the over-fetch gives up)


def test_tenants_share_a_collection_but_not_results(conn: MilvusConnection) -> None:
    codes, keys = _data(40, seed=3)
    a, b = _index(conn, "tenant-a", "scmr_test_shared"), _index(conn, "tenant-b", "scmr_test_shared")
    a.sync(codes[:0], keys[:0], 0)
    b.sync(codes[:0], keys[:0], 0)
    a.add(codes, keys)
    b.add(codes[:10], keys[:10])  # the same codes and keys in another tenant
    d, r = b.search(codes[:3], 40)
    assert int((r >= 0).sum(axis=1).max()) == 10
    assert _pairs(d, r) == _brute(codes[:10], codes[:3], 40)
    b.remove(np.arange(10))
    assert (b.search(codes[:3], 5)[1] == -1).all()
    assert _pairs(*a.search(codes[:3], 40)) == _brute(codes, codes[:3], 40)


def test_state_marker_adopts_or_rebuilds(conn: MilvusConnection) -> None:
    codes, keys = _data(30, seed=4)
    first = _index(conn, "marker")
    assert first.sync(codes, keys, 5) is True  # nothing there yet: built
    first.commit(5)
    again = _index(conn, "marker")
    assert again.sync(codes, keys, 5) is False  # same generation and rows: adopted as is
    assert _pairs(*again.search(codes[:2], 10)) == _brute(codes, codes[:2], 10)
    assert _index(conn, "marker").sync(codes, keys, 6) is True  # another generation: rebuilt
    changed = codes.copy()
    changed[0] ^= 1
    third = _index(conn, "marker")
    assert third.sync(changed, keys, 6) is True  # same generation, other rows: rebuilt
    assert _pairs(*third.search(changed[:2], 10)) == _brute(changed, changed[:2], 10)
    reader = MilvusIndex(
        BITS,
        connection=conn,
        collection="scmr_test_c",
        tenant="marker",
        state="scmr_test_state",
        readonly=True,
    )
    assert reader.sync(codes, keys, 99) is False  # a reader never writes: it searches a local copy
    assert reader.degraded
    assert _pairs(*reader.search(codes[:2], 10)) == _brute(codes, codes[:2], 10)


def test_bad_input(conn: MilvusConnection, tmp_path: Path) -> None:
    ix = _index(conn, "bad")
    ix.sync(np.zeros((0, 2), np.uint8), np.zeros(0, np.int64), 0)
    with pytest.raises(ConfigurationError, match="row keys"):
        ix.add(np.zeros((2, 2), np.uint8))
    ix.add(np.zeros((2, 2), np.uint8), np.array([4, 8]))
    with pytest.raises(ConfigurationError, match="increase"):
        ix.add(np.zeros((1, 2), np.uint8), np.array([8]))
    assert len(ix) == 2
    wide = MilvusIndex(64, connection=conn, collection="scmr_test_c", tenant="x", state="scmr_test_state")
    with pytest.raises(ConfigurationError, match="width"):
        wide.sync(np.zeros((0, 8), np.uint8), np.zeros(0, np.int64), 0)
    with pytest.raises(ConfigurationError, match=r"\.db"):
        MilvusConnection(str(tmp_path / "milvus.sqlite"))
    with pytest.raises(ConfigurationError, match="credentials"):
        MilvusConnection("http://user:pw@localhost:19530")
    with pytest.raises(ConfigurationError, match="index"):
        MilvusConnection(str(tmp_path / "m.db"), index_type="HNSW")

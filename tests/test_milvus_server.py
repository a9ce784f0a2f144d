"""The Milvus backend against a live Milvus standalone server (the ``milvus`` package, started once
per session by the ``milvus_server`` fixture): tenants as partition keys and their isolation,
pushed-down policies equal to SDK-side filtering, rebuild when the server lost or gained rows
behind the store's back, and erasure down to the server's files.

Server faults (killed, restarted, unreachable) are in tests/test_milvus_faults.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import securecmr

pymilvus = pytest.importorskip(
    "pymilvus", reason="the Milvus backend needs the 'milvus' extra (pymilvus, milvus-lite)"
)

from securecmr.index import BruteForceIndex, MilvusConnection, MilvusIndex  # noqa: E402
from securecmr.index import _milvus as milvus_module  # noqa: E402
from securecmr.index._milvus import row_keys  # noqa: E402

PASS = "server passphrase 7"


def _items(prefix: str, n: int, seed: int, bits: int = 64) -> list[securecmr.Item]:
    rng = np.random.default_rng(seed)
    return [
        securecmr.Item(
            f"{prefix}-{i}",
            attrs={"ward": f"w{i % 4}"},
            codes={"image": rng.integers(0, 256, bits // 8, dtype=np.uint8)},
        )
        for i in range(n)
    ]


def _ranking(coll: Any, queries: list[np.ndarray], k: int = 10) -> list[list[tuple[str, int]]]:
    return [[(str(h.id), int(h.distance)) for h in coll.search(code=q, k=k)] for q in queries]


def _raw_client(uri: str) -> Any:
    return pymilvus.MilvusClient(uri=uri, timeout=30)


def test_tenants_are_partition_keys_and_isolated(
    live_milvus: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filters: list[tuple[str, str, str]] = []
    for name in ("search", "query", "delete"):
        original = getattr(pymilvus.MilvusClient, name)

        def spy(self: Any, coll: str, *a: Any, _n: str = name, _o: Any = original, **kw: Any) -> Any:
            filters.append((_n, coll, str(kw.get("filter", ""))))
            return _o(self, coll, *a, **kw)

        monkeypatch.setattr(pymilvus.MilvusClient, name, spy)

    store = securecmr.Store.create(
        tmp_path / "s", passphrase=PASS, index_backend="milvus", milvus_uri=live_milvus.uri
    )
    sizes = {"t1": 50, "t2": 70, "t3": 90}
    tokens = {t: store.create_user(f"{t}-admin", role="admin", tenant=t) for t in sizes}
    items = {t: _items(t, n, seed=1) for t, n in sizes.items()}  # the same codes in every tenant
    for t in sizes:
        store.session(tokens[t]).create_collection("scans", bits=64).add(items[t])
    for t in sizes:
        sess = store.session(tokens[t])
        for it in items["t3"][:10]:
            hits = sess.collection("scans").search(code=it.codes["image"], k=5)  # type: ignore[index]
            assert hits and all(str(h.id).startswith(f"{t}-") for h in hits)
            assert hits[0].distance == 0 and hits[0].id == f"{t}-{it.id.split('-')[1]}"  # type: ignore[union-attr]
        sess.collection("scans").delete([f"{t}-0"])

    store.close()  # reopened: each collection checks its marker and row count (a query)
    store = securecmr.Store.open(tmp_path / "s", passphrase=PASS)
    engines = {t: store.collection(f"{t}~scans")._engine for t in sizes}
    colls = {e.index._coll for e in engines.values()}  # type: ignore[attr-defined]
    assert len(colls) == 1  # one Milvus collection, one partition-key value per tenant
    (coll,) = colls
    tags = {t: e.index._tenant for t, e in engines.items()}  # type: ignore[attr-defined]
    assert len(set(tags.values())) == 3

    # every request on the data collection is confined to the caller's partition key value
    data_calls = [(n, f) for n, c, f in filters if c == coll]
    assert {n for n, _ in data_calls} >= {"search", "query", "delete"}
    for n, f in data_calls:
        assert f.startswith('tenant == "') and f[11:27] in tags.values(), (n, f)

    client = _raw_client(live_milvus.uri)
    try:
        fields = {f["name"]: f for f in client.describe_collection(coll)["fields"]}
        assert fields["tenant"].get("is_partition_key") is True
        partitions = client.list_partitions(coll)
        assert len(partitions) > 1
        # physically: a tenant's rows go to the one partition its key hashes to (Milvus refuses
        # queries naming partitions under a partition key, so count the flushed rows instead)
        client.flush(coll)
        counts = sorted(
            n for n in (int(client.get_partition_stats(coll, p)["row_count"]) for p in partitions) if n
        )
        assert sum(counts) == sum(sizes.values())
        per_tenant = sorted(sizes.values())
        assert counts == per_tenant or (
            len(counts) < len(per_tenant) and all(c in (50, 70, 90, 120, 140, 160, 210) for c in counts)
        ), counts  # two tenants may share a partition (their keys hash alike), never split one
    finally:
        client.close()
    store.close()


def _data(n: int, seed: int, bits: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, (n, bits // 8), dtype=np.uint8)  # few distinct codes: many ties
    seqs = np.arange(n) // 2 + 1
    return codes, row_keys(seqs, np.arange(n) % 2)


def test_pushdown_equals_sdk_filtering(live_milvus: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = MilvusConnection(live_milvus.uri)
    try:
        tag = f"pd{time.time_ns() % 10**9}"
        ix = MilvusIndex(16, connection=conn, collection=f"scmr_t_{tag}", tenant=tag, state=f"scmr_t_{tag}_s")
        codes, keys = _data(600, seed=5)
        ix.sync(codes[:0], keys[:0], 0)
        ix.add(codes, keys)
        ix.commit(1)
        ix.remove(np.arange(0, 600, 9))
        ix.commit(2)
        left = np.delete(codes, np.arange(0, 600, 9), axis=0)
        left_keys = np.delete(keys, np.arange(0, 600, 9))
        rng = np.random.default_rng(2)
        queries = codes[:4]
        for fraction in (0.02, 0.3, 0.9):
            seqs = np.unique(rng.choice(np.unique(left_keys >> 2), int(fraction * 300) + 1))
            for modality in (None, 1):
                mask = np.isin(left_keys >> 2, seqs)
                if modality is not None:
                    mask &= (left_keys & 3) == modality
                ref = BruteForceIndex(16)
                ref.add(left[mask])
                rd, rr = ref.search(queries, 25)
                want = [
                    [(int(d), int(np.flatnonzero(mask)[r])) for d, r in zip(dd, row, strict=True) if r >= 0]
                    for dd, row in zip(rd, rr, strict=True)
                ]
                got = {}
                for label, overfetch in (("pushed", 0), ("sdk", 10**9)):
                    monkeypatch.setattr(milvus_module, "_OVERFETCH_MAX", overfetch)
                    d, r = ix.search_filtered(queries, 25, seqs=seqs, modality=modality)
                    got[label] = [
                        [(int(a), int(b)) for a, b in zip(dd, rr2, strict=True) if b >= 0]
                        for dd, rr2 in zip(d, r, strict=True)
                    ]
                assert got["pushed"] == got["sdk"] == want, (fraction, modality)
    finally:
        conn.close()


def _reopen(root: Path, uri: str) -> securecmr.Store:
    return securecmr.Store.open(root, passphrase=PASS, milvus_uri=uri)


def test_rebuilt_when_the_server_lost_or_gained_rows(live_milvus: Any, tmp_path: Path) -> None:
    root = tmp_path / "s"
    items = _items("it", 400, seed=3)
    queries = [it.codes["image"] for it in items[:6]]  # type: ignore[index]
    with securecmr.Store.create(
        root, passphrase=PASS, index_backend="milvus", milvus_uri=live_milvus.uri
    ) as store:
        coll = store.create_collection("c", bits=64)
        coll.add(items)
        want = _ranking(coll, queries)
        index = coll._engine.index
        name, tag = index._coll, index._tenant  # type: ignore[attr-defined]
    client = _raw_client(live_milvus.uri)

    def count() -> int:
        rows = client.query(
            name, filter=f'tenant == "{tag}"', output_fields=["count(*)"], consistency_level="Strong"
        )
        return int(rows[0]["count(*)"])

    try:
        # lost: rows deleted behind the store's back (the state marker still says all is well)
        client.delete(name, filter=f'tenant == "{tag}" and rk < {4 * 100}')
        assert count() < 400
        with _reopen(root, live_milvus.uri) as store:
            assert _ranking(store.collection("c"), queries) == want
        assert count() == 400

        # gained: a foreign row under this tenant's tag, at distance 0 from a query
        with _reopen(root, live_milvus.uri) as store:
            salted = store.collection("c")._ops.salted(np.asarray(queries[0], np.uint8))
        client.insert(name, [{"tenant": tag, "seq": 99999, "mod": 1, "rk": 4 * 99999 + 1, "code": salted}])
        assert count() == 401
        with _reopen(root, live_milvus.uri) as store:
            assert _ranking(store.collection("c"), queries) == want
        assert count() == 400

        # wiped: the collection dropped
        client.drop_collection(name)
        with _reopen(root, live_milvus.uri) as store:
            assert _ranking(store.collection("c"), queries) == want
        assert count() == 400
    finally:
        client.close()


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()
    )


def test_erasure_reaches_the_server_files(live_milvus: Any, tmp_path: Path) -> None:
    """After delete + compact, the server flushed and compacted, its garbage collector dropped the
    old segment files (the fixture's server collects every second), and no segment file holds the
    erased item's salted code; only the write-ahead message log (rocksmq) still does, which the
    receipt says. A kept item's code is found in the segment files: the scan would see it."""
    store = securecmr.Store.create(
        tmp_path / "s", passphrase=PASS, index_backend="milvus", milvus_uri=live_milvus.uri
    )
    coll = store.create_collection("c", bits=64, protection="salted+encrypted")
    items = _items("er", 2000, seed=8)
    coll.add(items)
    index = coll._engine.index
    index._client().flush(index._coll)  # type: ignore[attr-defined]  # sealed segments on disk
    gone, kept = items[7], items[8]
    salted_gone = coll._ops.salted(np.asarray(gone.codes["image"], np.uint8))  # type: ignore[index]
    salted_kept = coll._ops.salted(np.asarray(kept.codes["image"], np.uint8))  # type: ignore[index]
    id_hmac = coll._engine.id_hmac(gone.id)
    coll.delete([gone.id])
    receipt = store.compact()
    assert store.verify_receipt(receipt)
    assert receipt["erased"]["c"] == [id_hmac.hex()]
    (report,) = receipt["index"]
    assert report["compacted"] is True
    assert "write-ahead" in report["note"] and "retention" in report["note"]

    storage = live_milvus.storage_dir
    deadline = time.monotonic() + 90
    while True:  # the old segment's files go with the next garbage collection
        holding = [f for f in _files_holding(storage, salted_gone) if not f.startswith("rocksmq")]
        if not holding or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert holding == [], f"the erased code is still in {holding}"
    assert [f for f in _files_holding(storage, salted_kept) if f.startswith("insert_log")]
    assert _files_holding(storage, id_hmac) == []  # id HMACs never reach Milvus at all
    assert all(f.startswith("rocksmq") for f in _files_holding(storage, salted_gone))
    hits = coll.search(code=gone.codes["image"], k=3)  # type: ignore[index]
    assert gone.id not in {h.id for h in hits}
    store.close()

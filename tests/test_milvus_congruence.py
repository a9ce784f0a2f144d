"""Congruence: the same calls on the faiss, Milvus (Lite and a live standalone server) and
brute-force backends give identical results, and those equal an independent reference model of
the collection (minimum Hamming distance over an item's codes, ties broken by insertion order),
through adds, deletes, TTL purges with a legal hold, tenant isolation, record-level policies
through sessions, modality filters, batch search and a reopen. (tests/test_milvus_index.py covers
the widening and chunked-scan paths of the Milvus backend with a small top-k cap.)"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import securecmr

pytest.importorskip("pymilvus", reason="the Milvus backend needs the 'milvus' extra (pymilvus, milvus-lite)")

from securecmr.index import MilvusIndex

PASS = "congruence passphrase"
T0 = 1_800_000_000.0
DEPTS = ("neuro", "onco", "cardio")
POLICY = "item.department in user.departments"
MODS = ("text", "image", "video")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rec:
    id: str
    codes: dict[str, np.ndarray]
    attrs: dict[str, Any]
    expires: float | None
    held: bool = False


@dataclass
class Model:
    """The reference: what each collection holds, in insertion order."""

    colls: dict[str, list[Rec]] = field(default_factory=dict)

    def add(self, coll: str, recs: list[Rec]) -> None:
        self.colls.setdefault(coll, []).extend(recs)

    def delete(self, coll: str, ids: set[str]) -> None:
        self.colls[coll] = [r for r in self.colls[coll] if r.id not in ids]

    def purge(self, now: float) -> None:
        for name, recs in self.colls.items():
            self.colls[name] = [r for r in recs if r.held or r.expires is None or r.expires > now]

    def search(
        self, coll: str, q: np.ndarray, k: int, *, depts: list[str] | None = None, modality: str | None = None
    ) -> list[tuple[str, int]]:
        rows = []
        for pos, r in enumerate(self.colls[coll]):
            if depts is not None and r.attrs["department"] not in depts:
                continue
            ds = [
                int(np.unpackbits(np.bitwise_xor(c, q)).sum())
                for m, c in r.codes.items()
                if modality is None or m == modality
            ]
            if ds:
                rows.append((min(ds), pos, r.id))
        rows.sort()
        return [(i, d) for d, _, i in rows[:k]]


def _recs(
    rng: np.random.Generator, prefix: str, n: int, bits: int, start: int, expires: float | None
) -> list[Rec]:
    out = []
    for i in range(start, start + n):
        codes = {"image": rng.integers(0, 256, bits // 8, dtype=np.uint8)}
        if i % 3 == 0:
            codes["text"] = rng.integers(0, 256, bits // 8, dtype=np.uint8)
        if i % 7 == 0:
            codes["video"] = rng.integers(0, 256, bits // 8, dtype=np.uint8)
        out.append(Rec(f"{prefix}-{i:04d}", codes, {"department": DEPTS[i % 3], "n": i}, expires))
    return out


def _items(recs: list[Rec]) -> list[securecmr.Item]:
    return [securecmr.Item(r.id, attrs=dict(r.attrs), codes=dict(r.codes)) for r in recs]


def _ids(hits: list[Any]) -> list[tuple[str, int]]:
    return [(str(h.id), int(h.distance)) for h in hits]


def _scenario(
    root: Path, backend: str, uri: str | None = None
) -> list[tuple[str, list[tuple[str, int]], list[tuple[str, int]]]]:
    """Run the calls; return (label, store result, reference result) per search."""
    clock = Clock()
    store = securecmr.Store.create(root, passphrase=PASS, clock=clock, index_backend=backend, milvus_uri=uri)
    model = Model()
    rng = np.random.default_rng(7)
    seen: list[tuple[str, list[tuple[str, int]], list[tuple[str, int]]]] = []

    def check(label: str, got: list[Any], want: list[tuple[str, int]]) -> None:
        seen.append((label, _ids(got), want))

    # two hospitals (tenants) with a collection of the same name; 16-bit codes: many ties
    tokens = {}
    for t in ("h1", "h2"):
        tokens[f"{t}-admin"] = store.create_user(
            f"{t}-admin", role="admin", tenant=t, attrs={"departments": list(DEPTS)}
        )
        tokens[f"{t}-neuro"] = store.create_user(f"{t}-neuro", tenant=t, attrs={"departments": ["neuro"]})
        tokens[f"{t}-two"] = store.create_user(
            f"{t}-two", tenant=t, attrs={"departments": ["onco", "cardio"]}
        )
    admins = {t: store.session(tokens[f"{t}-admin"]) for t in ("h1", "h2")}
    for t in ("h1", "h2"):
        admins[t].create_collection("scans", bits=16, policy=POLICY, ttl_hours=1.0)
    first = {t: _recs(rng, f"{t}-first", 120, 16, 0, T0 + 3600) for t in ("h1", "h2")}
    # h2 stores exact copies of some of h1's codes: a leak across tenants would show up at distance 0
    for a, b in zip(first["h1"][:40], first["h2"][:40], strict=True):
        b.codes = {m: c.copy() for m, c in a.codes.items()}
    for t in ("h1", "h2"):
        admins[t].collection("scans").add(_items(first[t]))
        model.add(f"{t}~scans", first[t])
    clock.now = T0 + 1800
    later = {t: _recs(rng, f"{t}-later", 60, 16, 120, T0 + 1800 + 3600) for t in ("h1", "h2")}
    for t in ("h1", "h2"):
        admins[t].collection("scans").add(_items(later[t]))
        model.add(f"{t}~scans", later[t])

    # an operator collection without tenant: 64-bit codes, several modalities per item
    plain = store.create_collection("plain", bits=64, protection="salted+encrypted")
    precs = _recs(rng, "p", 300, 64, 0, None)
    plain.add(_items(precs[:200]))
    plain.add(_items(precs[200:]))
    model.add("plain", precs)

    queries16 = [r.codes["image"] for r in first["h1"][:3]] + [rng.integers(0, 256, 2, dtype=np.uint8)]
    queries64 = [r.codes["image"] for r in precs[:4]] + [rng.integers(0, 256, 8, dtype=np.uint8)]

    def searches(tag: str) -> None:
        for t in ("h1", "h2"):
            for user, depts in (
                (f"{t}-admin", None),
                (f"{t}-neuro", ["neuro"]),
                (f"{t}-two", ["onco", "cardio"]),
            ):
                sess = store.session(tokens[user])
                for qi, q in enumerate(queries16):
                    for k in (5, 40):
                        got = sess.collection("scans").search(code=q, k=k)
                        check(f"{tag}/{user}/q{qi}/k{k}", got, model.search(f"{t}~scans", q, k, depts=depts))
        for qi, q in enumerate(queries64):
            check(f"{tag}/plain/q{qi}", plain.search(code=q, k=12), model.search("plain", q, 12))
            for m in MODS:
                got = plain.search(code=q, k=7, modality=m)
                check(f"{tag}/plain/q{qi}/{m}", got, model.search("plain", q, 7, modality=m))
        batch = plain.search_batch(codes=np.stack(queries64), k=9)
        for qi, (q, hits) in enumerate(zip(queries64, batch, strict=True)):
            check(f"{tag}/plain/batch{qi}", hits, model.search("plain", q, 9))

    searches("added")

    # deletes: by id through a session, and by attribute by the operator
    gone = {r.id for r in first["h1"][::5]}
    admins["h1"].collection("scans").delete(sorted(gone))
    model.delete("h1~scans", gone)
    plain.delete(where={"department": "onco"})
    model.delete("plain", {r.id for r in precs if r.attrs["department"] == "onco"})
    searches("deleted")

    # TTL: the first batch expires, except one item under legal hold
    keep = first["h2"][3]
    store.collection("h2~scans").hold([keep.id])
    keep.held = True
    clock.now = T0 + 3600 + 1
    store.purge()
    model.purge(clock.now)
    searches("purged")

    # reopen: Milvus is adopted (or rebuilt) from the durable record, the faiss segment reloaded
    store.close()
    store = securecmr.Store.open(root, passphrase=PASS, clock=clock)
    plain = store.collection("plain")
    searches("reopened")
    if backend == "milvus":
        assert isinstance(plain._engine.index, MilvusIndex)
        assert not plain._engine.index.degraded
    store.close()
    return seen


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # small searches: OpenMP start-up would dominate on 2 cores
    out = {}
    for backend in ("brute", "faiss", "milvus"):
        root = tmp_path_factory.mktemp(backend) / "store"
        out[backend] = _scenario(root, backend)
        shutil.rmtree(root.parent, ignore_errors=True)
    faiss.omp_set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def server_results(tmp_path_factory: pytest.TempPathFactory, milvus_server: Any) -> Any:
    """The same scenario on a live Milvus standalone server (tenants as partition keys)."""
    if not milvus_server.running:
        milvus_server.start()
    return _scenario(tmp_path_factory.mktemp("server") / "store", "milvus", milvus_server.uri)


def _seen(request: pytest.FixtureRequest, backend: str) -> Any:
    if backend == "milvus-server":
        return request.getfixturevalue("server_results")
    return request.getfixturevalue("results")[backend]


@pytest.mark.parametrize("backend", ["brute", "faiss", "milvus", "milvus-server"])
def test_backend_matches_reference(request: pytest.FixtureRequest, backend: str) -> None:
    seen = _seen(request, backend)
    assert len(seen) > 250
    bad = [label for label, got, want in seen if got != want]
    assert not bad, f"{len(bad)} searches differ from the reference, first: {bad[:3]}"
    assert any(len(want) == 40 for _, _, want in seen)  # the k=40 searches were not cut short


def test_backends_identical(results: dict[str, Any]) -> None:
    ref = [got for _, got, _ in results["faiss"]]
    for backend in ("brute", "milvus"):
        assert [got for _, got, _ in results[backend]] == ref


def test_server_identical_to_faiss(results: dict[str, Any], server_results: Any) -> None:
    assert [got for _, got, _ in server_results] == [got for _, got, _ in results["faiss"]]


@pytest.mark.parametrize("backend", ["milvus", "milvus-server"])
def test_scenario_exercises_ties_and_isolation(request: pytest.FixtureRequest, backend: str) -> None:
    """The reference is not vacuous: equal distances occur inside results, and tenant h2 never
    sees h1's items although it holds copies of their codes."""
    seen = _seen(request, backend)
    assert any(len({d for _, d in want}) < len(want) for _, _, want in seen)
    for label, got, _ in seen:
        tenant = label.split("/")[1].split("-")[0]
        if tenant in ("h1", "h2"):
            assert all(i.startswith(tenant) for i, _ in got), label

"""Conveniences users of vector databases expect: add(one Item), upsert, search(where=...) that
never widens a policy (hypothesis, against brute force), and a closed store refusing every call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import securecmr
from securecmr.errors import (
    DuplicateItemError,
    LegalHoldError,
    PermissionDeniedError,
    PolicyError,
    StoreClosedError,
)

PASS = "conveniences passphrase"
WARDS = ("a", "b", "c")


def _code(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, 8, dtype=np.uint8)


def test_add_one_item_and_upsert(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as store:
        coll = store.create_collection("c")
        assert coll.add(securecmr.Item("x", codes={"text": _code(rng)}, attrs={"v": 1})) == 1
        with pytest.raises(DuplicateItemError):
            coll.add(securecmr.Item("x", codes={"text": _code(rng)}))
        new_code = _code(rng)
        assert coll.upsert([securecmr.Item("x", codes={"image": new_code}, attrs={"v": 2}),
                            securecmr.Item("y", codes={"text": _code(rng)})]) == 2  # fmt: skip
        assert len(coll) == 2 and coll.get("x").attrs == {"v": 2}
        (hit,) = coll.search(code=new_code, k=1)
        assert hit.id == "x" and hit.distance == 0 and hit.modality == "image"  # the old code is gone
        coll.hold(["y"])
        with pytest.raises(LegalHoldError):
            coll.upsert(securecmr.Item("y", codes={"text": _code(rng)}))
        assert coll.ids() == ["x", "y"]  # a refused upsert changed nothing
        actions = [r["action"] for r in store.audit.records() if r.get("collection") == "c"]
        assert actions.count("upsert") == 2
        receipt = store.compact()
        assert receipt["count"] == 1  # the replaced item's old row was erased


def test_upsert_respects_permissions_and_policy(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as store:
        coll = store.create_collection("c", policy="item.ward in user.wards")
        coll.add([securecmr.Item("a1", codes={"text": _code(rng)}, attrs={"ward": "a"}),
                  securecmr.Item("b1", codes={"text": _code(rng)}, attrs={"ward": "b"})])  # fmt: skip
        cur = store.session(store.create_user("cur", role="curator", attrs={"wards": ["a"]})).collection("c")
        assert cur.upsert(securecmr.Item("a1", codes={"text": _code(rng)}, attrs={"ward": "a", "n": 2})) == 1
        with pytest.raises(PermissionDeniedError):
            cur.upsert(securecmr.Item("b1", codes={"text": _code(rng)}, attrs={"ward": "a"}))
        with pytest.raises(PermissionDeniedError):
            cur.upsert(securecmr.Item("a2", codes={"text": _code(rng)}, attrs={"ward": "b"}))
        reader = store.session(store.create_user("r", role="reader", attrs={"wards": ["a"]})).collection("c")
        with pytest.raises(PermissionDeniedError):
            reader.upsert(securecmr.Item("a3", codes={"text": _code(rng)}, attrs={"ward": "a"}))
        assert store.collection("c").get("b1").attrs == {"ward": "b"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("where") / "st"
    store = securecmr.Store.create(path, passphrase=PASS)
    coll = store.create_collection("c", policy="item.ward in user.wards")
    attrs = [{"ward": WARDS[i % 3], "level": int(rng.integers(0, 4))} for i in range(60)]
    for i in range(0, 60, 7):
        attrs[i].pop("level")  # some items lack an attribute (three-valued logic)
    coll.add([securecmr.Item(f"i{i}", codes={"text": _code(rng)}, attrs=a) for i, a in enumerate(attrs)])
    tokens = {
        "wa": store.create_user("wa", role="reader", attrs={"wards": ["a"], "level": 2}),
        "wab": store.create_user("wab", role="reader", attrs={"wards": ["a", "b"], "level": 1}),
    }
    yield store, dict(zip([f"i{i}" for i in range(60)], attrs, strict=True)), tokens
    store.close()


_atom = st.one_of(
    st.sampled_from(WARDS).map(lambda w: f"item.ward == '{w}'"),
    st.integers(0, 4).map(lambda n: f"item.level >= {n}"),
    st.just("item.level <= user.level"),
    st.just("item.ward in user.wards"),
    st.just("true"),
    st.just("false"),
)
_expr = st.recursive(
    _atom,
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda t: f"({t[0]}) or ({t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}) and ({t[1]})"),
        inner.map(lambda e: f"not ({e})"),
    ),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=_expr, who=st.sampled_from(["wa", "wab", "@operator"]), seed=st.integers(0, 10**6))
def test_where_never_widens_the_policy(world: tuple, where: str, who: str, seed: int) -> None:
    from securecmr.access import compile_policy

    store, attrs, tokens = world
    code = _code(np.random.default_rng(seed))
    if who == "@operator":
        coll, ctx, policy = store.collection("c"), {}, None
    else:
        sess = store.session(tokens[who])
        coll = sess.collection("c")
        user = store._access.registry.users[who]
        ctx, policy = user.policy_context(), compile_policy("item.ward in user.wards")
    flt = compile_policy(where)
    base = [h.id for h in coll.search(code=code, k=100)]
    narrowed = [h.id for h in coll.search(code=code, k=100, where=where)]
    expected = [i for i in base if flt.allows(attrs[i], ctx)]  # brute force, same order
    assert narrowed == expected
    visible = {i for i, a in attrs.items() if policy is None or policy.allows(a, ctx)}
    assert set(narrowed) <= visible  # never an item the policy hides
    assert set(coll.ids(where=where)) == set(expected)


def test_where_cannot_escape_its_parentheses(world: tuple) -> None:
    store, attrs, tokens = world
    coll = store.session(tokens["wa"]).collection("c")
    code = np.zeros(8, np.uint8)
    for bad in ("true) or (true", "item.ward == 'a') or (item.ward == 'b'", "", "item.", "1 +"):
        with pytest.raises((PolicyError, securecmr.errors.ConfigurationError)):
            coll.search(code=code, k=10, where=bad)
    assert {attrs[h.id]["ward"] for h in coll.search(code=code, k=100, where="true")} == {"a"}


def test_closed_store_refuses_collections_and_sessions(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    store = securecmr.Store.create(tmp_path / "st", passphrase=PASS)
    coll = store.create_collection("c")
    coll.add(securecmr.Item("x", codes={"text": _code(rng)}))
    sess = store.session(store.create_user("u", role="curator"))
    guarded = sess.collection("c")
    store.close()
    log = tmp_path / "st" / "access" / "audit"
    before = {p.name: p.read_bytes() for p in log.iterdir()}
    for call in (
        lambda: coll.search(code=_code(rng), k=1),
        lambda: coll.search_batch(codes=np.zeros((2, 8), np.uint8), k=1),
        lambda: coll.get("x"),
        lambda: coll.ids(),
        lambda: len(coll),
        lambda: coll.add(securecmr.Item("y", codes={"text": _code(rng)})),
        lambda: coll.upsert(securecmr.Item("x", codes={"text": _code(rng)})),
        lambda: coll.delete("x"),
        lambda: coll.hold(["x"]),
        lambda: guarded.search(code=_code(rng), k=1),
        lambda: guarded.add(securecmr.Item("z", codes={"text": _code(rng)})),
        lambda: sess.collection("c"),
        lambda: sess.collections(),
    ):
        with pytest.raises(StoreClosedError):
            call()
    assert {p.name: p.read_bytes() for p in log.iterdir()} == before  # nothing written after close

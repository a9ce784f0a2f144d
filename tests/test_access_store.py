"""Sessions: permissions, tenants, policies, revocation and one audit record per call.

Each test runs on the real ``securecmr.Store``: sessions reach collections only through the gate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import securecmr
from securecmr.errors import (
    AuthenticationError,
    CollectionNotFoundError,
    ItemNotFoundError,
    PermissionDeniedError,
    PolicyError,
)

PASS = "correct horse battery staple"
BITS = 64


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _code(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=BITS // 8, dtype=np.uint8)


def _items(n: int, seed: int = 0, real: bool = True) -> list[Any]:
    rng = np.random.default_rng(seed)
    depts = ["neuro", "onco", "cardio"]
    return [
        securecmr.Item(
            f"study-{i}",
            attrs={"department": depts[i % 3], "sensitivity": i % 4},
            codes={"image": _code(rng)},
        )
        for i in range(n)
    ]


def _n_records(store: Any) -> int:
    return sum(1 for _ in store.audit.records())


def _open(kind: str, path: Path, clock: Clock | None = None) -> Any:
    return securecmr.Store.create(path, passphrase=PASS, clock=clock)


@pytest.fixture(params=["real"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    clock = Clock()
    st_ = _open(request.param, tmp_path / "s", clock)
    st_.test_clock = clock
    st_.real = request.param == "real"
    yield st_
    st_.close()


def test_two_users_see_different_results(store: Any) -> None:
    admin = store.session(store.create_user("root", role="admin"))
    coll = admin.create_collection("ct", bits=BITS, policy="item.department in user.departments")
    coll.add(_items(30, real=store.real))
    ana = store.session(store.create_user("ana", role="reader", attrs={"departments": ["neuro"]}))
    bob = store.session(store.create_user("bob", role="reader", attrs={"departments": ["onco", "cardio"]}))
    q = _code(np.random.default_rng(7))
    ha = ana.collection("ct").search(code=q, k=5)
    hb = bob.collection("ct").search(code=q, k=5)
    assert len(ha) == 5 and len(hb) == 5
    assert all(h.attrs["department"] == "neuro" for h in ha)
    assert all(h.attrs["department"] in ("onco", "cardio") for h in hb)
    auditor = store.session(store.create_user("aud", role="auditor"))
    report = auditor.audit.verify()
    assert report.records >= 8


def test_permissions_tokens_and_denials_are_logged(store: Any) -> None:
    admin = store.session(store.create_user("root", role="admin"))
    admin.create_collection("ct", bits=BITS).add(_items(5, real=store.real))
    token = store.create_user("rita", role="reader", ttl_hours=1)
    rita = store.session(token)
    before = _n_records(store)
    with pytest.raises(PermissionDeniedError):
        rita.collection("ct").add(_items(1, seed=9, real=store.real))
    with pytest.raises(PermissionDeniedError):
        rita.collection("ct").delete(["study-1"])
    with pytest.raises(PermissionDeniedError):
        rita.create_collection("mine", bits=BITS)
    with pytest.raises(PermissionDeniedError):
        _ = rita.audit
    assert _n_records(store) == before + 4
    recs = list(store.audit.records())[-4:]
    assert all(r["outcome"] == "denied" and r["principal"] == "rita" for r in recs)
    with pytest.raises(AuthenticationError):
        store.session(token[:-3] + "AAA")
    store.test_clock.now += 2 * 3600
    with pytest.raises(AuthenticationError, match="expired"):
        store.session(token)
    store.test_clock.now -= 2 * 3600
    store.revoke_user("rita")
    with pytest.raises(AuthenticationError, match="revoked"):
        store.session(token)
    with pytest.raises(AuthenticationError, match="revoked"):
        rita.collection("ct")  # an open session notices the revocation
    assert store.audit.verify().records == _n_records(store)


def test_tenants_are_isolated(store: Any) -> None:
    a = store.session(store.create_user("a_admin", role="admin", tenant="north"))
    b = store.session(store.create_user("b_admin", role="admin", tenant="south"))
    a.create_collection("ct", bits=BITS).add(_items(4, real=store.real))
    with pytest.raises(CollectionNotFoundError) as other:
        b.collection("ct")
    with pytest.raises(CollectionNotFoundError) as missing:
        b.collection("nope")
    assert str(other.value) == str(missing.value)
    assert "north" not in str(other.value)
    assert b.collections() == [] and a.collections() == ["ct"]
    b.create_collection("ct", bits=BITS)  # same name, other tenant: no clash
    assert b.collection("ct").search(code=_code(np.random.default_rng(1)), k=3) == []
    with pytest.raises(CollectionNotFoundError):
        a.collection("north~ct")


def test_policy_refused_and_hidden_items_unreachable(store: Any) -> None:
    admin = store.session(store.create_user("root", role="admin"))
    with pytest.raises(PolicyError):
        admin.create_collection("bad", bits=BITS, policy="item.department in")
    coll = admin.create_collection("ct", bits=BITS, policy="item.sensitivity <= user.clearance")
    coll.add(_items(12, real=store.real))
    cur = store.session(store.create_user("cur", role="curator", attrs={"clearance": 1}))
    with pytest.raises(ItemNotFoundError) as hidden:
        cur.collection("ct").delete(["study-3"])  # sensitivity 3: invisible to this curator
    with pytest.raises(ItemNotFoundError) as missing:
        cur.collection("ct").delete(["study-999"])
    assert str(hidden.value).replace("study-3", "X") == str(missing.value).replace("study-999", "X")
    cur.collection("ct").delete(["study-1"])
    hits = cur.collection("ct").search(code=_code(np.random.default_rng(3)), k=20)
    assert {h.id for h in hits} == {f"study-{i}" for i in range(12) if i % 4 <= 1 and i != 1}


def test_score_privacy_and_k_cap(store: Any) -> None:
    from securecmr.access import Role

    store.add_role(Role.create("triage", ["search"], max_k=3, round_to=0.25, near_duplicate=0.75))
    admin = store.session(store.create_user("root", role="admin"))
    items = _items(10, real=store.real)
    admin.create_collection("ct", bits=BITS).add(items)
    t = store.session(store.create_user("t", role="triage"))
    hits = t.collection("ct").search(code=items[0].codes["image"], k=10)
    assert len(hits) == 3
    assert hits[0].score == 0.75  # an exact copy reads like a near-duplicate
    assert all(h.score in (0.0, 0.25, 0.5, 0.75) for h in hits)


_user_st = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["reader", "curator", "admin", "auditor"]),
        "departments": st.lists(st.sampled_from(["neuro", "onco", "cardio"]), max_size=3, unique=True),
        "clearance": st.integers(0, 3),
    }
)
_POLICIES = [
    None,
    "item.department in user.departments",
    "item.sensitivity <= user.clearance",
    "item.department in user.departments and item.sensitivity <= user.clearance",
    'user.role == "admin" or item.department in user.departments',
    "not (item.department in user.departments)",
]


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@pytest.mark.parametrize("kind", ["real"])
@given(
    users=st.lists(_user_st, min_size=1, max_size=3),
    policy=st.sampled_from(_POLICIES),
    n=st.integers(1, 40),
    queries=st.lists(
        st.tuples(st.integers(0, 2), st.integers(1, 15), st.integers(0, 2**16)), min_size=1, max_size=4
    ),
)
def test_property_results_authorised_exact_and_audited(
    kind: str,
    tmp_path_factory: pytest.TempPathFactory,
    users: list[dict[str, Any]],
    policy: str | None,
    n: int,
    queries: list[tuple[int, int, int]],
) -> None:
    from securecmr.access import compile_policy

    path = tmp_path_factory.mktemp("prop") / "s"
    with _open(kind, path) as store:
        admin = store.session(store.create_user("root", role="admin"))
        items = _items(n, seed=n, real=kind == "real")
        admin.create_collection("c", bits=BITS, policy=policy).add(items)
        sessions = []
        for i, u in enumerate(users):
            attrs = {"departments": u["departments"], "clearance": u["clearance"]}
            sessions.append((u, store.session(store.create_user(f"u{i}", role=u["role"], attrs=attrs))))
        compiled = compile_policy(policy) if policy else None
        for who, k, seed in queries:
            u, sess = sessions[who % len(sessions)]
            q = _code(np.random.default_rng(seed))
            before = _n_records(store)
            if u["role"] == "auditor":
                with pytest.raises(PermissionDeniedError):
                    sess.collection("c").search(code=q, k=k)
                assert _n_records(store) == before + 1
                continue
            hits = sess.collection("c").search(code=q, k=k)
            assert _n_records(store) == before + 1  # exactly one audit record per call
            ctx = {**u, "name": "x", "tenant": None}
            authorised = [it for it in items if compiled is None or compiled.allows(it.attrs, ctx)]
            ids = {h.id for h in hits}
            assert ids <= {it.id for it in authorised}
            dist = sorted(int(np.unpackbits(it.codes["image"] ^ q).sum()) for it in authorised)[:k]
            assert sorted(round((1 - h.score) * BITS) for h in hits) == dist
        assert store.audit.verify().records == _n_records(store)


def test_access_demo(store: Any) -> None:
    from securecmr.access import run_access_demo

    rng = np.random.default_rng(5)
    codes = {f"img{i}": _code(rng) for i in range(8)}
    out = run_access_demo(store, codes, _code(rng), k=3, item_factory=None)
    assert out["different_results"]
    assert {r["department"] for r in out["users"]["ana"]["results"]} == {"radiology"}
    assert {r["department"] for r in out["users"]["omar"]["results"]} == {"oncology"}
    assert out["audit"]["ok"]


def test_audit_export_needs_permission(store: Any) -> None:
    import io

    reader = store.session(store.create_user("r", role="reader"))
    auditor = store.session(store.create_user("a", role="auditor"))
    with pytest.raises(PermissionDeniedError):
        reader.export_audit(io.StringIO())
    buf = io.StringIO()
    n = auditor.export_audit(buf)
    assert n == len(buf.getvalue().splitlines()) >= 3
    assert list(store.audit.records())[-1]["action"] == "audit.export"

"""Policy-filtered search through sessions, on every in-memory backend (property-based): results are
authorised and equal brute force over the authorised items, at every selectivity (selective sets
searched as a packed copy, permissive ones through a row mask), with multi-code items and a
modality filter, after deletes too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import securecmr
from securecmr.access import Role, compile_policy

POLICIES = [
    "item.department in user.departments",
    "item.sensitivity <= user.clearance",
    "item.site in user.sites and item.sensitivity <= user.clearance",
    "item.department in user.departments or item.public == true",
    "not (item.site in user.sites)",
]

_item = st.fixed_dictionaries(
    {},
    optional={
        "department": st.sampled_from(["neuro", "onco", "cardio"]),
        "sensitivity": st.integers(0, 3),
        "site": st.sampled_from(["A", "B", "C"]),
        "public": st.booleans(),
    },
)
_user = st.fixed_dictionaries(
    {
        "departments": st.lists(st.sampled_from(["neuro", "onco", "cardio"]), max_size=2),
        "clearance": st.integers(0, 3),
        "sites": st.lists(st.sampled_from(["A", "B", "C"]), max_size=2),
    }
)
MODS = ("text", "image")


def _brute(
    rows: list[tuple[str, dict[str, np.ndarray], dict[str, Any]]], q: np.ndarray, k: int, modality: str | None
) -> list[tuple[str, int]]:
    out = []
    for pos, (item_id, codes, _) in enumerate(rows):
        ds = [int(np.unpackbits(c ^ q).sum()) for m, c in codes.items() if modality is None or m == modality]
        if ds:
            out.append((min(ds), pos, item_id))
    out.sort()
    return [(i, d) for d, _, i in out[:k]]


@pytest.mark.parametrize("backend", ["brute", "faiss"])
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    attrs=st.lists(_item, min_size=1, max_size=60),
    user=_user,
    policy_src=st.sampled_from(POLICIES),
    k=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    modality=st.sampled_from([None, "text", "image"]),
    deletes=st.integers(0, 5),
)
def test_filtered_session_search_is_authorised_and_exact(
    tmp_path_factory: pytest.TempPathFactory,
    backend: str,
    attrs: list[dict[str, Any]],
    user: dict[str, Any],
    policy_src: str,
    k: int,
    seed: int,
    modality: str | None,
    deletes: int,
) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for i, a in enumerate(attrs):
        mods = [m for m in MODS if rng.random() < 0.6] or ["image"]
        rows.append((f"i{i}", {m: rng.integers(0, 256, 2, dtype=np.uint8) for m in mods}, a))  # 16 bits: ties
    path: Path = tmp_path_factory.mktemp("pf")
    with securecmr.Store.create(path / "s", "pf passphrase", index_backend=backend) as store:
        coll = store.create_collection("c", bits=16, protection="salted+encrypted")
        coll.add([securecmr.Item(i, attrs=a, codes=c) for i, c, a in rows])
        for j in (
            rng.choice(len(rows), min(deletes, len(rows) - 1), replace=False).tolist() if deletes else []
        ):
            coll.delete([rows[j][0]])
        gone = set(rows[j][0] for j in range(len(rows))) - set(coll.ids())
        rows = [r for r in rows if r[0] not in gone]
        store.add_role(Role.create("pol", ["search"], policy=policy_src))
        sess = store.session(store.create_user("u", role="pol", attrs=user)).collection("c")
        policy = compile_policy(policy_src)
        ctx = {**user, "name": "u", "role": "pol", "tenant": None}
        allowed = [r for r in rows if policy.allows(r[2], ctx)]
        for _ in range(3):
            q = rng.integers(0, 256, 2, dtype=np.uint8)
            hits = sess.search(code=q, k=k, modality=modality)
            assert [(h.id, h.distance) for h in hits] == _brute(allowed, q, k, modality)

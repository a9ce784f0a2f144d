"""Policy-filtered search (property-based): results are authorised and equal brute-force top-k."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securecmr.access import AttributeTable, compile_policy
from securecmr.access._filter import AllowedSetCache

POLICIES = [
    "item.department in user.departments",
    "item.sensitivity <= user.clearance",
    "item.site in user.sites and item.sensitivity <= user.clearance",
    "item.department in user.departments or item.public == true",
    "not (item.site in user.sites)",
    'user.role == "admin" or item.department in user.departments',
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
        "role": st.sampled_from(["reader", "admin"]),
        "departments": st.lists(st.sampled_from(["neuro", "onco", "cardio"]), max_size=2),
        "clearance": st.integers(0, 3),
        "sites": st.lists(st.sampled_from(["A", "B", "C"]), max_size=2),
    }
)


def _popcount_distance(codes: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.unpackbits(codes ^ q[None, :], axis=1).sum(axis=1)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(_item, min_size=1, max_size=60),
    user=_user,
    policy_src=st.sampled_from(POLICIES),
    k=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_filtered_search_is_authorised_and_exact(
    items: list[dict[str, Any]], user: dict[str, Any], policy_src: str, k: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, size=(len(items), 2), dtype=np.uint8)  # 16-bit codes: many ties
    query = rng.integers(0, 256, size=2, dtype=np.uint8)
    table = AttributeTable()
    table.append(items)
    policy = compile_policy(policy_src)
    authorised = np.array([policy.allows(it, user) for it in items])
    live = rng.random(len(items)) > 0.1  # some rows deleted
    entry = AllowedSetCache().get("c", 1, policy, user, table, codes, live=live)
    dist, rows = entry.search(query, k)
    allowed_rows = np.flatnonzero(authorised & live)
    assert set(rows.tolist()) <= set(allowed_rows.tolist())
    brute = np.sort(_popcount_distance(codes[allowed_rows], query))[:k]
    assert len(rows) == min(k, len(allowed_rows))  # k authorised hits whenever k exist
    assert dist.tolist() == brute.tolist()  # the same distances as brute force over the allowed set
    assert (_popcount_distance(codes[rows], query) == dist).all()


def test_cache_reuses_and_invalidates() -> None:
    table = AttributeTable()
    table.append([{"site": "A"}, {"site": "B"}])
    codes = np.array([[1], [2]], dtype=np.uint8)
    policy = compile_policy("item.site in user.sites")
    cache = AllowedSetCache(max_entries=2)
    a = cache.get("c", 1, policy, {"sites": ["A"]}, table, codes)
    assert cache.get("c", 1, policy, {"sites": ["A"]}, table, codes) is a
    assert a.rows.tolist() == [0]
    b = cache.get("c", 2, policy, {"sites": ["A"]}, table, codes)  # new version: old entry dropped
    assert b is not a and len(cache) == 1
    cache.get("c", 2, policy, {"sites": ["B"]}, table, codes)
    cache.get("c", 2, policy, {"sites": ["A", "B"]}, table, codes)
    assert len(cache) == 2


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(_item, min_size=1, max_size=80),
    user=_user,
    policy_src=st.sampled_from(POLICIES),
    k=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    min_fraction=st.sampled_from([0.0001, 0.05, 1.1]),
)
def test_cold_search_paths_agree_with_brute_force(
    items: list[dict[str, Any]], user: dict[str, Any], policy_src: str, k: int, seed: int, min_fraction: float
) -> None:
    from securecmr.access._filter import binary_index

    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, size=(len(items), 2), dtype=np.uint8)
    query = rng.integers(0, 256, size=2, dtype=np.uint8)
    table = AttributeTable()
    table.append(items)
    policy = compile_policy(policy_src)
    live = rng.random(len(items)) > 0.1
    cache = AllowedSetCache(min_fraction=min_fraction, sample_size=16)
    dist, rows = cache.search("c", 1, policy, user, table, codes, binary_index(codes), query, k, live=live)
    allowed_rows = np.flatnonzero(np.array([policy.allows(it, user) for it in items]) & live)
    assert set(rows.tolist()) <= set(allowed_rows.tolist())
    assert len(rows) == min(k, len(allowed_rows))
    assert dist.tolist() == np.sort(_popcount_distance(codes[allowed_rows], query))[:k].tolist()
    assert (_popcount_distance(codes[rows], query) == dist).all()

"""Property tests of input canonicalisation: any id and attrs the store accepts can be searched,
fetched, deleted, audited and exported; anything it refuses leaves nothing behind."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _store_helpers import new_store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import securecmr
from securecmr._validate import MAX_ID_BYTES, canonical_attrs, canonical_id
from securecmr.errors import InputError

_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_json = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_ids = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.just("x" * (MAX_ID_BYTES + 1)),
    st.just("é" * (MAX_ID_BYTES // 2)),
)
_attrs = st.dictionaries(st.text(max_size=12), _json, max_size=4)


def _accepted(item_id: Any, attrs: Any) -> bool:
    try:
        canonical_id(item_id)
        canonical_attrs(attrs)
    except InputError:
        return False
    return True


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(item_id=_ids, attrs=_attrs, data=st.data())
def test_accepted_input_round_trips_and_refused_input_leaves_nothing(
    tmp_path_factory: pytest.TempPathFactory, item_id: Any, attrs: dict[str, Any], data: st.DataObject
) -> None:
    path: Path = tmp_path_factory.mktemp("in")
    code = np.frombuffer(data.draw(st.binary(min_size=8, max_size=8)), np.uint8)
    other = securecmr.Item("anchor", attrs={"a": 1}, codes={"image": code ^ 0xFF})
    with new_store(path) as store:
        coll = store.create_collection("c", protection="salted+encrypted")
        coll.add([other])
        n_before = sum(1 for _ in store.audit.records())
        item = securecmr.Item(item_id, attrs=attrs, labels=("l",), codes={"image": code})
        if not _accepted(item_id, attrs) or (isinstance(item_id, str) and item_id == "anchor"):
            with pytest.raises((InputError, securecmr.errors.DuplicateItemError)):
                coll.add([item])
            assert coll.ids() == ["anchor"]  # nothing stored
            recs = list(store.audit.records())[n_before:]
            assert [r["outcome"] for r in recs] == ["denied", "allowed"]  # the refusal, then ids()
        else:
            assert coll.add([item]) == 1
            (hit,) = [h for h in coll.search(code=code, k=2) if h.distance == 0]
            assert hit.id == item_id and type(hit.id) is type(item_id)
            assert hit.attrs == json.loads(json.dumps(canonical_attrs(attrs)))
            got = coll.get(item_id)
            assert got.attrs == hit.attrs and got.labels == ("l",)
            assert all(
                not (isinstance(v, float) and not math.isfinite(v)) for v in got.attrs.values()
            )
            buf = io.StringIO()
            assert store.audit.export(buf) == sum(1 for _ in store.audit.records())
            assert coll.delete([item_id]) == 1
            assert coll.ids() == ["anchor"]
        assert store.audit.verify().records == sum(1 for _ in store.audit.records())
    with securecmr.Store.open(path / "store", "correct horse battery staple") as again:
        assert again.collection("c").ids() == ["anchor"]


@pytest.mark.parametrize(
    "bad",
    [
        {"x": float("nan")},
        {"x": [1, float("inf")]},
        {"x": {"y": {"z": {"w": {"v": {"u": 1}}}}}},
        {1: "int key"},
        {"x": object()},
        {"x": "a" * (70 * 1024)},
        {"bad\x00key": 1},
    ],
)
def test_bad_attrs_are_refused_naming_the_item(tmp_path: Path, bad: dict[Any, Any]) -> None:
    with new_store(tmp_path) as store:
        coll = store.create_collection("c")
        good = securecmr.Item("ok", codes={"image": np.zeros(8, np.uint8)})
        with pytest.raises(InputError, match="item 1"):
            coll.add([good, securecmr.Item("b", attrs=bad, codes={"image": np.ones(8, np.uint8)})])
        assert coll.ids() == []

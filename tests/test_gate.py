"""The gate: every call, operator reads included, leaves exactly one audit record; a write is
acknowledged only after its record is durable, and a failure at any step leaves no committed
change without a record; curators are bound by the policy on writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _store_helpers import PASS, items, new_store

import securecmr
from securecmr.errors import (
    ConfigurationError,
    DuplicateItemError,
    InputError,
    ItemNotFoundError,
    PermissionDeniedError,
)


def _n(store: securecmr.Store) -> int:
    return sum(1 for _ in store.audit.records())


def _last(store: securecmr.Store) -> dict[str, Any]:
    return list(store.audit.records())[-1]


def test_every_operator_call_is_audited_once(tmp_path: Path) -> None:
    data = items(20)
    with new_store(tmp_path) as store:
        coll = store.create_collection("c")
        q = data[0].codes["image"]  # type: ignore[index]
        calls = [
            ("add", lambda: coll.add(data)),
            ("search", lambda: coll.search(code=q, k=3)),
            ("search_batch", lambda: coll.search_batch(codes=np.stack([q, q]), k=2)),
            ("get", lambda: coll.get(data[1].id)),
            ("ids", lambda: coll.ids()),
            ("hold", lambda: coll.hold([data[2].id])),
            ("release", lambda: coll.release([data[2].id])),
            ("delete", lambda: coll.delete([data[3].id])),
        ]
        for action, call in calls:
            before = _n(store)
            call()
            assert _n(store) == before + 1, action
            rec = _last(store)
            assert (rec["action"], rec["principal"], rec["outcome"]) == (action, "@operator", "allowed")
        # refused operator calls are recorded once too, as denied
        for action, call in [
            ("get", lambda: coll.get("nobody")),
            ("search", lambda: coll.search(code=q, k=0)),
            ("add", lambda: coll.add([securecmr.Item("x\ud800", codes={"image": q})])),
            ("delete", lambda: coll.delete(["nobody"])),
        ]:
            before = _n(store)
            with pytest.raises((ItemNotFoundError, ConfigurationError, InputError)):
                call()
            assert _n(store) == before + 1, action
            assert _last(store)["outcome"] == "denied"
        assert store.audit.verify().records == _n(store)


def test_no_public_parameter_skips_the_record(tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        coll = store.create_collection("c")
        with pytest.raises(TypeError):
            coll.add(items(2), context="me")  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            coll.search(code=np.zeros(8, np.uint8), context="me")  # type: ignore[call-arg]


def test_lone_surrogate_id_is_refused_whole_and_nothing_is_stored(tmp_path: Path) -> None:
    data = items(5)
    bad = securecmr.Item("x\ud800", codes={"image": np.zeros(8, np.uint8)})
    with new_store(tmp_path) as store:
        coll = store.create_collection("c")
        with pytest.raises(InputError, match="item 5"):
            coll.add([*data, bad])
        assert len(coll) == 0
        coll.add(data)
        assert len(coll.search(code=np.zeros(8, np.uint8), k=10)) == 5
    with securecmr.Store.open(tmp_path / "store", PASS) as store:
        assert len(store.collection("c")) == 5
        assert store.audit.verify().records == _n(store)


class _FailingConn:
    """A connection that raises on one statement (fault injection around the commit)."""

    def __init__(self, conn: sqlite3.Connection, fail_on: str) -> None:
        self._conn, self._fail_on = conn, fail_on

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith(self._fail_on):
            self._fail_on = "\0never"
            if sql == "COMMIT":
                raise sqlite3.OperationalError("disk I/O error (injected)")
            raise sqlite3.OperationalError("injected")
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        if sql.startswith(self._fail_on):
            self._fail_on = "\0never"
            raise sqlite3.OperationalError("injected")
        return self._conn.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.mark.parametrize("step", ["seal", "insert", "audit-append", "audit-sync", "commit"])
@pytest.mark.parametrize("action", ["add", "delete", "hold"])
def test_fault_at_each_step_leaves_no_unrecorded_change(tmp_path: Path, step: str, action: str) -> None:
    if action == "hold" and step == "seal":
        pytest.skip("a hold seals nothing")
    data = items(10)
    store = new_store(tmp_path)
    coll = store.create_collection("c")
    coll.add(data[:5])
    engine = coll._engine
    audit = store.audit
    ids_before = coll.ids()
    before_records = _n(store)

    def boom(*_a: Any, **_k: Any) -> None:
        raise OSError("injected")

    patches: list[tuple[Any, str, Any]] = []
    if step == "seal":
        patches.append((engine, "_seal_block", boom))
    elif step == "insert":
        engine.conn = _FailingConn(engine.conn, "INSERT INTO blocks" if action == "add" else "UPDATE blocks")  # type: ignore[assignment]
        if action == "hold":
            engine.conn = _FailingConn(engine.conn, "INSERT OR IGNORE INTO holds")  # type: ignore[assignment]
    elif step == "audit-append":
        patches.append((audit, "append", boom))
    elif step == "audit-sync":
        patches.append((audit, "sync", boom))
    else:
        engine.conn = _FailingConn(engine.conn, "COMMIT")  # type: ignore[assignment]
    originals = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, fn in patches:
        setattr(obj, name, fn)
    try:
        with pytest.raises((OSError, sqlite3.OperationalError)):
            if action == "add":
                coll.add(data[5:])
            elif action == "delete":
                coll.delete([data[0].id])
            else:
                coll.hold([data[0].id])
    finally:
        for obj, name, fn in originals:
            setattr(obj, name, fn)
        if isinstance(engine.conn, _FailingConn):
            while isinstance(engine.conn, _FailingConn):
                engine.conn = engine.conn._conn  # type: ignore[assignment]
    assert coll.ids() == ids_before  # nothing changed in memory
    recs = list(store.audit.records())[before_records:-1]  # the last one is the ids() just above
    allowed = [r for r in recs if r["action"] == action and r["outcome"] == "allowed"]
    if step == "commit":  # the record was durable first, then the commit failed: recorded as rolled back
        assert len(allowed) == 1 and recs[-1]["outcome"] == "denied" and "rolled back" in recs[-1]["reason"]
    elif step in ("audit-append",):
        assert recs == []  # auditing itself failed: no record, and no change
    elif step == "audit-sync":
        pass  # the line may be on disk without its fsync; the write was rolled back (documented)
    else:
        assert len(recs) == 1 and recs[0]["outcome"] == "denied"
    store.close()
    with securecmr.Store.open(tmp_path / "store", PASS) as again:
        c2 = again.collection("c")
        assert c2.ids() == ids_before  # nothing committed
        if action == "delete":
            c2.delete([data[0].id])  # not under hold, still there
        assert again.audit.verify().records == _n(again)


def _policy_store(tmp_path: Path) -> tuple[securecmr.Store, Any, Any]:
    store = new_store(tmp_path)
    coll = store.create_collection("c", policy="item.ward in user.wards")
    rng = np.random.default_rng(0)
    coll.add(
        [
            securecmr.Item(
                f"i{i}", attrs={"ward": "ab"[i % 2]}, codes={"image": rng.integers(0, 256, 8, np.uint8)}
            )
            for i in range(10)
        ]
    )
    cur = store.session(store.create_user("cur", role="curator", attrs={"wards": ["a"]})).collection("c")
    return store, coll, cur


def test_curator_writes_are_bound_by_the_policy(tmp_path: Path) -> None:
    store, coll, cur = _policy_store(tmp_path)
    code = np.zeros(8, np.uint8)
    with pytest.raises(PermissionDeniedError, match="outside your policy"):
        cur.add([securecmr.Item("new-b", attrs={"ward": "b"}, codes={"image": code})])
    assert "new-b" not in coll.ids()
    assert cur.add([securecmr.Item("new-a", attrs={"ward": "a"}, codes={"image": code})]) == 1
    # an id that exists but is hidden reads exactly like one that does not exist, for every write
    for write in ("delete", "hold", "release"):
        with pytest.raises(ItemNotFoundError) as hidden:
            getattr(cur, write)(["i1"])  # ward b
        with pytest.raises(ItemNotFoundError) as missing:
            getattr(cur, write)(["nobody"])
        assert str(hidden.value) == str(missing.value)
    with pytest.raises(ItemNotFoundError) as hidden_get:
        cur.get("i1")
    with pytest.raises(ItemNotFoundError) as missing_get:
        cur.get("nobody")
    assert str(hidden_get.value) == str(missing_get.value)
    # adding an id that is taken gives the same error whether the holder is visible or hidden
    with pytest.raises(DuplicateItemError) as dup_hidden:
        cur.add([securecmr.Item("i1", attrs={"ward": "a"}, codes={"image": code})])
    with pytest.raises(DuplicateItemError) as dup_visible:
        cur.add([securecmr.Item("i0", attrs={"ward": "a"}, codes={"image": code})])
    assert str(dup_hidden.value) == str(dup_visible.value)
    assert set(cur.ids()) == {f"i{i}" for i in range(0, 10, 2)} | {"new-a"}
    assert cur.delete(["i0"]) == 1
    assert "i1" in coll.ids()
    store.close()


def test_k_and_ttl_rules_are_the_same_on_every_path(tmp_path: Path) -> None:
    store, coll, cur = _policy_store(tmp_path)
    code = np.zeros(8, np.uint8)
    for bad in (0, -1, 2.5, True, "3", None):
        for handle in (coll, cur):
            with pytest.raises(ConfigurationError, match="k must be"):
                handle.search(code=code, k=bad)
    for ttl in (float("nan"), float("inf"), 0, -1, 1e12):
        with pytest.raises(ConfigurationError, match="ttl_hours"):
            store.create_user("t", role="reader", ttl_hours=ttl)
        with pytest.raises(ConfigurationError, match="ttl_hours"):
            store.create_collection("t", ttl_hours=ttl)
    store.close()

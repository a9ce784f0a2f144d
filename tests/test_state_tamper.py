"""Authenticated state: deleting, duplicating, editing or rolling back any row or file of a store
gives IntegrityError naming what is wrong, never a silently different result."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from _store_helpers import PASS, items, new_store

import securecmr
from securecmr.errors import AuditIntegrityError, IntegrityError


def _make(tmp_path: Path) -> Path:
    with new_store(tmp_path) as store:
        coll = store.create_collection("c")
        coll.add(items(200))  # four blocks
        coll.hold(["patient-00007"])
        store.create_collection("d").add(items(5, seed=2))
        store.create_user("zoe", "reader")
    return tmp_path / "store"


def _sql(root: Path, *statements: str) -> None:
    conn = sqlite3.connect(root / "store.db", isolation_level=None)
    try:
        for st in statements:
            conn.execute(st)
    finally:
        conn.close()


def _open_and_search(root: Path) -> None:
    with securecmr.Store.open(root, passphrase=PASS, readonly=True) as store:
        coll = store.collection("c")
        coll.search(code=np.zeros(8, np.uint8), k=300)
        store.collection("d")


_BLOCK = "(SELECT cid FROM collections WHERE name='c')"

CASES: dict[str, tuple[tuple[str, ...], str]] = {
    "block row deleted": ((f"DELETE FROM blocks WHERE cid={_BLOCK} AND bid=65",), "block rows"),
    "gen rolled back": ((f"UPDATE collections SET gen=gen-1 WHERE cid={_BLOCK}",), "generation counter"),
    "next_seq rolled back": (
        (f"UPDATE collections SET next_seq=next_seq-64 WHERE cid={_BLOCK}",),
        "sequence counter",
    ),
    "collection row deleted": ((f"DELETE FROM collections WHERE cid={_BLOCK}",), "row was deleted"),
    "legal hold removed": ((f"DELETE FROM holds WHERE cid={_BLOCK}",), "legal holds"),
    "expiry edited": (
        (f"UPDATE blocks SET expires=1.0 WHERE cid={_BLOCK} AND bid=1",),
        "edited, swapped or rolled back",
    ),
    "sealed state deleted": (("DELETE FROM meta WHERE key='state/collections'",), "missing"),
    "registry version deleted": (("DELETE FROM meta WHERE key='state/registry'",), "missing"),
    "audit anchor deleted": (("DELETE FROM meta WHERE key='state/audit'",), "missing"),
    "block row duplicated": (
        (
            "CREATE TABLE b2 AS SELECT * FROM blocks",
            "DROP TABLE blocks",
            "ALTER TABLE b2 RENAME TO blocks",
            f"INSERT INTO blocks SELECT * FROM blocks WHERE cid={_BLOCK} AND bid=1",
        ),
        "duplicated",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_row_tampering_is_named(tmp_path: Path, case: str) -> None:
    root = _make(tmp_path)
    statements, match = CASES[case]
    _sql(root, *statements)
    with pytest.raises(IntegrityError, match=match):
        _open_and_search(root)
    with pytest.raises(IntegrityError):
        securecmr.Store.open(root, passphrase=PASS).close()


def test_block_row_rolled_back_to_an_older_version(tmp_path: Path) -> None:
    root = _make(tmp_path)
    conn = sqlite3.connect(root / "store.db")
    old = conn.execute(f"SELECT * FROM blocks WHERE cid={_BLOCK} AND bid=1").fetchone()
    conn.close()
    with securecmr.Store.open(root, passphrase=PASS) as store:
        store.collection("c").delete(["patient-00003"])  # rewrites block 1 without it
    conn = sqlite3.connect(root / "store.db", isolation_level=None)
    conn.execute(f"DELETE FROM blocks WHERE cid={_BLOCK} AND bid=1")
    conn.execute("INSERT INTO blocks VALUES (?,?,?,?,?,?,?,?)", old)  # the erased item is back
    conn.close()
    with pytest.raises(IntegrityError, match="rolled back"):
        _open_and_search(root)


def test_edit_while_open_is_caught_at_the_next_write(tmp_path: Path) -> None:
    root = _make(tmp_path)
    with securecmr.Store.open(root, passphrase=PASS) as store:
        coll = store.collection("c")
        _sql(root, f"UPDATE collections SET next_seq=next_seq-64 WHERE cid={_BLOCK}")
        with pytest.raises(IntegrityError, match="edited"):
            coll.add([securecmr.Item("new-1", codes={"image": np.ones(8, np.uint8)})])
    _sql(root, f"UPDATE collections SET next_seq=next_seq+64 WHERE cid={_BLOCK}")
    _open_and_search(root)  # put back as it was: nothing was added, nothing lost


def _copy(root: Path, dest: Path) -> None:
    shutil.copytree(root, dest)


ROLLBACKS: dict[str, tuple[str, type[Exception], str]] = {
    "store.db": ("store.db", IntegrityError, "rolled back"),
    "users.sealed": ("access/users.sealed", IntegrityError, "older"),
    "audit log": ("access/audit/audit.jsonl", AuditIntegrityError, "truncated|anchor"),
}


@pytest.mark.parametrize("case", sorted(ROLLBACKS))
def test_per_file_rollback(tmp_path: Path, case: str) -> None:
    root = _make(tmp_path)
    rel, exc, match = ROLLBACKS[case]
    _copy(root, tmp_path / "old")
    with securecmr.Store.open(root, passphrase=PASS) as store:
        store.create_user("ana", "reader")
        store.collection("c").delete(["patient-00010"])
    shutil.copyfile(tmp_path / "old" / rel, root / rel)  # that one file put back as it was

    def run() -> None:
        with securecmr.Store.open(root, passphrase=PASS) as store:
            store.audit.verify()
            store.collection("c").search(code=np.zeros(8, np.uint8), k=5)

    with pytest.raises(exc, match=match):
        run()


def test_operations_keep_the_roots_consistent(tmp_path: Path) -> None:
    now = [1000.0]
    with new_store(tmp_path, clock=lambda: now[0]) as store:
        coll = store.create_collection("t", ttl_hours=1)
        coll.add(items(100))
        coll.hold(["patient-00001"])
        coll.delete(["patient-00002", "patient-00070"])
        coll.release(["patient-00001"])
        coll.hold(["patient-00005"])
        store.rotate_keys(PASS, reencrypt=True)
        now[0] += 7200
        assert store.purge() == 97
        store.compact()
        store.create_collection("gone").add(items(3))
        store.drop_collection("gone")
    with securecmr.Store.open(tmp_path / "store", passphrase=PASS, clock=lambda: now[0]) as store:
        assert store.collection("t").ids() == ["patient-00005"]
        store.audit.verify()

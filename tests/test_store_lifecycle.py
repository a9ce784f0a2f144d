"""Store lifecycle conveniences: exist_ok / open_or_create, nothing left behind by a failed create,
StoreClosedError after close, users never silently replaced, drop_collection with a receipt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import securecmr
from securecmr.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    DecryptionError,
    StoreClosedError,
    StoreError,
    StoreExistsError,
    UserExistsError,
    UserNotFoundError,
)

PASS = "lifecycle passphrase"


def _items(n: int, seed: int = 0) -> list[securecmr.Item]:
    rng = np.random.default_rng(seed)
    return [
        securecmr.Item(id=f"i{i}", codes={"text": rng.integers(0, 256, 8, dtype=np.uint8)}) for i in range(n)
    ]


def test_open_or_create_is_rerunnable(tmp_path: Path) -> None:
    path = tmp_path / "st"
    with securecmr.Store.open_or_create(path, passphrase=PASS) as st:
        st.create_collection("c", exist_ok=True).add(_items(3))
    with securecmr.Store.open_or_create(path, passphrase=PASS) as st:  # second run: same store
        assert len(st.create_collection("c", exist_ok=True)) == 3
    with pytest.raises(StoreExistsError):
        securecmr.Store.create(path, passphrase=PASS)
    with pytest.raises(DecryptionError):
        securecmr.Store.open_or_create(path, passphrase="wrong")


@pytest.mark.parametrize("existing", [False, True])
def test_failed_create_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    import securecmr.store._store as mod

    path = tmp_path / "st"
    if existing:
        path.mkdir()

    def boom(*a: object, **k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(mod, "connect", boom)
    with pytest.raises(OSError, match="disk full"):
        securecmr.Store.create(path, passphrase=PASS)
    assert path.exists() == existing
    assert not existing or list(path.iterdir()) == []
    monkeypatch.undo()
    securecmr.Store.create(path, passphrase=PASS).close()  # the path is usable afterwards


def test_closed_store_refuses_every_call(tmp_path: Path) -> None:
    st = securecmr.Store.create(tmp_path / "st", passphrase=PASS)
    coll = st.create_collection("c")
    coll.add(_items(2))
    token = st.create_user("ana", role="reader")
    st.close()
    calls = [
        lambda: st.collections(),
        lambda: st.collection("c"),
        lambda: st.create_collection("d"),
        lambda: st.drop_collection("c"),
        lambda: st.create_user("bob"),
        lambda: st.users(),
        lambda: st.session(token),
        lambda: st.purge(),
        lambda: st.compact(),
        lambda: st.export_snapshot(tmp_path / "s.snap"),
        lambda: coll.add(_items(1, seed=1)),
        lambda: coll.delete("i0"),
    ]
    for call in calls:
        with pytest.raises(StoreClosedError):
            call()
    assert issubclass(StoreClosedError, StoreError)
    assert "closed" in repr(st)


def test_users_are_never_silently_replaced(tmp_path: Path) -> None:
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as st:
        token = st.create_user("ana", role="reader", tenant="north")
        with pytest.raises(UserExistsError):
            st.create_user("ana", role="admin")
        assert st.create_user("ana", role="admin", exist_ok=True) is None
        assert st.session(token).role == "reader"
        assert st.update_user("ana", role="curator")["role"] == "curator"
        assert st.session(token).role == "curator" and st.session(token).tenant == "north"
        other = st.issue_token("ana", ttl_hours=1)
        assert st.session(other).user == "ana" and st.user("ana")["tokens"] == 2
        with pytest.raises(UserNotFoundError):
            st.update_user("nobody", role="reader")
        st.revoke_user("ana")
        fresh = st.create_user("ana", role="reader")  # a revoked name may be given to a new account
        assert st.session(fresh).role == "reader"
        actions = [(r["action"], r["outcome"]) for r in st.audit.records() if r["action"].startswith("user.")]
        assert actions == [
            ("user.create", "allowed"),
            ("user.create", "denied"),
            ("user.update", "allowed"),
            ("user.token", "allowed"),
            ("user.update", "denied"),
            ("user.revoke", "allowed"),
            ("user.create", "allowed"),
        ]


def test_drop_collection_erases_and_shreds(tmp_path: Path) -> None:
    path = tmp_path / "st"
    with securecmr.Store.create(path, passphrase=PASS) as st:
        st.create_collection("keep").add(_items(2))
        coll = st.create_collection("gone")
        coll.add(_items(4, seed=3))
        cid = coll._engine.cid
        hmacs = sorted(coll.id_hmac(f"i{i}") for i in range(4))
        with pytest.raises(CollectionExistsError):
            st.create_collection("gone")
        receipt = st.drop_collection("gone", by="dpo")
        assert receipt["count"] == 4 and sorted(receipt["erased"]["gone"]) == hmacs and receipt["by"] == "dpo"
        assert st.verify_receipt(receipt)
        assert st.collections() == ["keep"]
        with pytest.raises(CollectionNotFoundError):
            st.collection("gone")
        with pytest.raises(CollectionNotFoundError):
            st.drop_collection("gone")
    with securecmr.Store.open(path, passphrase=PASS) as st:  # durable, keys gone, others intact
        assert st.collections() == ["keep"] and len(st.collection("keep")) == 2
        assert cid not in st._ring.collections
        assert not (path / "index" / f"{cid}.seg").exists()
        assert [r["detail"]["count"] for r in st.audit.records() if r["action"] == "collection.drop"] == [4]


def test_collections_listing_is_audited_once(tmp_path: Path) -> None:
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as st:
        st.create_collection("a")
        st.create_collection("a", exist_ok=True)  # internal checks write no listing record
        assert st.collections() == ["a"]
        repr(st)
        lists = [r for r in st.audit.records() if r["action"] == "collection.list"]
        assert len(lists) == 1 and lists[0]["principal"] == "@operator" and lists[0]["detail"] == {"count": 1}

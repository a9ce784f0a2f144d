"""Choosing the Milvus backend on a store: remembered by open, overridable per opening, rebuilt from
the durable record when Milvus is missing or stale, tokens never stored, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import securecmr
from securecmr.errors import ConfigurationError, IndexUnavailableError

pytest.importorskip("pymilvus", reason="the Milvus backend needs the 'milvus' extra (pymilvus, milvus-lite)")

from securecmr.index import FaissBinaryIndex, MilvusIndex

PASS = "store passphrase 41"


def _items(start: int, n: int) -> list[securecmr.Item]:
    rng = np.random.default_rng(start)
    return [
        securecmr.Item(f"item-{i}", codes={"image": rng.integers(0, 256, 8, dtype=np.uint8)})
        for i in range(start, start + n)
    ]


def _ranking(store: securecmr.Store, queries: list[np.ndarray]) -> list[list[tuple[str, int]]]:
    coll = store.collection("c")
    return [[(str(h.id), int(h.distance or 0)) for h in coll.search(code=q, k=8)] for q in queries]


def test_open_remembers_and_rebuilds(tmp_path: Path) -> None:
    root = tmp_path / "store"
    first, more = _items(0, 60), _items(100, 20)
    queries = [it.codes["image"] for it in first[:3]]  # type: ignore[index]
    with securecmr.Store.create(root, passphrase=PASS, index_backend="milvus") as store:
        assert store.index_backend == "milvus"
        store.create_collection("c", bits=64).add(first)
        want = _ranking(store, queries)
    assert (root / "milvus.db").exists()

    with securecmr.Store.open(root, passphrase=PASS) as store:  # remembered, Milvus adopted
        assert store.index_backend == "milvus"
        assert isinstance(store.collection("c")._engine.index, MilvusIndex)
        assert _ranking(store, queries) == want

    with securecmr.Store.open(root, passphrase=PASS, index_backend="faiss") as store:  # one-off
        assert isinstance(store.collection("c")._engine.index, FaissBinaryIndex)
        assert _ranking(store, queries) == want
        store.collection("c").add(more)  # Milvus does not see this one: its marker goes stale
        want = _ranking(store, [*queries, more[0].codes["image"]])  # type: ignore[index]

    with securecmr.Store.open(root, passphrase=PASS) as store:  # back on Milvus, rebuilt
        assert store.index_backend == "milvus"
        assert _ranking(store, [*queries, more[0].codes["image"]]) == want  # type: ignore[index]

    (root / "milvus.db").unlink()  # Milvus lost: rebuilt from SQLite on open
    with securecmr.Store.open(root, passphrase=PASS) as store:
        assert _ranking(store, [*queries, more[0].codes["image"]]) == want  # type: ignore[index]

    other = tmp_path / "elsewhere" / "other.db"  # moved to another Milvus for one opening
    with securecmr.Store.open(root, passphrase=PASS, milvus_uri=str(other)) as store:
        assert _ranking(store, [*queries, more[0].codes["image"]]) == want  # type: ignore[index]
    assert other.exists()

    with securecmr.Store.open(root, passphrase=PASS, readonly=True) as store:  # readers use it too
        assert _ranking(store, [*queries, more[0].codes["image"]]) == want  # type: ignore[index]
    from milvus_lite.server_manager import server_manager_instance

    # closed stores stop their Milvus Lite servers, so another process may open the files
    assert not [p for p in server_manager_instance._servers if p.startswith(str(tmp_path.resolve()))]


def test_token_is_never_stored_or_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "tok-store-SECRET-5521"
    root = tmp_path / "store"
    store = securecmr.Store.create(root, passphrase=PASS, index_backend="milvus", milvus_token=token)
    store.create_collection("c", bits=64).add(_items(0, 5))
    shown = repr(store) + repr(store._milvus) + repr(store.collection("c")._engine.index)
    assert token not in shown
    store.close()
    for path in root.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path.name
    monkeypatch.setenv("SECURECMR_MILVUS_TOKEN", token)  # the token may come from the environment
    with securecmr.Store.open(root, passphrase=PASS) as again:
        assert again._milvus is not None and "<set>" in repr(again._milvus)
        assert token not in repr(again._milvus)


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    token = "tok-unreachable-SECRET"
    root = tmp_path / "store"
    store = securecmr.Store.create(
        root, passphrase=PASS, index_backend="milvus", milvus_uri="http://127.0.0.1:9", milvus_token=token
    )
    with pytest.raises(IndexUnavailableError) as err:
        store.create_collection("c", bits=64)
    assert token not in str(err.value) and "127.0.0.1" in str(err.value)
    store.close()
    with securecmr.Store.open(root, passphrase=PASS, index_backend="faiss") as again:  # data stays usable
        again.collection("c").add(_items(0, 3))
        assert len(again.collection("c")) == 3


def test_bad_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="backend"):
        securecmr.Store.create(tmp_path / "a", passphrase=PASS, index_backend="elastic")
    with pytest.raises(ConfigurationError, match="milvus_uri"):
        securecmr.Store.create(tmp_path / "b", passphrase=PASS, milvus_uri=str(tmp_path / "m.db"))
    with pytest.raises(ConfigurationError, match=r"\.db"):
        securecmr.Store.create(
            tmp_path / "c", passphrase=PASS, index_backend="milvus", milvus_uri=str(tmp_path / "m.sqlite")
        )
    with pytest.raises(ConfigurationError, match="index"):
        securecmr.Store.create(tmp_path / "d", passphrase=PASS, index_backend="milvus", milvus_index="HNSW")
    assert not any((tmp_path / n).exists() for n in "abcd")  # nothing was created
    with securecmr.Store.create(tmp_path / "e", passphrase=PASS) as store:
        assert store.index_backend == "faiss"
    with pytest.raises(ConfigurationError, match="milvus"):
        securecmr.Store.open(tmp_path / "e", passphrase=PASS, milvus_uri=str(tmp_path / "m.db"))


def test_cli_init_with_milvus(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from securecmr.cli.main import app

    env = {"SECURECMR_PASSPHRASE": "pw-cli"}
    st = str(tmp_path / "st")
    res = CliRunner().invoke(app, ["store", "init", st, "--index-backend", "milvus"], env=env)
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["collection", "create", st, "c", "--bits", "64"], env=env)
    assert res.exit_code == 0, res.output
    with securecmr.Store.open(st, passphrase="pw-cli") as store:
        assert store.index_backend == "milvus"
        assert isinstance(store.collection("c")._engine.index, MilvusIndex)
    res = CliRunner().invoke(app, ["store", "init", str(tmp_path / "x"), "--index-backend", "nope"], env=env)
    assert res.exit_code != 0

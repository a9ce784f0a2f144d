"""Collections that learn: kept features (sealed, erased with the item), fit on the collection's own
pairs, atomic re-coding switch, switch back, audit, and a kill -9 in the middle of re-coding."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from _store_helpers import PASS, new_store

import securecmr
from securecmr.errors import ConfigurationError, InputError
from securecmr.store import _learn

REPO = Path(__file__).resolve().parent.parent
DIM = 384
FAST = {"anchors": 64, "max_iter": 30}


def pairs(n: int, seed: int = 0, classes: int = 4) -> tuple[list[securecmr.Item], np.ndarray]:
    """Text and image vectors that share a class but live in unrelated spaces: the zero-shot default
    (which assumes one shared space) is near chance across modalities, a learned hasher is not."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    mt = np.random.default_rng(50).normal(size=(classes, DIM))
    mi = np.random.default_rng(51).normal(size=(classes, DIM))
    t = mt[y] + 1.5 * rng.normal(size=(n, DIM))
    x = mi[y] + 1.5 * rng.normal(size=(n, DIM))
    out = [
        securecmr.Item(
            f"case-{seed}-{i}",
            labels=(f"region-{y[i]}",),
            attrs={"region": f"r{y[i]}"},
            vectors={"text": t[i].astype(np.float32), "image": x[i].astype(np.float32)},
        )
        for i in range(n)
    ]
    return out, y


def class_precision(coll: securecmr.Collection, items: list[securecmr.Item], y: np.ndarray) -> float:
    """Mean precision@10 of text queries for image codes of the same class."""
    label_of = {it.id: lab for it, lab in zip(items, y, strict=True)}
    hits = 0
    for it, lab in zip(items[:40], y[:40], strict=True):
        res = coll.search(vector=it.vectors["text"], query_modality="text", modality="image", k=10)
        hits += sum(label_of[h.id] == lab for h in res)
    return hits / 400


@pytest.mark.parametrize("mode", ["none", "salted", "encrypted", "salted+encrypted"])
def test_fit_switches_when_better_and_switches_back(tmp_path: Path, mode: str) -> None:
    store = new_store(tmp_path)
    coll = store.create_collection("cases", bits=32, protection=mode, keep_features=True)
    items, y = pairs(240)
    coll.add(items)
    assert coll.kept_features() == {"text:384": 240, "image:384": 240}
    before_ids = [h.id for h in coll.search(vector=items[0].vectors["text"], k=20)]
    p_before = class_precision(coll, items, y)
    report = coll.fit(method="supervised", params=FAST)
    assert report.switched and not report.forced
    assert report.new["map_t2i"] > report.current["map_t2i"] + 0.2
    assert report.new["map_i2t"] > report.current["map_i2t"] + 0.2
    assert report.held_apart == 48 and report.relevance == "same label"
    assert report.recoded_items == 240 and coll.hasher_version == 2
    assert "switched to version 2" in str(report)
    assert class_precision(coll, items, y) > p_before + 0.3  # searches use the new codes
    # survives reopening: the switch is durable
    store.close()
    store = securecmr.Store.open(tmp_path / "store", passphrase=PASS)
    coll = store.collection("cases")
    assert coll.hasher_version == 2 and coll.hasher.method == "supervised"
    assert class_precision(coll, items, y) > p_before + 0.3
    # switch back: the previous (zero-shot) hasher and its exact codes
    out = coll.switch_back()
    assert out["version"] == 3 and coll.hasher.method == "zero-shot"
    assert [h.id for h in coll.search(vector=items[0].vectors["text"], k=20)] == before_ids
    actions = [r["action"] for r in store.audit.records()]
    assert actions.count("collection.fit") == 1
    assert actions.count("collection.switch") == 1 and actions.count("collection.switch_back") == 1
    store.close()


def test_fit_keeps_a_worse_hasher_out_unless_forced(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    coll = store.create_collection("cases", bits=32, keep_features=True)
    items, _ = pairs(200)
    coll.add(items)
    assert coll.fit(method="supervised", labels_from="region", params=FAST).switched
    worse = coll.fit(method="zero-shot")  # back to a data-independent shared-space hasher: worse here
    assert not worse.switched and coll.hasher_version == 2
    assert "not better" in worse.reason
    forced = coll.fit(method="zero-shot", force=True)
    assert forced.switched and forced.forced and coll.hasher_version == 3
    store.close()


def test_fit_needs_kept_features_and_valid_arguments(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    plain = store.create_collection("plain", bits=32)
    items, _ = pairs(40)
    plain.add(items)
    assert plain.kept_features() == {}
    with pytest.raises(InputError, match="keep_features"):
        plain.fit()
    with pytest.raises(ConfigurationError, match="bits"):
        plain.fit(bits=64)
    with pytest.raises(ConfigurationError, match="no previous hasher"):
        plain.switch_back()
    # turning keep_features on: items added from now on keep theirs
    plain.keep_features(True)
    more, _ = pairs(40, seed=1)
    plain.add(more)
    assert plain.kept_features() == {"text:384": 40, "image:384": 40}
    # the 40 older items have codes but no features: a switch refuses and changes nothing
    with pytest.raises(InputError, match="without kept"):
        plain.fit(method="supervised", params=FAST, force=True)
    assert plain.hasher_version == 1
    store.close()


def test_kept_features_are_sealed_and_erased_with_the_item(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    coll = store.create_collection("cases", bits=32, protection="none", keep_features=True)
    items, _ = pairs(70)
    coll.add(items)
    target = items[5]
    probe = target.vectors["image"].astype("<f2").tobytes()[:64]  # 32 features as stored (fp16)
    store.close()

    def scan() -> bool:
        return any(probe in p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())

    assert not scan()  # sealed even in protection mode "none"
    store = securecmr.Store.open(tmp_path / "store", passphrase=PASS)
    coll = store.collection("cases")
    coll.delete([target.id])
    assert coll.kept_features() == {"text:384": 69, "image:384": 69}
    _seqs, mats = coll._engine.vault.gather(("image:384",))
    assert not np.any(np.all(np.isclose(mats[0], target.vectors["image"], atol=1e-2), axis=1))
    receipt = store.compact()
    assert receipt["count"] == 1
    # an upsert replaces an item's kept features with the new ones (the old ones are erased)
    changed = securecmr.Item(items[6].id, vectors={"text": items[7].vectors["text"], "image": np.ones(DIM)})
    coll.upsert([changed])
    assert coll.kept_features() == {"text:384": 69, "image:384": 69}
    _seqs, (img,) = coll._engine.vault.gather(("image:384",))
    assert not np.any(np.all(np.isclose(img, items[6].vectors["image"], atol=1e-2), axis=1))
    assert np.any(np.all(np.isclose(img, 1.0, atol=1e-3), axis=1))
    store.close()


def test_tampered_feature_block_is_refused(tmp_path: Path) -> None:
    import sqlite3

    store = new_store(tmp_path)
    coll = store.create_collection("cases", bits=32, keep_features=True)
    items, _ = pairs(80)
    coll.add(items)
    store.close()
    db = sqlite3.connect(tmp_path / "store" / "store.db")
    (a,), (b,) = db.execute("SELECT bid FROM features ORDER BY bid").fetchall()
    blob_a = db.execute("SELECT blob FROM features WHERE bid=?", (a,)).fetchone()[0]
    db.execute("UPDATE features SET blob=? WHERE bid=?", (blob_a, b))  # swap a block's features
    db.commit()
    db.close()
    store = securecmr.Store.open(tmp_path / "store", passphrase=PASS)
    with pytest.raises(securecmr.errors.IntegrityError, match="features"):
        store.collection("cases").kept_features()
    store.close()


def test_kill_during_recoding_loses_nothing_and_resumes(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    coll = store.create_collection("cases", bits=32, keep_features=True)
    items, y = pairs(300)
    coll.add(items)
    before = [[h.id for h in coll.search(vector=it.vectors["text"], k=15)] for it in items[:10]]
    store.close()
    script = textwrap.dedent(f"""
        import os, signal, sys
        import securecmr
        from securecmr.store import _learn
        from securecmr import hashing
        _learn._STAGE_BLOCKS = 1
        store = securecmr.Store.open({str(tmp_path / "store")!r}, passphrase={PASS!r})
        coll = store.collection("cases")
        seqs, (x, t) = coll._engine.vault.gather(("image:384", "text:384"))
        labels = [int(coll._engine.metas([int(s)])[int(s)]["labels"][0].split("-")[1]) for s in seqs]
        h = hashing.create("supervised", bits=32, anchors=64, max_iter=30).fit(x, t, labels)
        def crash(done):
            if done == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return False
        _learn._switch(coll, h, action="collection.switch", show_progress=False, detail={{}},
                       stop_after=crash)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -9, proc.stderr
    store = securecmr.Store.open(tmp_path / "store", passphrase=PASS)
    coll = store.collection("cases")
    # nothing switched: same hasher version, same answers; two blocks were staged
    assert coll.hasher_version == 1
    assert [[h.id for h in coll.search(vector=it.vectors["text"], k=15)] for it in items[:10]] == before
    staged = store._conn.execute("SELECT COUNT(*) FROM recode WHERE bid >= 0").fetchone()[0]
    assert staged == 2
    # an add and a delete while a switch is pending: the switch re-codes what changed
    extra, _ = pairs(30, seed=9)
    coll.add(extra)
    coll.delete([items[0].id])
    out = _learn.resume_switch(coll, show_progress=False)
    assert out is not None and out["version"] == 2 and len(coll) == 329
    assert coll.hasher.method == "supervised"
    assert store._conn.execute("SELECT COUNT(*) FROM recode").fetchone()[0] == 0
    assert class_precision(coll, items[1:], y[1:]) > 0.6
    assert _learn.resume_switch(coll) is None
    store.close()


def test_cli_collection_fit(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from securecmr.cli.main import app

    env = {"SECURECMR_PASSPHRASE": PASS}
    st = str(tmp_path / "store")
    runner = CliRunner()
    assert runner.invoke(app, ["store", "init", st], env=env).exit_code == 0
    res = runner.invoke(
        app, ["collection", "create", st, "cases", "--bits", "32", "--keep-features"], env=env
    )
    assert res.exit_code == 0, res.output
    with securecmr.Store.open(st, passphrase=PASS) as store:
        store.collection("cases").add(pairs(160)[0])
    res = runner.invoke(
        app,
        ["collection", "fit", st, "cases", "--method", "supervised", "--labels-from", "region", "--json"],
        env=env,
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["switched"] and out["version"] == 2 and out["relevance"] == "same region"
    assert out["new"]["map_t2i"] > out["current"]["map_t2i"]
    res = runner.invoke(app, ["collection", "fit", st, "cases", "--holdout", "2"], env=env)
    assert res.exit_code != 0 and "holdout" in res.output


def test_auto_fit_refits_when_the_collection_has_grown(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    coll = store.create_collection("cases", bits=32, keep_features=True)
    first, _ = pairs(80)
    coll.add(first)
    with pytest.raises(ConfigurationError, match="factor"):
        coll.set_auto_fit("supervised", factor=1.0)
    coll.set_auto_fit("supervised", factor=2.0, params=FAST)
    assert coll.auto_fit is not None and coll.auto_fit["items_at_fit"] == 80
    more, _ = pairs(40, seed=3)
    coll.add(more)  # 120 < 2 x 80: nothing yet
    assert coll.hasher_version == 1
    last, _ = pairs(40, seed=4)
    coll.add(last)  # 160: the refit runs, wins and switches
    assert coll.hasher_version == 2 and coll.hasher.method == "supervised"
    assert coll.auto_fit["items_at_fit"] == 160
    actions = [r["action"] for r in store.audit.records()]
    assert "collection.auto_fit" in actions and actions.count("collection.fit") == 1
    coll.set_auto_fit(None)
    assert coll.auto_fit is None
    store.close()


@pytest.mark.parametrize("backend", ["brute", "milvus"])
def test_fit_and_switch_back_on_other_index_backends(tmp_path: Path, backend: str) -> None:
    if backend == "milvus":
        pytest.importorskip("pymilvus", reason="the Milvus backend needs the 'milvus' extra")
    store = new_store(tmp_path, index_backend=backend)
    coll = store.create_collection("cases", bits=32, protection="salted", keep_features=True)
    items, y = pairs(160)
    coll.add(items)
    before = [h.id for h in coll.search(vector=items[0].vectors["text"], k=20)]
    p_before = class_precision(coll, items, y)
    assert coll.fit(method="supervised", params=FAST).switched
    assert class_precision(coll, items, y) > p_before + 0.3
    store.close()
    store = securecmr.Store.open(tmp_path / "store", passphrase=PASS)  # index rebuilt / synced
    coll = store.collection("cases")
    assert class_precision(coll, items, y) > p_before + 0.3
    coll.switch_back()
    assert [h.id for h in coll.search(vector=items[0].vectors["text"], k=20)] == before
    store.close()

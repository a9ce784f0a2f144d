"""Store format 2 (sealed row blocks): format-1 stores are read and converted, blocks cannot be
edited, swapped or have their expiry changed, and multi-block adds/deletes keep every other row."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from _store_helpers import PASS, brute, items, new_store

import securecmr
from securecmr._types import MODALITIES
from securecmr.errors import IntegrityError, LegalHoldError
from securecmr.store._blocks import BLOCK_ROWS


def _write_format1(coll: securecmr.Collection, data: list[securecmr.Item], expires: float | None) -> None:
    """Store ``data`` the way format 1 did: one sealed row per item in table ``items``."""
    eng = coll._engine
    kv = eng.keys.current
    sealer = eng._sealer(kv)
    rows = []
    for seq, it in enumerate(data, start=1):
        hm = eng.id_hmac(it.id)
        mask, parts = 0, []
        for j, m in enumerate(MODALITIES):
            code = (it.codes or {}).get(m)
            if code is not None:
                mask |= 1 << j
                salted = eng.salt.apply(code.reshape(1, -1))[0] if eng.salt is not None else code
                parts.append(salted.tobytes())
        body = bytes([mask]) + b"".join(parts)
        if eng.encrypted:
            core = sealer.seal(body, eng._aad(seq, "core", kv))
        else:
            core = body + eng._tagger(kv).digest(eng._aad(seq, "core", kv) + body)[:16]
        meta = {"labels": list(it.labels), "attrs": it.attrs, "ref": it.ref}
        rows.append(
            (
                eng.cid,
                seq,
                hm,
                sealer.seal(json.dumps(it.id).encode(), eng._aad(seq, "rid", kv) + hm),
                core,
                sealer.seal(json.dumps(meta).encode(), eng._aad(seq, "meta", kv)),
                kv,
                expires,
                1 if seq == 4 else 0,
            )
        )
    eng.conn.executemany("INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?)", rows)
    eng.conn.execute("UPDATE collections SET next_seq=?, gen=gen+1 WHERE cid=?", (len(data) + 1, eng.cid))
    coll._store._adopt_state()  # seal these rows as a store of that time would be adopted on open


@pytest.mark.parametrize("mode", ["none", "salted+encrypted"])
def test_format1_store_is_read_then_converted(tmp_path: Path, mode: str) -> None:
    data = items(150)
    now = [1000.0]
    with new_store(tmp_path, clock=lambda: now[0]) as store:
        _write_format1(store.create_collection("c", protection=mode, ttl_hours=1), data, 1000.0 + 3600)
    queries = [it.codes["image"] for it in data[:6]]  # type: ignore[index]
    want = [[i for i, _ in brute(data, q, 7)] for q in queries]
    path = tmp_path / "store"
    with securecmr.Store.open(path, passphrase=PASS, readonly=True, clock=lambda: now[0]) as store:
        coll = store.collection("c")  # read as it is (no segment yet: rebuilt from the format-1 rows)
        assert [[h.id for h in coll.search(code=q, k=7)] for q in queries] == want
        assert coll.get(data[10].id).attrs == data[10].attrs
    db = sqlite3.connect(path / "store.db")
    assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 150
    assert db.execute("SELECT COUNT(*) FROM blocks").fetchone()[0] == 0
    with securecmr.Store.open(path, passphrase=PASS, clock=lambda: now[0]) as store:
        coll = store.collection("c")
        new = securecmr.Item("new", codes={"image": np.zeros(8, np.uint8)})
        coll.add([new])  # the first write converts the format-1 rows into blocks
        assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM blocks").fetchone()[0] >= 3
        want = [[i for i, _ in brute([*data, new], q, 7)] for q in queries]
        assert [[h.id for h in coll.search(code=q, k=7)] for q in queries] == want
        hit = coll.get(data[10].id)
        assert hit.labels == tuple(data[10].labels) and hit.ref == data[10].ref
        with pytest.raises(LegalHoldError):  # the legal hold of a format-1 row survives conversion
            coll.delete([data[3].id])
        now[0] += 2 * 3600  # the format-1 expiry survives too: everything but the held item expires
        assert store.purge() == 150
        assert coll.ids() == [data[3].id]
    with securecmr.Store.open(path, passphrase=PASS, clock=lambda: now[0]) as store:
        assert store.collection("c").ids() == [data[3].id]


def _blocks(path: Path) -> list[tuple[int, int]]:
    db = sqlite3.connect(path / "store.db")
    try:
        return db.execute("SELECT bid, n FROM blocks ORDER BY bid").fetchall()
    finally:
        db.close()


def test_adds_span_blocks_and_deletes_rewrite_them(tmp_path: Path) -> None:
    data = items(3 * BLOCK_ROWS + 5)
    with new_store(tmp_path) as store:
        coll = store.create_collection("c")
        coll.add(data)
        assert [n for _, n in _blocks(tmp_path / "store")] == [BLOCK_ROWS] * 3 + [5]
        gone = [data[1].id, data[BLOCK_ROWS].id] + [it.id for it in data[2 * BLOCK_ROWS : 3 * BLOCK_ROWS]]
        coll.delete(gone)
    assert [n for _, n in _blocks(tmp_path / "store")] == [BLOCK_ROWS - 1, BLOCK_ROWS - 1, 5]
    kept = [it for it in data if it.id not in set(gone)]
    for segment in (True, False):
        if not segment:
            for seg in (tmp_path / "store" / "index").glob("*.seg"):
                seg.unlink()
        with securecmr.Store.open(tmp_path / "store", passphrase=PASS) as store:
            coll = store.collection("c")
            assert coll.ids() == [it.id for it in kept]
            for it in kept[::17]:
                q = it.codes["image"]  # type: ignore[index]
                assert [(h.id, h.distance) for h in coll.search(code=q, k=4)] == brute(kept, q, 4)
                assert coll.get(it.id).attrs == it.attrs


def test_swapped_or_edited_blocks_are_integrity_errors(tmp_path: Path) -> None:
    data = items(2 * BLOCK_ROWS)
    with new_store(tmp_path) as store:
        store.create_collection("c", ttl_hours=10).add(data)
    path = tmp_path / "store"
    (a, _), (b, _) = _blocks(path)
    for edit in (
        f"UPDATE blocks SET body=(SELECT body FROM blocks WHERE bid={b}) WHERE bid={a}",
        f"UPDATE blocks SET expires=expires-100000 WHERE bid={a}",
        f"UPDATE blocks SET bid={b + 10 * BLOCK_ROWS} WHERE bid={b}",
    ):
        work = tmp_path / f"w{abs(hash(edit))}"
        work.mkdir()
        for p in path.rglob("*"):
            if p.is_file():
                (work / p.relative_to(path)).parent.mkdir(parents=True, exist_ok=True)
                (work / p.relative_to(path)).write_bytes(p.read_bytes())
        for seg in (work / "index").glob("*.seg"):
            seg.unlink()  # rebuild from the blocks on open
        db = sqlite3.connect(work / "store.db")
        db.execute(edit)
        db.commit()
        db.close()
        with (
            pytest.raises(IntegrityError, match=r"store\.db"),
            securecmr.Store.open(work, passphrase=PASS) as store,
        ):
            store.collection("c")

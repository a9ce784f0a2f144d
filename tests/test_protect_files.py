"""Protection on disk: byte scans of every file, wrong passphrase, flipped bytes, crash-safe rotation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _store_helpers import PASS, items, new_store

import securecmr
from securecmr.errors import DecryptionError, IntegrityError, KeyringError


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


@pytest.mark.parametrize("mode", ["encrypted", "salted+encrypted"])
@pytest.mark.parametrize("compacted", [False, True])
def test_byte_scan_finds_nothing_in_clear(tmp_path: Path, mode: str, compacted: bool) -> None:
    data = items(60)
    store = new_store(tmp_path)
    coll = store.create_collection("c", protection=mode)
    coll.add(data)
    if compacted:
        store.compact()
    # scan while open (WAL and SHM present) and again after close
    for phase in ("open", "closed"):
        blob = _all_bytes(tmp_path / "store")
        for it in data:
            assert str(it.id).encode() not in blob, phase
            assert it.labels[0].encode() not in blob
            assert str(it.attrs["site"]).encode() not in blob
            assert str(it.ref).encode() not in blob
            for c in (it.codes or {}).values():
                assert bytes(c) not in blob
        if phase == "open":
            store.close()


def test_erased_item_is_gone_from_every_file(tmp_path: Path) -> None:
    data = items(30)
    with new_store(tmp_path) as store:
        coll = store.create_collection("c", protection="none")
        coll.add(data)
        victim = data[5]
        hm = bytes.fromhex(coll.id_hmac(victim.id))
        code = bytes(victim.codes["image"])  # type: ignore[index]
        coll.delete([victim.id])
        receipt = store.compact(by="dpo")
        assert receipt["count"] == 1
    blob = _all_bytes(tmp_path / "store")
    assert hm not in blob and code not in blob and str(victim.id).encode() not in blob


def test_wrong_passphrase_leaves_store_untouched(tmp_path: Path) -> None:
    with new_store(tmp_path) as store:
        store.create_collection("c").add(items(5))
    before = {p.name: p.read_bytes() for p in (tmp_path / "store").iterdir() if p.is_file()}
    with pytest.raises(DecryptionError):
        securecmr.Store.open(tmp_path / "store", passphrase="wrong")
    after = {p.name: p.read_bytes() for p in (tmp_path / "store").iterdir() if p.is_file()}
    assert before["keyring.json"] == after["keyring.json"] and before["store.db"] == after["store.db"]
    with pytest.raises(KeyringError):
        securecmr.Store.open(tmp_path / "store", key_provider=securecmr.protect.RawKeyProvider(b"k" * 32))


def test_flipped_bytes_never_give_wrong_results(tmp_path: Path) -> None:
    data = items(40)
    queries = [it.codes["image"] for it in data[:5]]  # type: ignore[index]
    with new_store(tmp_path) as store:
        store.create_collection("c").add(data)
        store.compact()
        good = [[h.id for h in store.collection("c").search(code=q, k=5)] for q in queries]
    src = tmp_path / "store"
    rng = np.random.default_rng(0)
    seg = next((src / "index").glob("*.seg")).relative_to(src)
    for name in ("keyring.json", "store.db", str(seg)):
        size = (src / name).stat().st_size
        for trial in range(6):
            work = tmp_path / f"w-{name}-{trial}"
            shutil.copytree(src, work)
            raw = bytearray((work / name).read_bytes())
            pos = int(rng.integers(0, size))
            raw[pos] ^= 0x40
            (work / name).write_bytes(bytes(raw))
            try:
                with securecmr.Store.open(work, passphrase=PASS) as store:
                    got = [[h.id for h in store.collection("c").search(code=q, k=5)] for q in queries]
                    assert got == good, (name, pos)
            except (IntegrityError, DecryptionError) as exc:
                if name == "keyring.json":
                    assert "keyring.json" in str(exc)
            shutil.rmtree(work)


def test_rotation_interrupted_loses_nothing(tmp_path: Path) -> None:
    data = items(20)
    with new_store(tmp_path) as store:
        store.create_collection("c").add(data)
        ring = store._ring
        # simulate a crash after the new keyring is written but before rows are re-sealed
        ring.rotate_master()
        ring.new_data_keys()
        ring.save(store.path, securecmr.protect.PassphraseProvider("new"))
    with securecmr.Store.open(tmp_path / "store", passphrase="new") as store:
        coll = store.collection("c")
        assert len(coll) == 20
        store.rotate_keys("newer", reencrypt=True)  # the resumed rotation completes
    with securecmr.Store.open(tmp_path / "store", passphrase="newer") as store:
        assert store.collection("c").search(code=data[3].codes["image"], k=1)[0].id == data[3].id  # type: ignore[index]


def test_missing_or_stale_segment_is_rebuilt(tmp_path: Path) -> None:
    data = items(30)
    with new_store(tmp_path) as store:
        store.create_collection("c").add(data[:20])
    seg = next((tmp_path / "store" / "index").glob("*.seg"))
    old = seg.read_bytes()
    with securecmr.Store.open(tmp_path / "store", passphrase=PASS) as store:
        store.collection("c").add(data[20:])
    seg.write_bytes(old)  # a stale segment from an older generation
    with securecmr.Store.open(tmp_path / "store", passphrase=PASS) as store:
        assert len(store.collection("c")) == 30
    seg.unlink()
    with securecmr.Store.open(tmp_path / "store", passphrase=PASS) as store:
        q = data[25].codes["image"]  # type: ignore[index]
        assert store.collection("c").search(code=q, k=1)[0].id == data[25].id


def test_byte_scan_after_monitor_fit_and_guard_decision_and_file_modes(tmp_path: Path) -> None:
    """Every file, after sessions searched, the monitor was fitted and the guard decided (an
    alert, saved guard state): no item id, label, attr, ref, code, principal name or query code in
    clear (principal names only in the audit log, which names them by design); every file 0600
    and every directory 0700 whatever the umask."""
    import os
    import stat

    from securecmr.monitor import GuardPolicy, QueryAnomalyDetector

    old = os.umask(0o022)
    try:
        data = items(40)
        store = new_store(tmp_path)
        coll = store.create_collection("c", protection="salted+encrypted")
        coll.add(data)
        names = ["dr-alice-principal", "dr-bob-principal"]
        handles = [store.session(store.create_user(n, role="reader")).collection("c") for n in names]
        rng = np.random.default_rng(3)
        queries = [rng.integers(0, 256, 8, dtype=np.uint8) for _ in range(40)]
        for h in handles:
            for q in queries:
                h.search(code=q, k=5)
        store.monitor.policy = GuardPolicy(action="alert")
        store.monitor.fit(
            detector=QueryAnomalyDetector(window=16, min_events=16, stride=4, min_windows=5, n_estimators=20)
        )
        guard = store.monitor.guard
        assert guard is not None
        for _q in queries:  # a burst of identical queries: windows get scored, state saved
            handles[0].search(code=queries[0], k=50)
        store.monitor.flush()
        assert store.monitor.state_path.exists() and store.monitor.detector_path.exists()
        for phase in ("open", "closed"):
            blob = _all_bytes(tmp_path / "store")
            # the audit log names principals by design (auditors and SIEM exports read it); every
            # other file, the monitor's detector and guard state included, holds no name in clear
            no_audit = b"".join(
                p.read_bytes()
                for p in sorted((tmp_path / "store").rglob("*"))
                if p.is_file() and "audit" not in p.relative_to(tmp_path / "store").parts
            )
            for n in names:
                assert n.encode() not in no_audit, phase
            for it in data:
                assert str(it.id).encode() not in blob, phase
                assert it.labels[0].encode() not in blob
                assert str(it.attrs["site"]).encode() not in blob
                assert str(it.ref).encode() not in blob
                for c in (it.codes or {}).values():
                    assert bytes(c) not in blob
            for q in queries:
                assert bytes(q) not in blob
            if phase == "open":
                store.close()
        root = tmp_path / "store"
        for p in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(p.stat().st_mode)
            if p.is_dir():
                assert mode == 0o700, p
            else:
                assert mode & 0o077 == 0, (p, oct(mode))
    finally:
        os.umask(old)

"""Batch ingest (securecmr.ingest): worker processes give the same codes as a serial add, bad lines go
to the rejects file, and a crashed job (exception or a real kill -9) resumes without duplicates,
without missing items and without re-encoding stored batches. Ray Data in local mode when installed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import securecmr
from securecmr.errors import (
    ConfigurationError,
    IntegrityError,
    ManifestError,
    ModelNotFoundError,
    PermissionDeniedError,
    WorkerError,
)
from securecmr.ingest import _engines, _journal, _worker, ingest

PASS = "batch ingest passphrase"
MODS = ("text", "image", "video")


def _image(path: Path, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)


def _clean_rows(d: Path, n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            "id": f"case-{i:03d}",
            "text": f"finding number {i}: a small lesion in segment {i % 7}",
            "labels": [f"l{i % 3}"],
            "attrs": {"site": f"s{i % 2}", "n": i},
            "ref": f"pacs://{i}",
        }
        if i % 4 == 0:
            _image(d / f"img{i}.png", i)
            row["image"] = f"img{i}.png"
        rows.append(row)
    return rows


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _dirty_manifest(d: Path) -> tuple[Path, dict[int, str], int]:
    """A manifest with good rows and one bad line of each kind: (path, {line: reason part}, n good)."""
    rows: list[Any] = _clean_rows(d, 14)
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really a png")
    bad = {
        3: ({"id": "bad-missing", "image": "no-such-file.png", "text": "x"}, "not found"),
        6: ({"id": "bad-corrupt", "image": "corrupt.png", "text": "corrupt image"}, "ImageDecodeError"),
        9: ({"id": "bad-empty", "text": "   "}, "empty text"),
        12: ("{not json", "not valid JSON"),
        15: ({"id": "case-001", "text": "same id again"}, "repeats line 2"),
        17: ({"id": "bad-nothing", "labels": ["x"]}, "no text, image or video"),
    }
    for line in sorted(bad):
        rows.insert(line - 1, bad[line][0])
    path = _write(d / "manifest.jsonl", rows)
    return path, {line: why for line, (_, why) in bad.items()}, 14


def _raw_codes(coll: securecmr.Collection) -> dict[tuple[Any, str], bytes]:
    """(id, modality) -> stored code, for protection='none' collections (codes stored as given)."""
    eng = coll._engine
    codes = eng.index.codes()
    return {
        (eng.id_of[int(seq)], MODS[int(mod)]): codes[i].tobytes()
        for i, (seq, mod) in enumerate(zip(eng.code_seq, eng.code_mod, strict=True))
    }


def _ids(coll: securecmr.Collection) -> list[Any]:
    return list(coll.ids())


def _rejects(path: Path) -> dict[int, str]:
    out = {}
    for ln in path.read_text().splitlines():
        rec = json.loads(ln)
        assert rec["line"] not in out, "a line is in the rejects file twice"
        out[rec["line"]] = rec["reason"]
    return out


def _journal_done(store_dir: Path) -> int:
    files = list((store_dir / "ingest").glob("*.jsonl"))
    if not files:
        return 0
    return sum(1 for ln in files[0].read_text().splitlines() if '"done"' in ln)


class CountingEncoder:
    """Counts batches encoded in this process (workers=0)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[int] = []
        original = _worker.BatchEncoder.encode

        def encode(enc: Any, batch: int, rows: list[dict[str, Any]]) -> Any:
            self.batches.append(batch)
            return original(enc, batch, rows)

        monkeypatch.setattr(_worker.BatchEncoder, "encode", encode)


# ---------------------------------------------------------------------------------------- no models


def test_argument_errors(tmp_path: Path) -> None:
    m = _write(tmp_path / "m.jsonl", [{"id": 1, "text": "a"}])
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as store:
        coll = store.create_collection("c", bits=64)
        for kwargs in (
            {"engine": "spark"},
            {"workers": -1},
            {"workers": 1.5},
            {"workers": 0, "engine": "ray"},
            {"batch_size": 0},
        ):
            with pytest.raises(ConfigurationError):
                ingest(coll, m, **kwargs)
        with pytest.raises(ManifestError, match="does not exist"):
            ingest(coll, tmp_path / "missing.jsonl", workers=0)
        with pytest.raises(ConfigurationError, match="Collection"):
            ingest(store, m, workers=0)
        assert len(coll) == 0


def test_worker_error_is_reraised_and_job_is_resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No models exported: the worker process's ModelNotFoundError reaches the caller as itself."""
    monkeypatch.setenv("SECURECMR_HOME", str(tmp_path / "empty-home"))
    m = _write(tmp_path / "m.jsonl", [{"id": i, "text": f"t {i}"} for i in range(5)])
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as store:
        coll = store.create_collection("c", bits=64)
        with pytest.raises(ModelNotFoundError):
            ingest(coll, m, workers=1, batch_size=2)
        assert len(coll) == 0
        with pytest.raises(ConfigurationError, match="resume"):
            ingest(coll, m, workers=1, batch_size=2)


def test_dead_worker_raises_worker_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    submit = _engines._Worker.submit

    def submit_then_die(self: Any, batch: int, rows: list[dict[str, Any]]) -> None:
        submit(self, batch, rows)
        self.proc.send_signal(signal.SIGKILL)

    monkeypatch.setattr(_engines._Worker, "submit", submit_then_die)
    m = _write(tmp_path / "m.jsonl", [{"id": i, "text": f"t {i}"} for i in range(4)])
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as store:
        coll = store.create_collection("c", bits=64)
        with pytest.raises(WorkerError, match="resume"):
            ingest(coll, m, workers=1, batch_size=2)
        assert len(coll) == 0


def test_journal_torn_tail_and_corruption(tmp_path: Path) -> None:
    d = tmp_path / "ingest"
    j = _journal.Journal.open(d, "cid", "ab" * 32, 4, resume=False, default_size=9)
    j.mark_adding(0, 1, 4)
    j.mark_done(0, 4)
    j.close()
    with open(j.path, "ab") as fh:
        fh.write(b'{"b":1,"add')  # crash in the middle of a write
    j2 = _journal.Journal.open(d, "cid", "ab" * 32, None, resume=True, default_size=9)
    assert j2.done == {0: 4} and j2.batch_size == 4 and not j2.fresh
    j2.mark_done(1, 3)
    j2.close()
    assert _journal.Journal.open(d, "cid", "ab" * 32, 4, resume=True, default_size=9).done == {0: 4, 1: 3}
    with pytest.raises(ConfigurationError, match="batch_size=4"):
        _journal.Journal.open(d, "cid", "ab" * 32, 8, resume=True, default_size=9)
    j.path.write_bytes(b"garbage\n")
    with pytest.raises(IntegrityError, match="corrupted"):
        _journal.Journal.open(d, "cid", "ab" * 32, 4, resume=True, default_size=9)


# ---------------------------------------------------------------------------------------- with models


@pytest.mark.models
def test_workers_give_the_same_codes_as_serial_add(tmp_path: Path, models_dir: Path) -> None:
    rows = _clean_rows(tmp_path, 22)
    m = _write(tmp_path / "m.jsonl", rows)
    bs = 6
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as store:
        par = store.create_collection("par", bits=64, protection="none")
        ser = store.create_collection("ser", bits=64, protection="none")
        one = store.create_collection("one", bits=64, protection="none")
        rep = ingest(par, m, workers=2, batch_size=bs)
        assert (rep.added, rep.rejected, rep.batches, rep.workers) == (22, 0, 4, 2)
        assert ingest(one, m, workers=0, batch_size=bs).added == 22
        for s in range(0, len(rows), bs):  # serial reference: Collection.add of the same batches
            ser.add(
                [
                    securecmr.Item(
                        r["id"],
                        text=r["text"],
                        image=str(tmp_path / r["image"]) if "image" in r else None,
                        labels=tuple(r["labels"]),
                        attrs=r["attrs"],
                        ref=r["ref"],
                    )
                    for r in rows[s : s + bs]
                ]
            )
        ref = _raw_codes(ser)
        assert len(ref) == 22 + 6  # 22 text codes, 6 image codes
        assert _raw_codes(par) == ref and _raw_codes(one) == ref
        assert _ids(par) == _ids(ser) == [r["id"] for r in rows]  # manifest order
        got, want = par.get("case-004"), ser.get("case-004")
        assert (got.labels, got.attrs, got.ref) == (want.labels, want.attrs, want.ref)
        for q in ("a small lesion in segment 3", "finding number 8"):
            a = [(h.id, h.distance) for h in par.search(text=q, k=8)]
            assert a == [(h.id, h.distance) for h in ser.search(text=q, k=8)]


@pytest.mark.models
def test_bad_lines_go_to_the_rejects_file(tmp_path: Path, models_dir: Path) -> None:
    m, bad, n_good = _dirty_manifest(tmp_path)
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as store:
        store.create_collection("c", bits=64, protection="none")
        store.create_collection("p", bits=64, protection="none")
        # one id already in the collection: rejected, not an abort and not a duplicate
        store.collection("c").add([securecmr.Item("case-010", text="stored before")])
        rep = ingest(store.collection("c"), m, workers=0, batch_size=4)
        rejected = _rejects(rep.rejects_path)
        assert rep.rejects_path == m.with_name("manifest.jsonl.rejects.jsonl")
        line_10 = next(i for i, ln in enumerate(m.read_text().splitlines(), 1) if '"case-010"' in ln)
        assert set(rejected) == {*bad, line_10}
        for line, why in bad.items():
            assert why in rejected[line]
        assert "already stored" in rejected[line_10]
        assert rep.added == n_good - 1 and rep.rejected == len(bad) + 1
        ids = _ids(store.collection("c"))
        assert len(ids) == len(set(ids)) == n_good
        # the same manifest through two worker processes: same codes, same rejects
        rep2 = ingest(store.collection("p"), m, workers=2, batch_size=4, rejects=tmp_path / "r2.jsonl")
        assert set(_rejects(rep2.rejects_path)) == set(bad)
        codes_c, codes_p = _raw_codes(store.collection("c")), _raw_codes(store.collection("p"))
        assert {k: v for k, v in codes_p.items() if k[0] != "case-010"} == {
            k: v for k, v in codes_c.items() if k[0] != "case-010"
        }


@pytest.mark.models
def test_crash_before_a_commit_resumes_without_duplicates(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m, bad, n_good = _dirty_manifest(tmp_path)
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as store:
        coll = store.create_collection("c", bits=64, protection="none")
        calls = {"n": 0}
        add = securecmr.Collection.add

        def crashing_add(self: Any, items: Any, **kw: Any) -> int:
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("simulated crash")
            return add(self, items, **kw)

        with monkeypatch.context() as mp:
            mp.setattr(securecmr.Collection, "add", crashing_add)
            with pytest.raises(RuntimeError, match="simulated"):
                ingest(coll, m, workers=0, batch_size=4)
        assert len(coll) == 6  # batches 0 and 1 stored (lines 3 and 6 were rejected)
        with pytest.raises(ConfigurationError, match="resume"):
            ingest(coll, m, workers=0, batch_size=4)
        with pytest.raises(ConfigurationError, match="batch_size=4"):
            ingest(coll, m, workers=0, batch_size=5, resume=True)
        enc = CountingEncoder(monkeypatch)
        rep = ingest(coll, m, workers=0, resume=True)
        assert rep.resumed_batches == 2 and enc.batches == list(range(2, rep.batches))
        ids = _ids(coll)
        assert len(ids) == len(set(ids)) == n_good
        assert set(_rejects(rep.rejects_path)) == set(bad) and rep.rejected == len(bad)
        # finished: resuming again does nothing; a new run rejects every id as already stored
        assert ingest(coll, m, workers=0, resume=True).added == 0
        rep = ingest(coll, m, workers=0, batch_size=4)
        assert rep.added == 0 and rep.rejected == len(bad) + n_good and len(coll) == n_good


@pytest.mark.models
def test_crash_between_commit_and_journal_resumes_without_duplicates(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m, _bad, n_good = _dirty_manifest(tmp_path)
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as store:
        coll = store.create_collection("c", bits=64)
        calls = {"n": 0}
        done = _journal.Journal.mark_done

        def crashing_done(self: Any, batch: int, added: int, rejected: int | None = None) -> None:
            calls["n"] += 1
            if calls["n"] == 2:  # batch 1 is committed to the store, the journal never hears of it
                raise RuntimeError("simulated crash")
            done(self, batch, added, rejected)

        with monkeypatch.context() as mp:
            mp.setattr(_journal.Journal, "mark_done", crashing_done)
            with pytest.raises(RuntimeError, match="simulated"):
                ingest(coll, m, workers=0, batch_size=4)
        stored = len(coll)
        enc = CountingEncoder(monkeypatch)
        rep = ingest(coll, m, workers=0, resume=True)
        assert rep.resumed_batches == 2 and enc.batches == list(range(2, rep.batches))
        assert rep.added == n_good - stored
        ids = _ids(coll)
        assert len(ids) == len(set(ids)) == n_good


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.models
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_kill_9_mid_job_resumes_without_duplicates(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 150
    m = _write(
        tmp_path / "m.jsonl", [{"id": f"r{i}", "text": f"note {i} about patient care"} for i in range(n)]
    )
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as store:
        store.create_collection("c", bits=64)
    script = (
        "import sys, securecmr\n"
        "from securecmr.ingest import ingest\n"
        "with securecmr.Store.open(sys.argv[1], passphrase=sys.argv[2]) as s:\n"
        "    ingest(s.collection('c'), sys.argv[3], workers=2, batch_size=3)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "st"), PASS, str(m)])
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    try:
        while _journal_done(tmp_path / "st") < 3:
            workers.update(_children(proc.pid))
            assert proc.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline, "the job made no progress"
            time.sleep(0.02)
        workers.update(_children(proc.pid))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(workers) == 2
    end = time.monotonic() + 30
    while any(_alive(w) for w in workers):  # workers see EOF and exit on their own
        assert time.monotonic() < end, "worker processes outlived the killed job"
        time.sleep(0.05)
    with securecmr.Store.open(tmp_path / "st", passphrase=PASS) as store:
        coll = store.collection("c")
        before = len(coll)
        assert before >= 9
        enc = CountingEncoder(monkeypatch)
        rep = ingest(coll, m, workers=0, resume=True)
        ids = _ids(coll)
        assert len(ids) == len(set(ids)) == n
        assert set(ids) == {f"r{i}" for i in range(n)}
        assert rep.added == n - before and rep.resumed_batches * 3 == before
        assert len(enc.batches) == rep.batches - rep.resumed_batches  # stored batches not re-encoded


@pytest.mark.models
def test_encoders_are_loaded_once_per_worker(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = _write(tmp_path / "m.jsonl", _clean_rows(tmp_path, 12))
    calls: dict[str, list[Any]] = {"text": [], "image": []}
    for kind in calls:
        loader = getattr(securecmr, f"load_{kind}_encoder")

        def counted(*a: Any, _kind: str = kind, _loader: Any = loader, **kw: Any) -> Any:
            calls[_kind].append(kw.get("num_threads"))
            return _loader(*a, **kw)

        monkeypatch.setattr(securecmr.encoders, f"load_{kind}_encoder", counted)  # where ingest finds it
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as store:
        rep = ingest(store.create_collection("c"), m, workers=0, batch_size=3)
    assert rep.batches == 4 and rep.added == 12
    assert calls == {"text": [1], "image": [1]}  # one session per modality, single-threaded


@pytest.mark.models
def test_session_user_needs_add_permission(tmp_path: Path, models_dir: Path) -> None:
    m = _write(tmp_path / "m.jsonl", [{"id": f"r{i}", "text": f"note {i}"} for i in range(5)])
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as store:
        store.create_collection("c", bits=64)
        reader = store.session(store.create_user("rita", role="reader")).collection("c")
        with pytest.raises(PermissionDeniedError):
            ingest(reader, m, workers=0, batch_size=2)
        assert len(store.collection("c")) == 0
        admin = store.session(store.create_user("root", role="admin")).collection("c")
        assert ingest(admin, m, workers=0, batch_size=2, resume=True).added == 5
        adds = [r for r in store.audit.records() if r["action"] == "add" and r.get("principal") == "root"]
        assert len(adds) == 3  # one checked, audited add per batch


def _cli(args: list[str]) -> tuple[int, str]:
    from typer.testing import CliRunner

    from securecmr.cli.main import app

    res = CliRunner().invoke(app, args, env={"SECURECMR_PASSPHRASE": PASS, "SECURECMR_NO_PROGRESS": "1"})
    return res.exit_code, res.output + (repr(res.exception) if res.exception else "")


@pytest.mark.models
def test_cli_batch_mode_and_resume(tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m, bad, n_good = _dirty_manifest(tmp_path)
    st = str(tmp_path / "st")
    assert _cli(["store", "init", st])[0] == 0
    assert _cli(["collection", "create", st, "c"])[0] == 0
    add = securecmr.Collection.add
    calls = {"n": 0}

    def crashing_add(self: Any, items: Any, **kw: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash")
        return add(self, items, **kw)

    with monkeypatch.context() as mp:
        mp.setattr(securecmr.Collection, "add", crashing_add)
        code, out = _cli(["ingest", st, "c", str(m), "--workers", "0", "--batch-size", "5"])
    assert code != 0 and "simulated crash" in out
    code, out = _cli(["ingest", st, "c", str(m), "--workers", "0", "--batch-size", "5"])
    assert code != 0 and "--resume" in out
    rej = tmp_path / "rejects.jsonl"
    code, out = _cli(["ingest", st, "c", str(m), "--workers", "1", "--resume", "--rejects", str(rej)])
    assert code == 0, out
    assert "1 of 4 batches were already stored" in out and "workers=1" in out
    with securecmr.Store.open(st, passphrase=PASS) as store:
        ids = _ids(store.collection("c"))
    assert len(ids) == len(set(ids)) == n_good
    # the first run's rejects went to the default file, the resumed run's to --rejects
    both = {**_rejects(m.with_name("manifest.jsonl.rejects.jsonl")), **_rejects(rej)}
    assert set(both) == set(bad)
    code, out = _cli(["ingest", st, "c", str(m), "--engine", "nope"])
    assert code != 0 and "engine must be one of" in out


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_ray_engine_local_mode(tmp_path: Path, models_dir: Path) -> None:
    pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    m, bad, n_good = _dirty_manifest(tmp_path)
    with securecmr.Store.create(tmp_path / "st", passphrase=PASS) as store:
        ray_c = store.create_collection("ray", bits=64, protection="none")
        ref_c = store.create_collection("ref", bits=64, protection="none")
        rep = ingest(ray_c, m, engine="ray", workers=2, batch_size=4, rejects=tmp_path / "r.jsonl")
        assert rep.engine == "ray" and rep.added == n_good
        ingest(ref_c, m, workers=0, batch_size=4, rejects=tmp_path / "r0.jsonl")
        assert _raw_codes(ray_c) == _raw_codes(ref_c)
        assert _ids(ray_c) == _ids(ref_c)
        assert _rejects(tmp_path / "r.jsonl") == _rejects(tmp_path / "r0.jsonl")
        assert set(_rejects(tmp_path / "r.jsonl")) == set(bad)

"""Surveillance benchmark: video ingest speed, memory while ingesting a long file, UCA text->text MAP.

    .venv/bin/python bench/surveillance.py --data ../shared/data --json surveillance.json

1. Ingest speed (``realtime_factor`` = seconds of video ingested per second of wall time: decode,
   segment, encode, seal and store in a salted+encrypted store collection) at the default settings
   (1 fps + scene changes, 10 s windows, int8 models) on a long 25 fps recording made from the real
   vtest.avi frames (re-encoded at 25 fps, looped to ``--long-seconds``), and per real clip
   (vtest.avi, bikes.mp4, carphone_pristine.mp4). ``cpu_realtime_factor`` = seconds of video per
   CPU second of the process (all its threads), and ``load_average`` (1-minute, before and after)
   say how much of the wall time was waiting for a core on a shared machine.
2. Memory: resident set size sampled after every stored batch (2 segments) of the long file;
   ``peak_rss_mb`` is the process's high-water mark (VmHWM from /proc, models included) and
   ``rss_growth_mb`` the growth from a quarter of the way through the file (after warm-up) to the
   end (flat = streaming).
3. UCA (UCF-Crime annotations) text->text retrieval: event sentences, 14 classes (video-name
   prefix). Queries from the Test split, database from the Val split, hasher trained on the Train
   split (subsampled with ``--uca-*``); MAP overall and per class for the float text encoder and for
   64-bit codes from a trained supervised hasher and the data-independent zero-shot hasher.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "adapters"))

from securecmr_surveillance import SurveillanceIndex, create_surveillance_collection  # noqa: E402

import securecmr  # noqa: E402

UCA_CLASSES = ["Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting", "Normal",
               "RoadAccidents", "Robbery", "Shooting", "Shoplifting", "Stealing", "Vandalism"]


def _proc_kb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return float("nan")


def rss_mb() -> float:
    return _proc_kb("VmRSS") / 1024.0


def peak_rss_mb() -> float:
    return _proc_kb("VmHWM") / 1024.0


def make_long_recording(source: Path, out: Path, seconds: float, fps: int = 25) -> float:
    """Re-encode ``source``'s frames at ``fps`` (mpeg4), looping (streamed, a cut at each loop point)
    until ``seconds``; returns its length."""
    import av

    n = int(seconds * fps)
    i = 0
    with av.open(str(out), "w") as dst:
        stream = None
        while i < n:
            with av.open(str(source)) as src:
                for frame in src.decode(video=0):
                    if i >= n:
                        break
                    if stream is None:
                        stream = dst.add_stream("mpeg4", rate=fps)
                        stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, "yuv420p"
                        stream.bit_rate = 2_000_000
                    out_frame = frame.reformat(format="yuv420p")
                    out_frame.pts = i
                    out_frame.time_base = Fraction(1, fps)
                    for packet in stream.encode(out_frame):
                        dst.mux(packet)
                    i += 1
        if stream is not None:
            for packet in stream.encode():
                dst.mux(packet)
    return n / fps


class _Sampling:
    """Wraps a collection: samples RSS after every stored batch."""

    def __init__(self, collection: Any, rss: list[float]) -> None:
        self.collection, self.rss = collection, rss

    def add(self, items: Any) -> Any:
        out = self.collection.add(items)
        self.rss.append(rss_mb())
        return out

    def search(self, **kwargs: Any) -> Any:
        return self.collection.search(**kwargs)


def ingest_speed(encoder: Any, path: Path, collection: Any, *, sample_rss: bool = False) -> dict[str, Any]:
    """Ingest ``path`` into ``collection`` (segment, encode, seal, store) and time it."""
    rss: list[float] = []
    index = SurveillanceIndex(_Sampling(collection, rss), encoder, batch_items=2)
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    report = index.ingest(path, camera="bench", site="bench", recording_id=f"bench-{path.stem}")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n, end = report.segments, report.seconds
    out: dict[str, Any] = {"file": path.name, "video_s": round(end, 2), "wall_s": round(wall, 2),
                           "cpu_s": round(cpu, 2), "segments": n, "realtime_factor": round(end / wall, 2),
                           "cpu_realtime_factor": round(end / cpu, 2),
                           "load_average": [round(load0, 1), round(os.getloadavg()[0], 1)]}
    if sample_rss:
        warm = rss[len(rss) // 4]  # after warm-up (onnxruntime arenas, decoder buffers)
        out["rss_first_segment_mb"] = round(rss[0], 1)
        out["rss_quarter_mb"] = round(warm, 1)
        out["rss_mid_mb"] = round(rss[len(rss) // 2], 1)
        out["rss_end_mb"] = round(rss[-1], 1)
        out["rss_growth_mb"] = round(rss[-1] - warm, 1)
    return out


def load_uca(folder: Path, split: str, limit: int, seed: int) -> tuple[list[str], np.ndarray]:
    data = json.loads((folder / f"UCFCrime_{split}.json").read_text())
    texts, labels = [], []
    for name, v in data.items():
        m = re.match(r"[A-Za-z]+", name)
        cls = m.group(0) if m else ""
        if cls not in UCA_CLASSES:
            continue
        for s in v["sentences"]:
            if s.strip():
                texts.append(s.strip())
                labels.append(UCA_CLASSES.index(cls))
    y = np.asarray(labels)
    if limit and len(texts) > limit:  # stratified-ish: a seeded uniform subsample
        idx = np.sort(np.random.default_rng(seed).choice(len(texts), limit, replace=False))
        return [texts[i] for i in idx], y[idx]
    return texts, y


def per_class_ap(dist: np.ndarray, qy: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """AP of every query (cosine or Hamming distance rows; stable ties)."""
    order = np.argsort(dist, axis=1, kind="stable")
    rel = (dy[order] == qy[:, None]).astype(np.float64)
    cum = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)
    n_rel = rel.sum(axis=1)
    return np.where(n_rel > 0, (cum / ranks * rel).sum(axis=1) / np.maximum(n_rel, 1), 0.0)


def uca_map(args: argparse.Namespace, text_encoder: Any) -> dict[str, Any]:
    import importlib

    from securecmr import hashing

    sc_eval: Any = importlib.import_module("securecmr.eval")
    if not hasattr(sc_eval, "mean_average_precision"):  # package surface not populated yet
        sc_eval = importlib.import_module("securecmr.eval._metrics")

    folder = args.data / "uca_ucfcrime"
    qt, qy = load_uca(folder, "Test", args.uca_queries, 0)
    dt, dy = load_uca(folder, "Val", args.uca_db, 1)
    tt, ty = load_uca(folder, "Train", args.uca_train, 2)
    t0 = time.perf_counter()
    q = text_encoder.encode(qt, batch_size=64)
    d = text_encoder.encode(dt, batch_size=64)
    tr = text_encoder.encode(tt, batch_size=64)
    enc_s = time.perf_counter() - t0
    results: dict[str, Any] = {"queries": len(qt), "database": len(dt), "train": len(tt),
                               "encode_sentences_per_s": round((len(qt) + len(dt) + len(tt)) / enc_s, 1)}
    qm, dm = qy[:, None] == np.arange(14), dy[:, None] == np.arange(14)
    methods: dict[str, tuple[np.ndarray, float]] = {}
    float_dist = -(q @ d.T)
    methods["float"] = (per_class_ap(float_dist, qy, dy),
                        sc_eval.float_mean_average_precision(q, d, qm, dm))
    for name, hasher in [
        ("zero-shot-64", hashing.create("zero-shot", bits=64, dim=q.shape[1], seed=0).fit()),
        ("supervised-64", hashing.create("supervised", bits=64).fit(tr, tr, labels=ty)),
    ]:
        qc, dc = hasher.encode_text(q), hasher.encode_text(d)
        hd = sc_eval.hamming_distance(qc, dc)
        methods[name] = (per_class_ap(hd, qy, dy), sc_eval.mean_average_precision(qc, dc, qm, dm))
    for name, (ap, overall) in methods.items():
        results[name] = {
            "map": round(float(overall), 4),
            "map_by_class": {c: round(float(ap[qy == i].mean()), 4) for i, c in enumerate(UCA_CLASSES)
                             if (qy == i).any()},
            "macro_map": round(float(np.mean([ap[qy == i].mean() for i in range(14) if (qy == i).any()])), 4),
        }
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--models", type=Path, default=None, help="model dir (default $SECURECMR_HOME/models)")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime threads (the target is 2 cores)")
    p.add_argument("--fp32", action="store_true", help="use the fp32 models instead of int8")
    p.add_argument("--long-seconds", type=float, default=300.0)
    p.add_argument("--uca-queries", type=int, default=1000)
    p.add_argument("--uca-db", type=int, default=2000)
    p.add_argument("--uca-train", type=int, default=3000)
    p.add_argument("--skip-uca", action="store_true")
    args = p.parse_args()

    int8 = not args.fp32
    video = securecmr.load_video_encoder(args.models, int8=int8, num_threads=args.threads)
    report: dict[str, Any] = {"int8": int8, "threads": args.threads, "settings": repr(video)}
    media = args.data / "media"
    with tempfile.TemporaryDirectory() as tmp:
        long_path = Path(tmp) / "long_25fps.avi"
        t0 = time.perf_counter()
        make_long_recording(media / "vtest.avi", long_path, args.long_seconds)
        report["long_file_build_s"] = round(time.perf_counter() - t0, 1)
        store = securecmr.Store.create(Path(tmp) / "store", passphrase="bench passphrase 0123456789")
        footage = create_surveillance_collection(store, "footage")  # salted+encrypted, 72 h TTL
        long = ingest_speed(video, long_path, footage, sample_rss=True)
        report["clips"] = [ingest_speed(video, media / n, footage) for n in
                           ("vtest.avi", "bikes.mp4", "carphone_pristine.mp4")]
        report["stored_segments"] = len(footage)
        store.close()
    report["long_25fps"] = long
    report["realtime_factor"] = long["realtime_factor"]
    report["cpu_realtime_factor"] = long["cpu_realtime_factor"]
    report["rss_growth_mb"] = long["rss_growth_mb"]
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)

    print(f"{'file':<24}{'video s':>9}{'wall s':>9}{'x realtime':>12}{'cpu s':>8}{'x per cpu s':>13}"
          f"{'segments':>10}{'load':>12}")
    for row in [long, *report["clips"]]:
        load = "-".join(str(x) for x in row["load_average"])
        print(f"{row['file']:<24}{row['video_s']:>9}{row['wall_s']:>9}{row['realtime_factor']:>12}"
              f"{row['cpu_s']:>8}{row['cpu_realtime_factor']:>13}{row['segments']:>10}{load:>12}")
    print(f"RSS: first segment {long['rss_first_segment_mb']} MB, 25% {long['rss_quarter_mb']} MB, "
          f"50% {long['rss_mid_mb']} MB, end {long['rss_end_mb']} MB (growth after warm-up "
          f"{long['rss_growth_mb']} MB); peak {report['peak_rss_mb']} MB")

    if not args.skip_uca:
        text = securecmr.load_text_encoder(args.models, int8=int8, num_threads=args.threads)
        uca = uca_map(args, text)
        report["uca_text_to_text"] = uca
        print(f"\nUCA text->text MAP ({uca['queries']} Test queries vs {uca['database']} Val sentences; "
              f"hasher trained on {uca['train']} Train sentences)")
        names = [k for k in ("float", "zero-shot-64", "supervised-64") if k in uca]
        print(f"{'class':<16}" + "".join(f"{n:>15}" for n in names))
        for c in UCA_CLASSES:
            if c in uca["float"]["map_by_class"]:
                print(f"{c:<16}" + "".join(f"{uca[n]['map_by_class'][c]:>15.3f}" for n in names))
        print(f"{'macro':<16}" + "".join(f"{uca[n]['macro_map']:>15.3f}" for n in names))
        print(f"{'all queries':<16}" + "".join(f"{uca[n]['map']:>15.3f}" for n in names))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Batch-ingest throughput: 1 vs 2 worker processes on real data (MedPix 2.0 CT/MR images + captions).

    .venv/bin/python bench/ingest.py [--data ../shared/data] [--n 400] [--json out.json]

Each run ingests the same manifest (one caption + one image per item) into a fresh
``salted+encrypted`` collection with ``securecmr.ingest.ingest``; the time covers everything the
caller waits for: worker start-up and model loading, decoding, encoding, sealing and the per-batch
transactions. Runs in-process (``workers=0``) too, as a reference. ORT runs one intra-op thread per
worker. CPU seconds (this process + its worker processes) show how much CPU each run actually got:
on a shared machine, a run that gets no more than one core cannot go faster with two workers.
Uses the exported models in ``$SECURECMR_HOME`` (exports them to a temp dir when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


def _manifest(data: Path, n: int, out: Path) -> int:
    root = data / "medpix2"
    rows = []
    for d in json.loads((root / "Descriptions.json").read_text()):
        img = root / "images" / f"{d['image']}.jpg"
        caption = (d.get("Description") or {}).get("Caption") or ""
        if not img.is_file() or not caption.strip():
            continue
        rows.append(
            {
                "id": d["image"],
                "text": caption,
                "image": str(img.resolve()),
                "labels": [d.get("Type", "")],
                "attrs": {"location": d.get("Location Category", "")},
            }
        )
        if len(rows) == n:
            break
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the worker processes)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _ensure_models(tmp: Path) -> None:
    from securecmr.encoders._manifest import resolve_dir

    if (resolve_dir(None) / "manifest.json").is_file():
        return
    from securecmr.encoders import export_models

    os.environ["SECURECMR_HOME"] = str(tmp / "home")
    export_models(tmp / "home" / "models")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--json", default=None)
    ap.add_argument("--n", type=int, default=400, help="items (MedPix images with a caption)")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    import securecmr
    from securecmr.ingest import ingest

    tmp = Path(tempfile.mkdtemp(prefix="scmr-bench-ingest-"))
    try:
        _ensure_models(tmp)
        manifest = tmp / "medpix.jsonl"
        n = _manifest(Path(args.data), args.n, manifest)
        if n == 0:
            raise SystemExit(f"no MedPix images with captions under {args.data}/medpix2")
        load0 = os.getloadavg()
        runs: dict[str, Any] = {}
        with securecmr.Store.create(tmp / "store", passphrase="bench") as store:
            for label, workers in (("1_worker", 1), ("2_workers", 2), ("in_process", 0)):
                coll = store.create_collection(label, bits=64, protection="salted+encrypted")
                cpu0 = _cpu()
                t = time.perf_counter()
                rep = ingest(
                    coll,
                    manifest,
                    workers=workers,
                    batch_size=args.batch_size,
                    rejects=tmp / f"{label}.rejects.jsonl",
                    show_progress=False,
                )
                wall = time.perf_counter() - t
                cpu = _cpu() - cpu0
                runs[label] = {"items": rep.added, "rejected": rep.rejected, "seconds": wall, "cpu_s": cpu}
                print(
                    f"{label:>10}: {rep.added} items in {wall:6.1f} s = {rep.added / wall:6.2f} items/s; "
                    f"CPU {cpu:6.1f} s (x{cpu / wall:.2f} of wall time)"
                )
            queries = ["enlarged prostate with calcifications", "mass in the left frontal lobe"]
            hits = {
                label: [
                    [(h.id, h.distance) for h in store.collection(label).search(text=q, k=10)]
                    for q in queries
                ]
                for label in runs
            }
            identical = hits["1_worker"] == hits["2_workers"] == hits["in_process"]
        load1 = os.getloadavg()
        ips1 = runs["1_worker"]["items"] / runs["1_worker"]["seconds"]
        ips2 = runs["2_workers"]["items"] / runs["2_workers"]["seconds"]
        result = {
            "items": n,
            "batch_size": args.batch_size,
            "items_per_s_1_worker": round(ips1, 3),
            "items_per_s_2_workers": round(ips2, 3),
            "speedup": round(ips2 / ips1, 3),
            "items_per_s_in_process": round(runs["in_process"]["items"] / runs["in_process"]["seconds"], 3),
            "seconds": {k: round(v["seconds"], 2) for k, v in runs.items()},
            "cpu_seconds": {k: round(v["cpu_s"], 2) for k, v in runs.items()},
            "cpu_per_wall": {k: round(v["cpu_s"] / v["seconds"], 3) for k, v in runs.items()},
            "same_search_results": identical,
            "cpu_count": os.cpu_count(),
            "loadavg_1min_before_after": [round(load0[0], 2), round(load1[0], 2)],
        }
        print(f"speedup 2 vs 1 worker: {result['speedup']:.2f}x; same search results: {identical}")
        print(f"cpus: {os.cpu_count()}, 1-min load average before/after: {load0[0]:.2f} / {load1[0]:.2f}")
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

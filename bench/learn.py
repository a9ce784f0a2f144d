"""Collections that learn, measured through the store: zero-shot start, unsupervised and supervised fits.

    .venv/bin/python bench/learn.py --data ../shared/data --json learn.json [--bits 64]

MedPix 2.0: the train + dev images with their captions (1,850 pairs) go into a collection created
with ``keep_features=True`` (default encoders, ``salted+encrypted``), each item carrying its caption
(text), its image and its body region as label. The 200 test pairs are the queries, held apart from
every fit: text queries search the image codes and image queries the text codes through
``collection.search`` (whole ranking, relevant = same body region), MAP both ways, for

* ``zero_shot``: the collection as created (ConSE image vectors vs MiniLM text, 64-bit zero-shot codes);
* ``unsupervised``: after ``collection.fit(method="unsupervised")`` (pairs only; forced when it
  does not win on its own held-apart pairs, so that its figures are always reported);
* ``supervised``: after switching back and ``collection.fit(method="supervised")`` (label = region).

Also: the fit's own held-apart report, the fit time (``fit_seconds``: the hasher's fit on 80 % of the
pairs; ``fit_wall_seconds``: the whole ``fit`` call, comparison, refit on every pair and switch) and
the re-coding rate (``recode_items_per_s``: staging + switch + reload, items / second).

``--recode-items N`` (default 50,000) also times re-coding alone at scale: N generated items with
kept 384-d text and image vectors, switched to a linear (``cca-itq``) and to a kernel
(``unsupervised``, 1,000 anchors) hasher; ``recode/linear_items_per_s``, ``recode/kernel_items_per_s``
(staging + the switch transaction + reloading the index, items / second).

The populated store is built once and cached under ``--cache`` (encoding 1,850 images takes minutes
on a shared 2-core machine); every run works on a fresh copy of it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PASS = "bench-learn-passphrase"


def rows(root: Path, split: str) -> list[dict[str, Any]]:
    path = root / "splits" / f"descriptions_{split}.jsonl"
    out = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [r for r in out if (root / "images" / f"{r['image']}.jpg").is_file()]


def caption(r: dict[str, Any]) -> str:
    return str((r.get("Description") or {}).get("Caption") or "").strip() or "no caption"


def build_store(root: Path, dest: Path, bits: int, protection: str) -> None:
    import securecmr

    store = securecmr.Store.create(dest, passphrase=PASS)
    coll = store.create_collection("medpix", bits=bits, protection=protection, keep_features=True)
    db = rows(root, "train") + rows(root, "dev")
    for s in range(0, len(db), 128):
        batch = [
            securecmr.Item(
                r["image"],
                text=caption(r),
                image=str(root / "images" / f"{r['image']}.jpg"),
                labels=(str(r["Location Category"]),),
                attrs={"modality": str(r.get("Type"))},
            )
            for r in db[s : s + 128]
        ]
        coll.add(batch)
        print(f"  added {min(s + 128, len(db))}/{len(db)}", flush=True)
    store.close()


def average_precision(ranked: list[Any], label_of: dict[Any, str], label: str) -> float:
    rel = np.array([label_of[i] == label for i in ranked], dtype=bool)
    if not rel.any():
        return 0.0
    hits = np.cumsum(rel)
    return float((hits[rel] / (np.flatnonzero(rel) + 1)).mean())


def query_maps(
    coll: Any, queries: list[dict[str, Any]], root: Path, label_of: dict[Any, str]
) -> dict[str, float]:
    n = len(coll)
    t2i, i2t = [], []
    for r in queries:
        lab = str(r["Location Category"])
        hits = coll.search(text=caption(r), k=n, modality="image")
        t2i.append(average_precision([h.id for h in hits], label_of, lab))
        hits = coll.search(image=str(root / "images" / f"{r['image']}.jpg"), k=n, modality="text")
        i2t.append(average_precision([h.id for h in hits], label_of, lab))
    return {"map_t2i": float(np.mean(t2i)), "map_i2t": float(np.mean(i2t))}


def recode_rates(n: int) -> dict[str, float]:
    import securecmr
    from securecmr import hashing

    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="scmr-recode-") as tmp:
        store = securecmr.Store.create(Path(tmp) / "s", passphrase=PASS)
        coll = store.create_collection("gen", bits=64, keep_features=True)
        for s in range(0, n, 10_000):
            m = min(10_000, n - s)
            x = rng.normal(size=(m, 384)).astype(np.float32)
            t = rng.normal(size=(m, 384)).astype(np.float32)
            coll.add([securecmr.Item(s + i, vectors={"text": t[i], "image": x[i]}) for i in range(m)])
        sample_x, sample_t = rng.normal(size=(2000, 384)), rng.normal(size=(2000, 384))
        for key, method in (("linear", "cca-itq"), ("kernel", "unsupervised")):
            h = hashing.create(method, bits=64).fit(sample_x, sample_t)
            from securecmr.store._learn import _switch

            items, secs = _switch(
                coll, h, action="collection.switch", show_progress=False, detail={"bench": True}
            )
            out[f"recode/{key}_items_per_s"] = items / secs
            print(
                f"re-coding {items:,} items to {method}: {secs:.2f} s ({items / secs:,.0f} items/s)",
                flush=True,
            )
        store.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--bits", type=int, default=64)
    ap.add_argument("--protection", default="salted+encrypted")
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "learn")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--recode-items", type=int, default=50_000)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    os.environ.setdefault("SECURECMR_NO_PROGRESS", "1")
    import securecmr

    root = args.data / "medpix2"
    cached = args.cache / f"learn-store-{args.bits}-{args.protection.replace('+', '_')}"
    if not (cached / "store.db").is_file():
        print(f"building the MedPix store once in {cached} (encodes 1,850 images and captions)", flush=True)
        shutil.rmtree(cached, ignore_errors=True)
        t = time.perf_counter()
        build_store(root, cached, args.bits, args.protection)
        print(f"  built in {time.perf_counter() - t:.0f} s", flush=True)
    queries = rows(root, "test")[: args.queries]
    results: dict[str, Any] = {
        "n_queries": len(queries),
        "bits": args.bits,
        "protection": args.protection,
        "loadavg_start": list(os.getloadavg()),
    }
    with tempfile.TemporaryDirectory(prefix="scmr-learn-") as tmp:
        work = Path(tmp) / "store"
        shutil.copytree(cached, work)
        store = securecmr.Store.open(work, passphrase=PASS)
        coll = store.collection("medpix")
        label_of = {h.id: h.labels[0] for h in (coll.get(i) for i in coll.ids())}
        results["n_items"] = len(coll)
        results["kept_features"] = coll.kept_features()
        results["medpix/zero_shot"] = query_maps(coll, queries, root, label_of)
        print(f"zero-shot start: {results['medpix/zero_shot']}", flush=True)
        for method, kw in (("unsupervised", {}), ("supervised", {})):
            if coll.hasher_version > 1:
                coll.switch_back()  # every fit starts from the zero-shot default
            t = time.perf_counter()
            report = coll.fit(method=method, force=True, **kw)
            wall = time.perf_counter() - t
            print(report, flush=True)
            maps = query_maps(coll, queries, root, label_of)
            results[f"medpix/{method}"] = {
                **maps,
                "held_apart": report.new,
                "held_apart_current": report.current,
                "would_switch_unforced": not report.forced,
                "fit_seconds": report.fit_seconds,
                "fit_wall_seconds": wall,
                "recode_items_per_s": report.recode_items_per_s,
                "pairs": report.pairs,
                "chosen": {k: str(v) for k, v in report.chosen.items()},
            }
            print(f"{method}: {maps}", flush=True)
        t = time.perf_counter()
        back = coll.switch_back()
        results["switch_back_items_per_s"] = back["recoded_items"] / (time.perf_counter() - t)
        store.close()
    if args.recode_items > 0:
        results.update(recode_rates(args.recode_items))
    results["loadavg_end"] = list(os.getloadavg())
    print()
    print(
        f"{'state':<14}{'MAP t->i':>10}{'MAP i->t':>10}{'fit s':>8}{'fit wall s':>12}{'recode items/s':>16}"
    )
    for state in ("zero_shot", "unsupervised", "supervised"):
        r = results[f"medpix/{state}"]
        print(
            f"{state:<14}{r['map_t2i']:>10.4f}{r['map_i2t']:>10.4f}{r.get('fit_seconds', 0):>8.1f}"
            f"{r.get('fit_wall_seconds', 0):>12.1f}{r.get('recode_items_per_s', 0):>16,.0f}"
        )
    print(f"load average at start {results['loadavg_start']}, end {results['loadavg_end']}")
    if args.json:
        flat = {}
        for key, val in results.items():
            if isinstance(val, dict) and key.startswith("medpix/"):
                for k2, v2 in val.items():
                    flat[f"{key}/{k2}"] = v2
            else:
                flat[key] = val
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(flat, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The supervised hasher against the plain baseline, at 16 / 32 / 64 bits.

    .venv/bin/python bench/baseline.py [--data ../shared/data] [--json out.json] [--cache .cache/learn]

Three rows per dataset and length, MAP over the whole ranking, out of sample (query and database
codes from the hash functions; ties in database order):

* ``baseline``: per-modality logistic regression (scikit-learn, standardised inputs, signed square
  root for histograms) onto a seeded random ±1 class codebook, sign;
* ``kernel`` (``head="kernel"``, ``code="rank"`` where the classes fit: the hasher before it
  weighed other candidates);
* ``supervised`` (defaults: ``head="auto"``, ``code="auto"``: kernel or linear head per modality,
  rank code or hash centres, whichever validates best on held-apart training pairs).

Datasets: Wikipedia (2,173 training pairs query-ed by 693), MedPix 2.0 (body region; test queries
against train + dev, features from the default encoders, cached under ``--cache``) and the generated
task of ``tests/test_hashing_baseline.py``. Missing datasets are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def baseline_maps(tr: Any, q: Any, db: Any, bits: int) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from securecmr.eval import mean_average_precision

    n_classes = int(max(tr.labels.max(), q.labels.max(), db.labels.max())) + 1
    book = np.random.default_rng(3).choice([-1.0, 1.0], size=(n_classes, bits))
    codes = {}
    for side in ("image", "text"):
        f = (lambda a: np.sqrt(a)) if (getattr(tr, side) >= 0).all() else (lambda a: a)
        scale = StandardScaler().fit(f(getattr(tr, side)))
        clf = LogisticRegression(max_iter=2000).fit(scale.transform(f(getattr(tr, side))), tr.labels)

        def enc(a: np.ndarray, clf: Any = clf, scale: Any = scale, f: Any = f) -> np.ndarray:
            p = np.zeros((a.shape[0], n_classes))
            p[:, clf.classes_] = clf.predict_proba(scale.transform(f(a)))
            return np.packbits(p @ book > 0, axis=1)

        codes[side] = (enc(getattr(q, side)), enc(getattr(db, side)))
    return (
        mean_average_precision(codes["image"][0], codes["text"][1], q.labels, db.labels),
        mean_average_precision(codes["text"][0], codes["image"][1], q.labels, db.labels),
    )


def hasher_maps(tr: Any, q: Any, db: Any, bits: int, **params: Any) -> tuple[float, float, float, Any]:
    import securecmr.hashing as hashing
    from securecmr.eval import mean_average_precision

    t = time.perf_counter()
    h = hashing.create("supervised", bits=bits, **params).fit(tr.image, tr.text, tr.labels)
    fit_s = time.perf_counter() - t
    i2t = mean_average_precision(h.encode_image(q.image), h.encode_text(db.text), q.labels, db.labels)
    t2i = mean_average_precision(h.encode_text(q.text), h.encode_image(db.image), q.labels, db.labels)
    return i2t, t2i, fit_s, h


def datasets(data: Path, cache: Path) -> list[tuple[str, Any]]:
    from securecmr.eval import CrossModalData, Split, load_medpix, load_wikipedia

    out: list[tuple[str, Any]] = []
    if (data / "wikipedia" / "raw_features.mat").is_file():
        out.append(("wikipedia", load_wikipedia(data / "wikipedia")))
    if (data / "medpix2" / "splits").is_dir():
        out.append(("medpix", load_medpix(data / "medpix2", cache_dir=cache / "medpix")))
    sys.path.insert(0, str(REPO / "tests"))
    from test_hashing_baseline import make_hard_pairs

    x, t, y = make_hard_pairs(800, seed=0)
    qx, qt, qy = make_hard_pairs(300, seed=1)
    out.append(("generated", CrossModalData("generated", Split(x, t, y), Split(qx, qt, qy))))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "learn")
    ap.add_argument("--bits", default="16,32,64")
    args = ap.parse_args()
    bits_list = [int(b) for b in args.bits.split(",") if b.strip()]
    results: dict[str, Any] = {}
    print(f"{'dataset':<10}{'bits':>5}  {'row':<11}{'MAP i->t':>9}{'MAP t->i':>9}{'mean':>8}  chosen")
    for name, d in datasets(args.data, args.cache):
        for bits in bits_list:
            n_classes = len(np.unique(np.concatenate([d.train.labels, d.query.labels])))
            rows = {"baseline": (*baseline_maps(d.train, d.query, d.db, bits), None, None)}
            kernel_code = "rank" if bits >= n_classes else "centres"
            rows["kernel"] = hasher_maps(d.train, d.query, d.db, bits, head="kernel", code=kernel_code)
            rows["supervised"] = hasher_maps(d.train, d.query, d.db, bits)
            for row, (i2t, t2i, fit_s, h) in rows.items():
                chosen = "" if h is None else f"{h.head_image_}/{h.head_text_}/{h.code_}"
                print(
                    f"{name:<10}{bits:>5}  {row:<11}{i2t:>9.4f}{t2i:>9.4f}{(i2t + t2i) / 2:>8.4f}  {chosen}",
                    flush=True,
                )
                key = f"{name}/{bits}/{row}"
                results[key] = {"map_i2t": i2t, "map_t2i": t2i}
                if h is not None:
                    results[key] |= {"fit_seconds": fit_s, "chosen": chosen}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

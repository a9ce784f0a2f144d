"""MedPix 2.0 cross-modal retrieval on a protected securecmr collection.

Loads MedPix 2.0 (captions de-identified on the way in), encodes images (EfficientNet-Lite0
features) and captions (MiniLM), trains a supervised hasher on the train split (one class per
body region x modality), prints MAP on the test split for report -> image, image -> report,
report -> reports and image -> images (database: the train split; relevant = same body region
and same modality), then stores the train split in a salted+encrypted collection and shows three
real queries with their top results.

    securecmr models export                # once: ONNX encoders into $SECURECMR_HOME/models
    .venv/bin/python examples/medical/medpix_retrieval.py --data ../shared/data

``--data`` is the shared data folder (it must hold ``medpix2/``) or the ``medpix2`` folder itself.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "adapters"))

from securecmr_medical import MedicalRetriever, class_labels, load_medpix  # noqa: E402

import securecmr  # noqa: E402
from securecmr.eval import float_mean_average_precision, mean_average_precision  # noqa: E402

DIRECTIONS = (
    ("report -> image", "text", "image"),
    ("image -> report", "image", "text"),
    ("report -> reports", "text", "text"),
    ("image -> images", "image", "image"),
)


def _medpix_dir(data: Path) -> Path:
    return data if (data / "Descriptions.json").is_file() else data / "medpix2"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--method", default="supervised")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="exported models (default: SECURECMR_HOME)"
    )
    parser.add_argument("--store", type=Path, default=None, help="store directory (default: a temporary one)")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    t0 = time.perf_counter()
    records, report = load_medpix(_medpix_dir(args.data))
    print(
        f"loaded {report.loaded} MedPix images, skipped {len(report.skipped)}; PHI removed from captions: "
        f"{dict(sorted(report.phi_removed.items()))}"
    )
    for s in report.skipped[:5]:
        print(f"  skipped {s.item}: {s.error}: {s.message}")
    split = np.array([r.attrs["split"] for r in records])
    retriever = MedicalRetriever(bits=args.bits, method=args.method, model_dir=args.model_dir)
    feats = retriever.encode(records, show_progress=True)
    print(f"encoded {len(records)} images and captions in {time.perf_counter() - t0:.0f} s")

    train = np.flatnonzero(split == "train")
    test = np.flatnonzero(split == "test")
    train_recs = [records[i] for i in train]
    test_recs = [records[i] for i in test]
    retriever.fit(train_recs, feats.subset(train))
    y_train, classes = class_labels(train_recs)
    y_test, _ = class_labels(test_recs, classes)
    keep = y_test >= 0
    codes_db = retriever.codes(feats.subset(train))
    codes_q = retriever.codes(feats.subset(test))
    raw_db = {"image": feats.image[train], "text": feats.text[train]}
    raw_q = {"image": feats.image[test], "text": feats.text[test]}
    print(
        f"\nMAP on the MedPix test split ({int(keep.sum())} queries, {len(train)} train items, "
        f"{len(classes)} region x modality classes, {args.bits}-bit {args.method} codes)"
    )
    print(f"{'direction':<20}{'hashed MAP':>12}{'float MAP':>12}")
    for name, q_mod, db_mod in DIRECTIONS:
        m = mean_average_precision(codes_q[q_mod][keep], codes_db[db_mod], y_test[keep], y_train)
        if q_mod == db_mod:  # same-space float reference (cross-modal raw spaces differ)
            fm = float_mean_average_precision(raw_q[q_mod][keep], raw_db[db_mod], y_test[keep], y_train)
            f = f"{fm:>12.3f}"
        else:
            f = f"{'-':>12}"
        print(f"{name:<20}{m:>12.3f}{f}")

    # -- the protected collection and three real queries ----------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "medpix.scmr"
        passphrase = os.environ.get("SECURECMR_PASSPHRASE") or secrets.token_urlsafe(24)
        with securecmr.Store.create(path, passphrase=passphrase) as store:
            coll = retriever.create_collection(store, "medpix")
            added = retriever.add(coll, train_recs, feats.subset(train))
            print(
                f"\nstored {added} train records (codes, labels, attributes; no text, no pixels) "
                f"in a salted+encrypted collection"
            )
            caption = {r.id: r.text or "" for r in records}
            region = {r.id: r.attrs["region"] + "/" + r.attrs["modality"] for r in records}

            def show(title: str, hits: list[object]) -> None:
                print(f"\n{title}")
                for rank, h in enumerate(hits, 1):
                    hid = str(getattr(h, "id", ""))
                    print(
                        f"  {rank}. {hid:<22} score {float(getattr(h, 'score', 0.0)):.3f}  "
                        f"[{region.get(hid, '')}]  {caption.get(hid, '')[:70]}"
                    )

            query = "CT images matching: obstructing mass with left upper lobe collapse"
            show(f"report -> image: {query!r}", retriever.search(coll, text=query, target="image", k=args.k))
            qi = test_recs[0]
            show(
                f"image -> images: test image {qi.id} [{qi.attrs['region']}/{qi.attrs['modality']}]",
                retriever.search(coll, image=qi.image, target="image", k=args.k),
            )
            qt = next(r for r in test_recs if r.attrs["modality"] == "MR")
            show(
                f"report -> reports: test caption of {qt.id} {(qt.text or '')[:60]!r}",
                retriever.search(coll, text=qt.text, target="text", k=args.k),
            )
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "adapters"))

from securecmr_medical import MedicalFeatures, MedicalRecord, MedicalRetriever, class_labels, load_medpix  # noqa: E402

import securecmr  # noqa: E402
from securecmr.eval import float_mean_average_precision, hamming_distance, mean_average_precision  # noqa: E402

DIRECTIONS = (
    ("report -> image", "text", "image"),
    ("image -> report", "image", "text"),
    ("report -> reports", "text", "text"),
    ("image -> images", "image", "image"),
)


def _medpix_dir(data: Path) -> Path:
    return data if (data / "Descriptions.json").is_file() else data / "medpix2"


def _features(
    retriever: MedicalRetriever, records: list[MedicalRecord], cache: Path | None
) -> MedicalFeatures:
    ids = np.array([r.id for r in records])
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if z["ids"].shape == ids.shape and bool((z["ids"] == ids).all()):
                print(f"features from {cache}")
                return MedicalFeatures(z["image"], z["text"], z["has_image"], z["has_text"])
    feats = retriever.encode(records, show_progress=True)
    if cache is not None:
        np.savez(
            cache,
            ids=ids,
            image=feats.image,
            text=feats.text,
            has_image=feats.has_image,
            has_text=feats.has_text,
        )
    return feats


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
    parser.add_argument(
        "--features-cache", type=Path, default=None, help=".npz of encoder outputs, reused when the ids match"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    t0 = time.perf_counter()
    try:  # fail fast, before any work, when the encoders have not been exported
        securecmr.load_text_encoder(args.model_dir)
        securecmr.load_image_encoder(args.model_dir)
    except securecmr.errors.ModelNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    records, report = load_medpix(_medpix_dir(args.data))
    print(
        f"loaded {report.loaded} MedPix images, skipped {len(report.skipped)}; PHI removed from captions: "
        f"{dict(sorted(report.phi_removed.items()))}"
    )
    for s in report.skipped[:5]:
        print(f"  skipped {s.item}: {s.error}: {s.message}")
    split = np.array([r.attrs["split"] for r in records])
    retriever = MedicalRetriever(bits=args.bits, method=args.method, model_dir=args.model_dir)
    feats = _features(retriever, records, args.features_cache)
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
    caption = {r.id: r.text or "" for r in records}
    region = {r.id: r.attrs["region"] + "/" + r.attrs["modality"] for r in records}
    qi = test_recs[0]
    qt = next(r for r in test_recs if r.attrs["modality"] == "MR" and len(r.text or "") > 80)
    text_query = "CT images matching: obstructing mass with left upper lobe collapse"
    queries: list[tuple[str, dict[str, Any], str]] = [
        (f"report -> image: {text_query!r}", {"text": text_query}, "image"),
        (f"image -> images: test image {qi.id} [{region[qi.id]}]", {"image": qi.image}, "image"),
        (f"report -> reports: test caption of {qt.id} {(qt.text or '')[:60]!r}", {"text": qt.text}, "text"),
    ]

    def show(title: str, hits: list[tuple[str, float]], q: dict[str, Any], target: str) -> None:
        print(f"\n{title}")
        dist = hamming_distance(retriever.query_code(**q)[None, :], codes_db[target])[0]
        tied = int((dist == dist.min()).sum())
        if tied > 1:
            print(
                f"  ({tied} of {len(dist)} train items share the best distance {int(dist.min())}; ties keep "
                "database order)"
            )
        for rank, (hid, score) in enumerate(hits, 1):
            print(
                f"  {rank}. {hid:<22} score {score:.3f}  [{region.get(hid, '')}]  {caption.get(hid, '')[:70]}"
            )

    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "medpix.scmr"
        passphrase = os.environ.get("SECURECMR_PASSPHRASE") or secrets.token_urlsafe(24)
        with securecmr.Store.create(path, passphrase=passphrase) as store:
            coll = retriever.create_collection(store, "medpix")
            added = retriever.add(coll, train_recs, feats.subset(train))
            print(
                f"\nstored {added} train records (codes, labels, attributes; no text, no pixels) "
                "in a salted+encrypted collection"
            )
            for title, q, target in queries:
                hits = retriever.search(coll, target=target, k=args.k, **q)
                show(title, [(str(h.id), float(h.score)) for h in hits], q, target)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

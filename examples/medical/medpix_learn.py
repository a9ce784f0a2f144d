"""A MedPix collection that learns from its own reports and images (``Collection.fit``).

Loads MedPix 2.0 through the medical adapter (captions de-identified on the way in), adds the
train + dev records to a salted+encrypted collection with the *default* zero-shot hasher and
``keep_features=True``, measures MAP on the test records (report -> image and image -> report,
relevant = same body region, through ``collection.search``), calls ``collection.fit`` (by default
supervised on the ``region`` attribute; ``--method unsupervised`` uses the pairs only) and measures
again. The fit's own report (held-apart pairs, switch, re-coding rate) is printed in between.

    securecmr models export                # once: ONNX encoders into $SECURECMR_HOME/models
    .venv/bin/python examples/medical/medpix_learn.py --data ../shared/data [--limit 400]

``--limit`` caps the number of stored records (and queries at a quarter of it) for a quicker run.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "adapters"))

from securecmr_medical import MedicalRecord, load_medpix  # noqa: E402

import securecmr  # noqa: E402


def _medpix_dir(data: Path) -> Path:
    return data if (data / "Descriptions.json").is_file() else data / "medpix2"


def _item(r: MedicalRecord) -> securecmr.Item:
    return securecmr.Item(r.id, text=r.text, image=r.image, labels=r.labels, attrs=dict(r.attrs))


def _maps(
    coll: securecmr.Collection, queries: list[MedicalRecord], region_of: dict[str, str]
) -> dict[str, float]:
    n = len(coll)
    out = {}
    for name, kind, target in (("report -> image", "text", "image"), ("image -> report", "image", "text")):
        aps = []
        for q in queries:
            hits = coll.search(**{kind: getattr(q, kind)}, k=n, modality=target)
            rel = np.array([region_of[str(h.id)] == q.attrs["region"] for h in hits], dtype=bool)
            aps.append(float((np.cumsum(rel)[rel] / (np.flatnonzero(rel) + 1)).mean()) if rel.any() else 0.0)
        out[name] = float(np.mean(aps))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--method", default="supervised", choices=["supervised", "unsupervised"])
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    root = _medpix_dir(args.data)
    train = load_medpix(root, split="train")[0] + load_medpix(root, split="dev")[0]
    test = load_medpix(root, split="test")[0]
    stored = [r for r in train if r.text and r.image is not None]
    queries = [r for r in test if r.text and r.image is not None]
    if args.limit:
        stored = stored[: args.limit]
        queries = queries[: max(args.limit // 4, 10)]
    region_of = {r.id: str(r.attrs["region"]) for r in stored}
    with tempfile.TemporaryDirectory(prefix="medpix-learn-") as tmp:
        store = securecmr.Store.create(Path(tmp) / "store", passphrase=secrets.token_urlsafe(16))
        coll = store.create_collection("medpix", bits=64, keep_features=True)
        print(f"adding {len(stored)} MedPix records (zero-shot hasher, features kept sealed)...")
        for s in range(0, len(stored), 128):
            coll.add([_item(r) for r in stored[s : s + 128]])
        before = _maps(coll, queries, region_of)
        print(
            f"before fit ({len(queries)} held-apart test queries): "
            + ", ".join(f"{k} {v:.3f}" for k, v in before.items())
        )
        labels_from = "region" if args.method == "supervised" else None
        report = coll.fit(method=args.method, labels_from=labels_from)
        print(report)
        after = _maps(coll, queries, region_of)
        print("after fit: " + ", ".join(f"{k} {v:.3f}" for k, v in after.items()))
        print(f"hasher version {coll.hasher_version}; `coll.switch_back()` returns to the zero-shot codes")
        store.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("SECURECMR_NO_PROGRESS", "1")
    raise SystemExit(main())

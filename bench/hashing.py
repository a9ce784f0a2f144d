"""Hashing benchmark: fit time and encoding throughput of every method on Wikipedia features.

    .venv/bin/python bench/hashing.py [--data ../shared/data] [--json out.json] [--bits 16,32,64]

For each method and code length: the time to ``fit`` on the 2,173 Wikipedia training pairs (128-d
SIFT histograms, 10-d LDA topics, 10 classes), the encoding throughput (codes per second, best of
``--repeat`` runs) of ``encode_image`` / ``encode_text`` on all 2,866 items tiled to ``--encode-rows``
rows, the load time and file size, and the out-of-sample MAP of the same fit (so each row is a point
on the speed/quality trade-off; ``zero-shot`` has no image features in the text space here, so it
is fitted on and encodes text features, and reports text -> text MAP). One process, one thread
(torch and onnxruntime).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("cca", "cca-itq", "supervised", "unsupervised", "zero-shot")


def _best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _fmt(value: float | None) -> str:
    return f"{value:>10.4f}" if value is not None else f"{'-':>10}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data", help="the shared data folder (holds wikipedia/)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--bits", default="16,32,64")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--encode-rows", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import securecmr.hashing as hashing
    from securecmr.eval import load_wikipedia, mean_average_precision

    root = Path(args.data)
    data = load_wikipedia(root / "wikipedia" if (root / "wikipedia").is_dir() else root)
    train, query = data.train, data.query
    all_img = np.vstack([train.image, query.image])
    all_txt = np.vstack([train.text, query.text])
    reps = -(-args.encode_rows // len(all_img))
    enc_img = np.tile(all_img, (reps, 1))[: args.encode_rows]
    enc_txt = np.tile(all_txt, (reps, 1))[: args.encode_rows]
    bits_list = [int(b) for b in args.bits.split(",") if b.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    rows: list[dict[str, Any]] = []
    print(
        f"{'method':<13}{'bits':>5}{'fit s':>9}{'img codes/s':>13}{'txt codes/s':>13}"
        f"{'load ms':>9}{'file KiB':>10}{'MAP i->t':>10}{'MAP t->i':>10}"
    )
    with tempfile.TemporaryDirectory(prefix="scmr-hash-bench-") as tmp:
        for method in methods:
            for bits in bits_list:
                h = hashing.create(method, bits=bits)
                t = time.perf_counter()
                if method == "zero-shot":
                    h.set_params(dim=None).fit(None, train.text)
                    img, txt = enc_txt, enc_txt  # one shared space: text features stand in for both
                    q_img, db_img = query.text, train.text
                else:
                    h.fit(train.image, train.text, train.labels)
                    img, txt = enc_img, enc_txt
                    q_img, db_img = query.image, train.image
                fit_s = time.perf_counter() - t
                h.encode_image(img[:10])  # warm the ONNX session
                h.encode_text(txt[:10])
                img_s = _best(lambda h=h, img=img: h.encode_image(img), args.repeat)
                txt_s = _best(lambda h=h, txt=txt: h.encode_text(txt), args.repeat)
                path = h.save(Path(tmp) / f"{method}-{bits}.npz")
                load_s = _best(lambda path=path: hashing.load(path), args.repeat)
                qi, qt = h.encode_image(q_img), h.encode_text(query.text)
                di, dt = h.encode_image(db_img), h.encode_text(train.text)
                row = {
                    "method": method,
                    "bits": bits,
                    "fit_seconds": fit_s,
                    "encode_image_codes_per_s": len(img) / img_s,
                    "encode_text_codes_per_s": len(txt) / txt_s,
                    "load_ms": load_s * 1000,
                    "file_bytes": path.stat().st_size,
                    "map_i2t": mean_average_precision(qi, dt, query.labels, train.labels),
                    "map_t2i": mean_average_precision(qt, di, query.labels, train.labels),
                }
                if method == "zero-shot":  # no image features in the text space here: text -> text
                    row["map_t2t"] = row.pop("map_t2i")
                    row["map_i2t"] = None
                rows.append(row)
                print(
                    f"{method:<13}{bits:>5}{fit_s:>9.2f}{row['encode_image_codes_per_s']:>13,.0f}"
                    f"{row['encode_text_codes_per_s']:>13,.0f}{row['load_ms']:>9.1f}"
                    f"{row['file_bytes'] / 1024:>10.1f}{_fmt(row['map_i2t'])}{_fmt(row.get('map_t2i'))}"
                    + (
                        "  (zero-shot: text -> text MAP {:.4f})".format(row["map_t2t"])
                        if "map_t2t" in row
                        else ""
                    ),
                    flush=True,
                )
    out = {
        "dataset": "wikipedia",
        "n_train": len(train),
        "encode_rows": args.encode_rows,
        "protocol": "out-of-sample",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": rows,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

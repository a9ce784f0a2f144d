"""Encoder throughput and fidelity: torch fp32 vs ONNX Runtime fp32 vs ONNX Runtime int8.

One thread everywhere (torch.set_num_threads(1), ORT intra_op_num_threads=1). Throughput is model
inference on the same pre-tokenised / pre-processed batches (tokenisation and image decoding are the
same for every backend and are excluded); batch 1 and batch 32 run over the same inputs, so their
rates compare. Every batch is timed on its own, the backends taking turns, in each of ``--repeats``
rounds; a backend's time is the sum of each batch's best round, in wall time and in CPU time (process
CPU seconds, which other processes on a shared machine disturb much less). The speedup keys use wall
time, the ``*_cpu`` keys CPU time. Fidelity: cosine of each backend's output to torch fp32.

The torch fp32 baseline of the text tower is transformers' default attention (SDPA, fused); the
eager attention that the ONNX export traces is reported as ``torch_fp32_eager`` (slower).

    .venv/bin/python bench/encoders.py --data ../shared/data --json bench/results/encoders.json

Real inputs: MedPix 2.0 captions and images from ``--data``; falls back to the sample images and
captions that ship with scikit-image / scikit-learn when the folder is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def load_inputs(data: Path, n_text: int, n_image: int) -> tuple[list[str], list[Any], str]:
    desc = data / "medpix2" / "Descriptions.json"
    if desc.is_file():
        rows = json.loads(desc.read_text(encoding="utf-8"))
        texts = [r["Description"]["Caption"] for r in rows if (r["Description"].get("Caption") or "").strip()]
        images = [data / "medpix2" / "images" / f"{r['image']}.jpg" for r in rows]
        images = [p for p in images if p.is_file()]
        return texts[:n_text], images[:n_image], "medpix2"
    from securecmr.encoders._samples import SAMPLES, sample_images

    caps = list(SAMPLES.values())
    imgs = list(sample_images().values())
    texts = (caps * (n_text // len(caps) + 1))[:n_text]
    return texts, (imgs * (n_image // len(imgs) + 1))[:n_image], "samples"


def timed_interleaved(
    fns: dict[str, Callable[[Any], np.ndarray]], batches: list[Any], repeats: int
) -> dict[str, tuple[np.ndarray, float, float]]:
    """(outputs, wall seconds, CPU seconds) per backend: every batch is timed on its own in each of
    ``repeats`` rounds and a backend's time is the sum over batches of each batch's best round. The
    backends take turns batch by batch, so that load from other processes hits them alike, and short
    per-batch timings let the minimum find moments without that load."""
    for fn in fns.values():
        fn(batches[0])  # warm-up
    best = {name: [float("inf")] * len(batches) for name in fns}
    best_cpu = {name: [float("inf")] * len(batches) for name in fns}
    outs: dict[str, list[np.ndarray]] = {name: [np.empty(0)] * len(batches) for name in fns}
    for _ in range(repeats):
        for i, b in enumerate(batches):
            for name, fn in fns.items():
                c0, t0 = time.process_time(), time.perf_counter()
                outs[name][i] = fn(b)
                best[name][i] = min(best[name][i], time.perf_counter() - t0)
                best_cpu[name][i] = min(best_cpu[name][i], time.process_time() - c0)
    return {name: (np.concatenate(outs[name]), sum(best[name]), sum(best_cpu[name])) for name in fns}


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def text_batches(tokenizer_path: Path, texts: list[str], bs: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.no_padding()
    tok.enable_truncation(max_length=256)
    enc = sorted(tok.encode_batch(texts), key=lambda e: len(e.ids))
    out = []
    for s in range(0, len(enc), bs):
        chunk = enc[s : s + bs]
        w = max(len(e.ids) for e in chunk)
        ids = np.zeros((len(chunk), w), np.int64)
        mask = np.zeros((len(chunk), w), np.int64)
        for r, e in enumerate(chunk):
            ids[r, : len(e.ids)] = e.ids
            mask[r, : len(e.ids)] = 1
        out.append((ids, mask))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--models", type=Path, default=None,
                    help="exported models (default: the default model directory, $SECURECMR_HOME/models, "
                    "exported there with --int8 when missing or stale)")
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(REPO / "src"))
    from securecmr.encoders import export_models
    from securecmr.encoders._export import (
        TOKENIZER_FILE,
        embed_texts_torch,
        image_module,
        load_image_torch,
        load_text_torch,
        text_module,
    )
    from securecmr.encoders._imageio import preprocess, to_rgb
    from securecmr.encoders._manifest import resolve_dir
    from securecmr.encoders._session import make_session

    model_dir = resolve_dir(args.models)  # the directory users run (securecmr models export --int8)
    export_models(model_dir, int8=True)
    texts, images, source = load_inputs(args.data, args.texts, args.images)

    bert, tok_dir = load_text_torch()  # eager attention, as the ONNX export traces it
    tmod_eager = text_module(bert)
    tmod = text_module(load_text_torch("sdpa")[0])  # transformers' default: the faster torch baseline
    from securecmr.encoders._classes import embed_class_prompts

    classes = embed_class_prompts(lambda t: embed_texts_torch(bert, tok_dir, t))
    imod = image_module(load_image_torch(), classes)
    sessions = {
        "ort_fp32": (make_session(model_dir / "text.onnx", num_threads=1),
                     make_session(model_dir / "image.onnx", num_threads=1)),
        "ort_int8": (make_session(model_dir / "text.int8.onnx", num_threads=1),
                     make_session(model_dir / "image.int8.onnx", num_threads=1)),
    }
    pixels = np.stack([
        preprocess(to_rgb(p), image_size=224, resize=256, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        for p in images
    ])

    results: dict[str, Any] = {
        "source": source, "threads": 1, "n_texts": len(texts), "n_images": len(images),
        "loadavg_start": list(os.getloadavg()), "models": str(model_dir),
    }
    rows = []
    for tower in ("text", "image"):
        res: dict[str, Any] = {}
        for bs in (1, 32):
            n = len(texts) if tower == "text" else len(images)
            if tower == "text":
                batches: list[Any] = text_batches(tok_dir / TOKENIZER_FILE, texts[:n], bs)

                def torch_text(mod: Any) -> Callable[[Any], np.ndarray]:
                    def run(b: Any) -> np.ndarray:
                        with torch.no_grad():
                            ids, mask = (torch.from_numpy(x) for x in b)
                            return mod(ids, mask, torch.zeros_like(ids)).numpy()

                    return run

                run_torch = torch_text(tmod)
                extra: dict[str, Callable[[Any], np.ndarray]] = {"torch_fp32_eager": torch_text(tmod_eager)}

                def make_ort(sess: Any) -> Callable[[Any], np.ndarray]:
                    return lambda b: sess.run(["embedding"], {"input_ids": b[0], "attention_mask": b[1],
                                                              "token_type_ids": np.zeros_like(b[0])})[0]
            else:
                batches = [pixels[s : s + bs] for s in range(0, n, bs)]
                extra = {}

                def run_torch(b: Any) -> np.ndarray:
                    with torch.no_grad():
                        f, z = imod(torch.from_numpy(b))
                        return np.concatenate([z.numpy(), f.numpy()], axis=1)

                def make_ort(sess: Any) -> Callable[[Any], np.ndarray]:
                    names = ["zeroshot", "features"]
                    return lambda b: np.concatenate(sess.run(names, {"pixel_values": b}), 1)

            idx = 0 if tower == "text" else 1
            fns = {"torch_fp32": run_torch} | extra
            fns |= {name: make_ort(pair[idx]) for name, pair in sessions.items()}
            per = timed_interleaved(fns, batches, args.repeats)
            ref = per["torch_fp32"][0]
            for name, (out, t, t_cpu) in per.items():
                if tower == "image":
                    c = cos(out[:, :384], ref[:, :384])
                    cf = cos(out[:, 384:], ref[:, 384:])
                else:
                    c = cf = cos(out, ref)
                row = {"per_s": n / t, "per_cpu_s": n / t_cpu, "mean_cos": float(c.mean()),
                       "min_cos": float(c.min())}
                if tower == "image":
                    row |= {"features_mean_cos": float(cf.mean()), "features_min_cos": float(cf.min())}
                res[f"{name}_b{bs}"] = row
                rows.append((tower, bs, name, row))
        base = res["torch_fp32_b32"]["per_s"]
        res["int8_speedup"] = res["ort_int8_b32"]["per_s"] / base
        res["fp32_speedup"] = res["ort_fp32_b32"]["per_s"] / base
        res["int8_speedup_b1"] = res["ort_int8_b1"]["per_s"] / res["torch_fp32_b1"]["per_s"]
        res["int8_speedup_cpu"] = res["ort_int8_b32"]["per_cpu_s"] / res["torch_fp32_b32"]["per_cpu_s"]
        res["fp32_speedup_cpu"] = res["ort_fp32_b32"]["per_cpu_s"] / res["torch_fp32_b32"]["per_cpu_s"]
        res["int8_speedup_b1_cpu"] = res["ort_int8_b1"]["per_cpu_s"] / res["torch_fp32_b1"]["per_cpu_s"]
        if "torch_fp32_eager_b32" in res:
            res["int8_speedup_vs_eager"] = res["ort_int8_b32"]["per_s"] / res["torch_fp32_eager_b32"]["per_s"]
        res["int8_mean_cos"] = res["ort_int8_b32"]["mean_cos"]
        res["int8_min_cos"] = res["ort_int8_b32"]["min_cos"]
        res["fp32_min_cos"] = min(res["ort_fp32_b32"]["min_cos"], res["ort_fp32_b1"]["min_cos"])
        res["fp32_mean_cos"] = res["ort_fp32_b32"]["mean_cos"]
        results[tower] = res

    print(f"inputs: {source}, {len(texts)} texts, {len(images)} images; 1 thread; unit = {{texts,images}}/s")
    print(f"{'tower':6} {'batch':>5} {'backend':16} {'per_s':>8} {'per_cpu_s':>9} "
          f"{'mean_cos':>9} {'min_cos':>9}")
    for tower, bs, name, row in rows:
        print(f"{tower:6} {bs:5d} {name:16} {row['per_s']:8.1f} {row['per_cpu_s']:9.1f} "
              f"{row['mean_cos']:9.5f} {row['min_cos']:9.5f}")
    for tower in ("text", "image"):
        r = results[tower]
        print(f"{tower}: int8 speedup {r['int8_speedup']:.2f}x (CPU time {r['int8_speedup_cpu']:.2f}x; "
              f"b1 {r['int8_speedup_b1']:.2f}x), fp32 ORT {r['fp32_speedup']:.2f}x "
              f"(CPU time {r['fp32_speedup_cpu']:.2f}x), int8 mean cos {r['int8_mean_cos']:.4f}, "
              f"fp32 min cos {r['fp32_min_cos']:.6f}")
    results["loadavg_end"] = list(os.getloadavg())
    print(f"load average (1/5/15 min) at start {results['loadavg_start']}, end {results['loadavg_end']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

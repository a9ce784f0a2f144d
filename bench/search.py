"""Store search/open/ingest benchmark: the SDK vs raw faiss IndexBinaryFlat in the same run.

    .venv/bin/python bench/search.py [--n 1000000] [--json out.json]

Codes are generated (uniform random 64-bit codes); ``--data`` is accepted for uniformity but unused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--json", default=None)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--bits", type=int, default=64)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()

    import faiss

    import securecmr

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    nb = args.bits // 8
    codes = rng.integers(0, 256, (args.n, nb), dtype=np.uint8)
    queries = rng.integers(0, 256, (args.queries, nb), dtype=np.uint8)
    tmp = Path(tempfile.mkdtemp(prefix="scmr-bench-"))
    try:
        store = securecmr.Store.create(tmp / "s", passphrase="bench")
        coll = store.create_collection("c", bits=args.bits, protection="salted+encrypted")
        items = [securecmr.Item(i, codes={"image": codes[i]}) for i in range(args.n)]
        t = time.perf_counter()
        coll.add(items)
        ingest = args.n / (time.perf_counter() - t)
        del items
        store.close()

        t = time.perf_counter()
        store = securecmr.Store.open(tmp / "s", passphrase="bench")
        coll = store.collection("c")
        open_s = time.perf_counter() - t
        # baseline for open: read the same bytes and AES-GCM-decrypt them in one call
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        t = time.perf_counter()
        raw = b"".join(p.read_bytes() for p in (tmp / "s").iterdir() if p.is_file())
        t_read = time.perf_counter() - t
        aead = AESGCM(os.urandom(32))
        nonce = os.urandom(12)
        ct = aead.encrypt(nonce, raw, None)
        t = time.perf_counter()
        aead.decrypt(nonce, ct, None)
        base_open = t_read + (time.perf_counter() - t)

        index = faiss.IndexBinaryFlat(args.bits)
        index.add(codes)
        q1 = queries[:50]
        coll.search_batch(codes=queries, k=args.k)  # warm payload cache
        raw_single = _best(lambda: [index.search(q[None, :], args.k) for q in q1], 3)
        sdk_single = _best(lambda: [coll.search(code=q, k=args.k) for q in q1], 3)
        raw_batch = _best(lambda: index.search(queries, args.k), 3)
        sdk_batch = _best(lambda: coll.search_batch(codes=queries, k=args.k), 3)
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "n": args.n,
        "bits": args.bits,
        "k": args.k,
        "single_ratio": sdk_single / raw_single,
        "batch_ratio": sdk_batch / raw_batch,
        "single_ms_sdk": 1e3 * sdk_single / len(q1),
        "single_ms_faiss": 1e3 * raw_single / len(q1),
        "batch_s_sdk": sdk_batch,
        "batch_s_faiss": raw_batch,
        "open_seconds": open_s,
        "open_ratio": open_s / base_open,
        "open_baseline_seconds": base_open,
        "ingest_items_per_s": ingest,
    }
    for key, val in out.items():
        print(f"{key:24s} {val:.4g}" if isinstance(val, float) else f"{key:24s} {val}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

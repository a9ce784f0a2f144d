"""Store search/open/ingest benchmark: the SDK vs raw faiss IndexBinaryFlat in the same run.

    .venv/bin/python bench/search.py [--n 1000000] [--json out.json]

Codes are generated (uniform random 64-bit codes); ``--data`` is accepted for uniformity but unused.

``single_ratio_first_rep`` is the same ratio from the first repetition alone (each query's first
audited search: its result-id fingerprints not yet cached; noisier).

``write_ms_durable`` is the median latency of a single-item add (audited: its record fsynced
before it returns, then a checkpoint and the sealed anchor), ``write_ms_audit_not_synced`` the same
with the audit fsyncs switched off, ``durability_ms_per_write`` their difference. Searches are
audited with group commit (records on disk within 50 ms or 64 records), so ``single_ratio``
includes the audit path.

Latency ratios come from interleaved timings in one process: each single query (``--single``
of them) runs through raw faiss and through ``Collection.search`` back to back, ``--repeat`` times
with the order alternating, and each side keeps its best time per query, so load from other
processes on a shared machine hits both sides alike. Batches of ``--queries`` alternate the same way
(best of ``--repeat``). ``Collection.search`` is the audited operator path (one audit record per
query, a signed checkpoint every 100 records).
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


def _interleaved(raw, sdk, args: list, repeat: int, first: list | None = None) -> tuple[float, float]:  # type: ignore[no-untyped-def, type-arg]
    """Sum over ``args`` of the best time of ``raw(a)`` and of ``sdk(a)``, run back to back
    (``first`` receives the sums of the first repetition alone: caches not yet warm from it)."""
    best_raw = [float("inf")] * len(args)
    best_sdk = [float("inf")] * len(args)
    clock = time.perf_counter
    for rep in range(repeat):
        for i, a in enumerate(args):
            for side in (0, 1) if (rep + i) % 2 == 0 else (1, 0):
                t = clock()
                (raw if side == 0 else sdk)(a)
                dt = clock() - t
                best = best_raw if side == 0 else best_sdk
                best[i] = min(best[i], dt)
        if rep == 0 and first is not None:
            first += [sum(best_raw), sum(best_sdk)]
    return sum(best_raw), sum(best_sdk)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--json", default=None)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--bits", type=int, default=64)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--single", type=int, default=200, help="single queries timed")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--writes", type=int, default=30, help="single-item adds timed (durability cost)")
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
        q1 = list(queries[: args.single])
        cold = coll.search(code=q1[0], k=args.k)  # first query: reads its hits' payloads from disk
        coll.search_batch(codes=queries, k=args.k)  # warm payload cache
        assert [h.id for h in cold] == [h.id for h in coll.search(code=q1[0], k=args.k)]
        first: list[float] = []
        raw_single, sdk_single = _interleaved(
            lambda q: index.search(q[None, :], args.k),
            lambda q: coll.search(code=q, k=args.k),
            q1,
            args.repeat,
            first,
        )
        raw_batch, sdk_batch = _interleaved(
            lambda qs: index.search(qs, args.k),
            lambda qs: coll.search_batch(codes=qs, k=args.k),
            [queries],
            args.repeat,
        )
        # what durability costs per acknowledged write: single-item adds (one audit record fsynced,
        # a checkpoint and the sealed anchor per call) against the same adds with the audit
        # fsyncs off (SQLite's own commit is synchronous in both), interleaved
        audit = store.audit
        wrote = {True: [], False: []}  # type: ignore[var-annotated]
        for i in range(2 * args.writes):
            durable = i % 2 == 0
            audit.durable = durable
            item = securecmr.Item(f"w{i}", codes={"image": queries[i % len(queries)]})
            t = time.perf_counter()
            coll.add([item])
            wrote[durable].append(time.perf_counter() - t)
        audit.durable = True
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "n": args.n,
        "single_queries": len(q1),
        "repeat": args.repeat,
        "bits": args.bits,
        "k": args.k,
        "single_ratio": sdk_single / raw_single,
        "batch_ratio": sdk_batch / raw_batch,
        "single_ratio_first_rep": first[1] / first[0],
        "single_ms_sdk": 1e3 * sdk_single / len(q1),
        "single_us_overhead": 1e6 * (sdk_single - raw_single) / len(q1),
        "single_ms_faiss": 1e3 * raw_single / len(q1),
        "batch_s_sdk": sdk_batch,
        "batch_s_faiss": raw_batch,
        "open_seconds": open_s,
        "open_ratio": open_s / base_open,
        "open_baseline_seconds": base_open,
        "ingest_items_per_s": ingest,
        "write_ms_durable": 1e3 * float(np.median(wrote[True])),
        "write_ms_audit_not_synced": 1e3 * float(np.median(wrote[False])),
        "durability_ms_per_write": 1e3 * float(np.median(wrote[True]) - np.median(wrote[False])),
    }
    for key, val in out.items():
        print(f"{key:24s} {val:.4g}" if isinstance(val, float) else f"{key:24s} {val}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Milvus (Lite, and a live standalone server with ``--server``) vs the embedded faiss index on the
same collection, in one run.

    .venv/bin/python bench/milvus.py [--n 100000] [--server] [--json out.json]

Both stores get the same ``--n`` items (one random 64-bit code each, salted+encrypted) added in
batches of ``--batch``; the figures are the ingest rate (sealing, SQLite and the index together),
the reopen time, the latency of single searches through ``Collection.search`` (best of three
rounds over ``--single`` queries), of one ``search_batch`` of ``--queries`` codes, and of a
record-level-filtered search (a reader's session under the policy ``item.group in user.groups``
that lets ``--allowed`` of the items through; on Milvus the filter is pushed down as an
expression). The results of both backends are compared query by query. Codes are
generated; ``--data`` is accepted for uniformity but unused. faiss runs with one OpenMP thread.

``--server`` also starts a Milvus standalone server from the ``milvus`` package (in its own process
group, on a free loopback port, with a temporary base directory, stopped at the end), as the test
fixture does, and runs the same through it: keys ``server/ingest_items_per_s``,
``server/search_ratio``, ``server/filtered_ratio`` (vs faiss, same run) and
``server/identical_results`` (1 when every result equals faiss', else 0). ``--no-lite`` skips
Milvus Lite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# this file is called milvus.py: keep its folder off the path so `import milvus` finds the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def _best(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _run(
    root: Path,
    backend: str,
    codes: np.ndarray,
    queries: np.ndarray,
    args: argparse.Namespace,
    uri: str | None = None,
) -> dict:
    import securecmr

    n = codes.shape[0]
    store = securecmr.Store.create(root, passphrase="bench", index_backend=backend, milvus_uri=uri)
    groups = max(1, round(1 / args.allowed))  # the policy lets one group of items through
    coll = store.create_collection(
        "c", bits=args.bits, protection="salted+encrypted", policy="item.group in user.groups"
    )
    coll.add([securecmr.Item("warm-up", codes={"image": codes[0]}, attrs={"group": "g1"})])
    token = store.create_user("reader", attrs={"groups": ["g0"]})
    t = time.perf_counter()
    for i in range(0, n, args.batch):
        coll.add(
            [
                securecmr.Item(j, codes={"image": codes[j]}, attrs={"group": f"g{j % groups}"})
                for j in range(i, min(n, i + args.batch))
            ]
        )
    ingest = n / (time.perf_counter() - t)
    store.close()

    t = time.perf_counter()
    store = securecmr.Store.open(root, passphrase="bench")
    coll = store.collection("c")
    open_s = time.perf_counter() - t
    single = queries[: args.single]
    coll.search(code=single[0], k=args.k)
    t_single = _best(lambda: [coll.search(code=q, k=args.k) for q in single])
    t_batch = _best(lambda: coll.search_batch(codes=queries, k=args.k))
    results = [[(h.id, h.distance) for h in hits] for hits in coll.search_batch(codes=queries, k=args.k)]
    seen = store.session(token).collection("c")  # a reader whose policy lets 1/groups through
    fq = single[:20]
    seen.search(code=fq[0], k=args.k)
    t_filt = _best(lambda: [seen.search(code=q, k=args.k) for q in fq])
    filtered = [[(h.id, h.distance) for h in seen.search(code=q, k=args.k)] for q in fq]
    store.close()
    return {
        "ingest_items_per_s": ingest,
        "open_s": open_s,
        "search_ms": 1e3 * t_single / len(single),
        "batch_ms": 1e3 * t_batch,
        "filtered_search_ms": 1e3 * t_filt / len(fq),
        "results": results,
        "filtered": filtered,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--json", default=None)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--bits", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=10_000, help="items per add() call")
    ap.add_argument("--single", type=int, default=100, help="queries timed one by one")
    ap.add_argument("--queries", type=int, default=1000, help="codes in the batch search")
    ap.add_argument("--allowed", type=float, default=0.1, help="fraction of items a policy lets through")
    ap.add_argument("--server", action="store_true", help="also run on a local Milvus standalone server")
    ap.add_argument("--no-lite", action="store_true", help="skip Milvus Lite")
    args = ap.parse_args()

    import faiss

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    nb = args.bits // 8
    codes = rng.integers(0, 256, (args.n, nb), dtype=np.uint8)
    queries = rng.integers(0, 256, (args.queries, nb), dtype=np.uint8)
    tmp = Path(tempfile.mkdtemp(prefix="scmr-bench-milvus-"))
    got: dict[str, dict] = {}
    lite = 0
    try:
        got["faiss"] = _run(tmp / "faiss", "faiss", codes, queries, args)
        if not args.no_lite:
            got["milvus"] = _run(tmp / "milvus", "milvus", codes, queries, args)
            lite = sum(p.stat().st_size for p in (tmp / "milvus").iterdir() if p.name.startswith("milvus"))
        if args.server:
            from securecmr.index._milvus_server import LocalMilvusServer

            with LocalMilvusServer(tmp / "server-base") as server:
                got["server"] = _run(tmp / "server", "milvus", codes, queries, args, uri=server.uri)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    f = got["faiss"]
    out: dict[str, Any] = {
        "n": args.n,
        "bits": args.bits,
        "k": args.k,
        "faiss_search_ms": f["search_ms"],
        "faiss_batch_ms": f["batch_ms"],
        "faiss_filtered_search_ms": f["filtered_search_ms"],
        "faiss_ingest_items_per_s": f["ingest_items_per_s"],
        "faiss_open_s": f["open_s"],
        "batch_queries": args.queries,
        "allowed_fraction": args.allowed,
    }
    if "milvus" in got:
        m = got["milvus"]
        out.update(
            {
                "backend_milvus": "Milvus Lite (milvus-lite 2.5, BIN_FLAT, HAMMING), same process host",
                "milvus_search_ms": m["search_ms"],
                "search_ratio": m["search_ms"] / f["search_ms"],
                "milvus_batch_ms": m["batch_ms"],
                "batch_ratio": m["batch_ms"] / f["batch_ms"],
                "milvus_filtered_search_ms": m["filtered_search_ms"],
                "filtered_ratio": m["filtered_search_ms"] / f["filtered_search_ms"],
                "milvus_ingest_items_per_s": m["ingest_items_per_s"],
                "ingest_ratio": m["ingest_items_per_s"] / f["ingest_items_per_s"],
                "milvus_open_s": m["open_s"],
                "milvus_lite_file_mb": lite / 1e6,
                "identical_results": m["results"] == f["results"] and m["filtered"] == f["filtered"],
            }
        )
    if "server" in got:
        v = got["server"]
        out.update(
            {
                "server/backend": "Milvus standalone 2.3.5 (milvus package), BIN_FLAT, same machine",
                "server/ingest_items_per_s": v["ingest_items_per_s"],
                "server/ingest_ratio": v["ingest_items_per_s"] / f["ingest_items_per_s"],
                "server/search_ms": v["search_ms"],
                "server/search_ratio": v["search_ms"] / f["search_ms"],
                "server/batch_ms": v["batch_ms"],
                "server/batch_ratio": v["batch_ms"] / f["batch_ms"],
                "server/filtered_search_ms": v["filtered_search_ms"],
                "server/filtered_ratio": v["filtered_search_ms"] / f["filtered_search_ms"],
                "server/open_s": v["open_s"],
                "server/identical_results": int(
                    v["results"] == f["results"] and v["filtered"] == f["filtered"]
                ),
            }
        )
    for key, val in out.items():
        print(f"{key:30s} {val:.4g}" if isinstance(val, float) else f"{key:30s} {val}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Search latency under a record-level policy vs no policy, on a 1M-item collection, in one run.

The collection: ``--n`` random 64-bit codes (packed, exact faiss binary search) and one categorical
item attribute ``department`` with 1000 values. The policy ``item.department in user.departments``
admits 1 %, 10 % and 50 % of the items, depending on how many departments the user holds.

Two policy timings per fraction, both against the same unfiltered baseline (exact top-k over all items):

* ``cold`` (a user's first query, nothing cached): a 2048-row sample estimates the admitted fraction
  ``p``; if ``p >= 5 %`` the full index is searched for ``2k/p`` candidates and the policy is evaluated
  on those rows only; otherwise (or if too few pass) the allowed set is built and searched;
* ``cached`` (what ``Session.search`` does on later queries): the allowed set is cached per
  (policy, user attributes, collection version); a query searches the allowed codes only.

``ratio_at`` reports the cached ratio (policy latency / no-policy latency) and ``ratio_at_cold`` the
cold one. Every filtered result is checked against brute force over the allowed rows.

    .venv/bin/python bench/policy.py --json bench/results/policy.json

``--data`` is accepted like every bench script; this benchmark generates its data (codes and
attributes are synthetic; the cost of policy filtering does not depend on what the codes encode).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _timeit(fn: Callable[[int], Any], queries: int) -> float:
    fn(0)  # warm-up
    samples = []
    for i in range(queries):
        t0 = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="unused: synthetic")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--n", type=int, default=1_000_000, help="collection size")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import faiss

    from securecmr.access import AttributeTable, compile_policy
    from securecmr.access._filter import AllowedSetCache, binary_index, hamming_topk

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    n, k, n_dept = args.n, args.k, 1000
    codes = rng.integers(0, 256, size=(n, 8), dtype=np.uint8)
    dept = rng.integers(0, n_dept, size=n)
    queries = rng.integers(0, 256, size=(args.queries + 1, 8), dtype=np.uint8)
    table = AttributeTable()
    table.append_column_codes("department", dept, [f"d{i:03d}" for i in range(n_dept)])
    policy = compile_policy("item.department in user.departments")
    full = binary_index(codes)

    base_ms = _timeit(lambda i: hamming_topk(full, queries[i], k), args.queries)
    rows: list[dict[str, Any]] = []
    for frac in (0.01, 0.1, 0.5):
        user = {"departments": [f"d{i:03d}" for i in range(round(n_dept * frac))]}
        allowed = dept < round(n_dept * frac)

        def cold(i: int, user: dict[str, Any] = user) -> tuple[np.ndarray, np.ndarray]:
            return AllowedSetCache().search("c", 0, policy, user, table, codes, full, queries[i], k)

        cache = AllowedSetCache()

        def cached(i: int, user: dict[str, Any] = user, cache: AllowedSetCache = cache) -> Any:
            return cache.get("c", 0, policy, user, table, codes).search(queries[i], k)

        # correctness: every hit is allowed and the distances equal brute force over the allowed rows
        rows_ok = np.flatnonzero(allowed)
        for i in range(3):
            bd, _ = hamming_topk(binary_index(codes[rows_ok]), queries[i], k)
            for d, r in (cached(i), cold(i)):
                if not allowed[r].all() or not np.array_equal(np.sort(d), np.sort(bd)):
                    raise SystemExit(f"filtered search disagrees with brute force at {frac:.0%}")
        cold_ms = _timeit(cold, args.queries)
        cached_ms = _timeit(cached, args.queries)
        rows.append(
            {
                "fraction": frac,
                "admitted": int(allowed.sum()),
                "no_policy_ms": base_ms,
                "cold_ms": cold_ms,
                "cached_ms": cached_ms,
                "ratio_cold": cold_ms / base_ms,
                "ratio_cached": cached_ms / base_ms,
            }
        )

    result: dict[str, Any] = {
        "n": n,
        "k": k,
        "bits": 64,
        "queries": args.queries,
        "no_policy_ms": base_ms,
        "ratio_at": {str(r["fraction"]): round(r["ratio_cached"], 3) for r in rows},
        "ratio_at_cold": {str(r["fraction"]): round(r["ratio_cold"], 3) for r in rows},
        "rows": rows,
        "target": "ratio_at['0.1'] <= 1.5",
    }
    print(f"n={n} k={k} 64-bit codes, exact search, 1 thread; no policy: {base_ms:.2f} ms/query (median)")
    print(f"{'admitted':>9} {'cold ms':>9} {'cached ms':>10} {'ratio cold':>11} {'ratio cached':>13}")
    for r in rows:
        print(
            f"{r['fraction']:>9.0%} {r['cold_ms']:>9.2f} {r['cached_ms']:>10.2f} "
            f"{r['ratio_cold']:>11.2f} {r['ratio_cached']:>13.2f}"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()

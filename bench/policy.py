"""Policy-filtered search vs unfiltered search, both through reader sessions, on one store, in one run.

The path users run: ``Store.session(token).collection("c").search(code=..., k=10)`` on a real
salted+encrypted store of ``--n`` items (default 1M) with 64-bit codes and one item attribute
``group`` (100 values, uniform). An unfiltered reader (built-in ``reader`` role) is the baseline;
filtered readers hold a role with the policy ``item.group in user.groups`` and 1, 10 or 50 groups,
so the policy admits 1 %, 10 % and 50 % of the items. Every session call goes through the whole
gate (authenticate, validate, authorise, guard, engine, audit, observe).

The engine evaluates the policy once per (collection version, policy, user attributes) into an
allowed subset (a packed copy of a selective set's codes, a row mask over the index for a
permissive one) and searches only that. ``session_cold_ms_at/<p>`` is a user's first query (the
subset is built); ``session_ratio_at/<p>`` is the median filtered latency over the median
unfiltered latency, queries interleaved so a loaded machine slows both alike. Every filtered result
of the first ``--check`` queries is compared with brute force over the authorised items.

    .venv/bin/python bench/policy.py --json bench/results/policy.json

``--data`` is accepted like every bench script; this benchmark generates its data (random codes and
groups: the cost of filtering does not depend on what the codes encode).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FRACTIONS = (0.01, 0.1, 0.5)
GROUPS = 100
_POP = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _brute(codes: np.ndarray, allowed: np.ndarray, q: np.ndarray, k: int) -> list[tuple[int, int]]:
    d = _POP[np.bitwise_xor(codes, q)].sum(axis=1, dtype=np.int32)
    d = np.where(allowed, d, np.iinfo(np.int32).max)
    order = np.lexsort((np.arange(d.size), d))[:k]
    return [(int(i), int(d[i])) for i in order if allowed[i]]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="unused: synthetic")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--n", type=int, default=1_000_000, help="collection size")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--check", type=int, default=20, help="queries checked against brute force")
    ap.add_argument("--batch", type=int, default=100_000, help="items per add")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import faiss

    faiss.omp_set_num_threads(1)  # one search thread, as a store under a server's thread pool runs

    from securecmr import Item, Store
    from securecmr.access import Role
    from securecmr.monitor import MonitorRules

    rng = np.random.default_rng(args.seed)
    codes = rng.integers(0, 256, size=(args.n, 8), dtype=np.uint8)
    groups = rng.integers(0, GROUPS, size=args.n)
    out: dict[str, Any] = {"n": args.n, "k": args.k, "queries": args.queries, "bits": 64}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.create(Path(tmp) / "store", "bench-policy-passphrase")
        coll = store.create_collection("c", bits=64, protection="salted+encrypted")
        t0 = time.perf_counter()
        for a in range(0, args.n, args.batch):
            e = min(args.n, a + args.batch)
            coll.add(
                [Item(i, attrs={"group": int(groups[i])}, codes={"image": codes[i]}) for i in range(a, e)]
            )
        out["build_s"] = round(time.perf_counter() - t0, 1)
        # the monitor stays on (its rule guard sees every search); its rate rule would throttle a
        # bench that searches 800 times a minute, so the limits are raised for this run
        store.monitor.set_rules(MonitorRules(max_searches=10**9, max_coverage=1.0))
        store.add_role(Role.create("grouped", ["search"], policy="item.group in user.groups"))
        plain = store.session(store.create_user("plain", role="reader")).collection("c")
        users = {}
        for p in FRACTIONS:
            mine = list(range(round(p * GROUPS)))
            users[p] = (
                store.session(store.create_user(f"g{p}", role="grouped", attrs={"groups": mine})).collection(
                    "c"
                ),
                np.isin(groups, mine),
            )
        qs = rng.integers(0, 256, size=(args.queries + 1, 8), dtype=np.uint8)
        plain.search(code=qs[-1], k=args.k)  # warm-up: the hasher, the first meta reads
        for p, (sess, _) in users.items():
            t0 = time.perf_counter()
            sess.search(code=qs[-1], k=args.k)
            out[f"session_cold_ms_at/{p}"] = round((time.perf_counter() - t0) * 1e3, 2)
        times: dict[Any, list[float]] = {"plain": [], **{p: [] for p in FRACTIONS}}
        exact = True
        for i in range(args.queries):
            q = qs[i]
            t0 = time.perf_counter()
            plain.search(code=q, k=args.k)
            times["plain"].append(time.perf_counter() - t0)
            for p, (sess, allowed) in users.items():
                t0 = time.perf_counter()
                hits = sess.search(code=q, k=args.k)
                times[p].append(time.perf_counter() - t0)
                if i < args.check:
                    exact &= [(int(h.id), int(h.distance or 0)) for h in hits] == _brute(
                        codes, allowed, q, args.k
                    )
        base = statistics.median(times["plain"]) * 1e3
        out["session_unfiltered_ms"] = round(base, 3)
        for p in FRACTIONS:
            med = statistics.median(times[p]) * 1e3
            out[f"session_ms_at/{p}"] = round(med, 3)
            out[f"session_ratio_at/{p}"] = round(med / base, 3)
        out["exact_vs_brute_force"] = bool(exact)
        store.close()
    print(f"policy-filtered search through reader sessions, n={args.n}, k={args.k}, median of {args.queries}")
    print(f"{'selectivity':>12} {'filtered ms':>12} {'unfiltered ms':>14} {'ratio':>7} {'cold ms':>9}")
    for p in FRACTIONS:
        print(
            f"{p:>12.0%} {out[f'session_ms_at/{p}']:>12.3f} {base:>14.3f} "
            f"{out[f'session_ratio_at/{p}']:>7.3f} {out[f'session_cold_ms_at/{p}']:>9.1f}"
        )
    print(f"results equal brute force over the authorised items: {out['exact_vs_brute_force']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return out


if __name__ == "__main__":
    main()

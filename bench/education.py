"""Education benchmark: question -> slide retrieval on LPM slide text, float vs hashed, with and
without Rocchio relevance feedback.

    .venv/bin/python bench/education.py --data ../shared/data --json bench/results/education.json

Protocol (all random choices seeded by ``--seed``):

1. Slides: ``lpm/figure_annotations.csv`` (9,031 slides, 331 lectures, 11 courses); a lecture is
   ``course/series/lecture`` from ``Input.save_dir``, the slide text is ``ocr``. Slides with no text
   are dropped.
2. Held apart: in every lecture with at least ``--min-slides`` (5) slides of at least
   ``--min-words`` (8) words, ``--hold-frac`` (20 %, at least one) of those slides are drawn as
   *query slides* and removed from the index. Every other slide with text is indexed (short title
   slides and slides of small lectures stay in the index as distractors).
3. Queries: from each query slide, ``--query-words`` (12) consecutive words starting at a random
   offset (the whole text when shorter), standing in for a student's question about that slide's
   content. At most ``--max-queries`` queries are kept (a seeded subsample; all by default ~1.6k).
4. Relevant: the indexed slides of the query slide's lecture. Index order is shuffled so that ties
   in Hamming distance are not broken by lecture.
5. Metrics: MAP over the whole ranking, P@10, and recall@k = the fraction of queries with at least
   one relevant slide in the top k (k = 1, 5, 10).
6. Conditions: ``float`` (all-MiniLM-L6-v2 cosine); ``zero-shot`` (the store's default,
   data-independent 64-bit hasher); ``itq`` (zero-shot hasher fitted with PCA-ITQ on the indexed
   slides' vectors: trained, no labels); ``supervised`` (securecmr.hashing ``supervised``, trained on
   the indexed slides with their lecture as label; the query slides are never seen; 500 RBF anchors,
   fixed L2 1e-4, 50 L-BFGS iterations, to stay within the time budget).
7. Relevance feedback (simulated student): the top ``--judge`` (10) results of the first ranking are
   judged (relevant = same lecture) and the query is refined with Rocchio (alpha 1, beta 0.75,
   gamma 0.15) in the 384-d space, then hashed. Compared on the *residual collection* (the judged
   slides removed from both rankings, queries with no relevant slide left dropped), the standard
   fair comparison for feedback. ``prf``: blind pseudo-relevance feedback (top 3 assumed relevant,
   no judging) on the full ranking.
8. Store check: ``--store-check`` queries go through :class:`securecmr_education.EducationIndex` on a
   real salted+encrypted securecmr store with the course policy (as an admin-free operator), and
   their top-10 lists are compared with the in-memory Hamming ranking of the same hasher.

Encoding time dominates (the 2-core target: about 2-4 minutes for ~8.8k texts with the fp32 model).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "adapters"))

from securecmr_education import EducationIndex, LpmSlide, Rocchio, load_lpm  # noqa: E402

import securecmr  # noqa: E402
from securecmr import hashing  # noqa: E402
from securecmr.eval import hamming_distance  # noqa: E402

KS = (1, 5, 10)


def split(
    slides: list[LpmSlide], args: argparse.Namespace
) -> tuple[list[LpmSlide], list[LpmSlide], list[str]]:
    """(indexed slides, query slides, query texts)."""
    rng = np.random.default_rng(args.seed)
    by_lecture: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(slides):
        by_lecture[s.lecture].append(i)
    held: set[int] = set()
    for lecture in sorted(by_lecture):
        long = [i for i in by_lecture[lecture] if len(slides[i].text.split()) >= args.min_words]
        if len(long) < args.min_slides:
            continue
        n = max(1, round(args.hold_frac * len(long)))
        held.update(int(i) for i in rng.choice(long, size=n, replace=False))
    queries = sorted(held)
    if args.max_queries and len(queries) > args.max_queries:
        queries = sorted(int(i) for i in rng.choice(queries, size=args.max_queries, replace=False))
    texts = []
    for i in queries:
        words = slides[i].text.split()
        start = int(rng.integers(0, max(1, len(words) - args.query_words + 1)))
        texts.append(" ".join(words[start : start + args.query_words]))
    db = [s for i, s in enumerate(slides) if i not in held]
    order = rng.permutation(len(db))
    return [db[i] for i in order], [slides[i] for i in queries], texts


def metrics(dist: np.ndarray, rel: np.ndarray, exclude: np.ndarray | None = None) -> dict[str, float]:
    """MAP, P@10, recall@k from a (nq, ndb) distance matrix (smaller = better; stable ties)."""
    rel = rel.copy()
    if exclude is not None:
        dist = np.where(exclude, np.inf, dist)
        rel &= ~exclude
    keep = rel.any(axis=1)
    dist, rel = dist[keep], rel[keep]
    order = np.argsort(dist, axis=1, kind="stable")
    hits = np.take_along_axis(rel, order, axis=1).astype(np.float64)
    cum = np.cumsum(hits, axis=1)
    ranks = np.arange(1, hits.shape[1] + 1)
    ap = (cum / ranks * hits).sum(axis=1) / hits.sum(axis=1)
    out = {"map": float(ap.mean()), "p_at_10": float(hits[:, :10].mean())}
    for k in KS:
        out[f"recall_at_{k}"] = float((hits[:, :k].sum(axis=1) > 0).mean())
    out["queries"] = int(keep.sum())
    return out


def cosine_dist(q: np.ndarray, d: np.ndarray) -> np.ndarray:
    return np.asarray(-(q @ d.T))


class Condition:
    """A ranking function: float cosine, or a hasher's codes + Hamming distance."""

    def __init__(self, name: str, db: np.ndarray, hasher: Any = None) -> None:
        self.name, self.hasher = name, hasher
        self.db = db if hasher is None else hasher.encode_text(db)

    def dist(self, q: np.ndarray) -> np.ndarray:
        if self.hasher is None:
            return cosine_dist(q, self.db)
        return hamming_distance(self.hasher.encode_text(q), self.db).astype(np.float64)


def rocchio_queries(
    q: np.ndarray, db: np.ndarray, judged: np.ndarray, rel: np.ndarray, rocchio: Rocchio
) -> np.ndarray:
    """Refine each query with its judged results (relevant / not, by ``rel``)."""
    out = np.empty_like(q)
    for i in range(len(q)):
        j = judged[i]
        good, bad = j[rel[i, j]], j[~rel[i, j]]
        out[i] = rocchio.refine(q[i], db[good], db[bad])
    return out


def store_check(
    cond: Condition,
    db_slides: list[LpmSlide],
    db_vecs: np.ndarray,
    queries: list[str],
    q_vecs: np.ndarray,
    n: int,
    encoder: Any,
) -> dict[str, Any]:
    """Run ``n`` queries through EducationIndex on a real store; compare top-10 with the in-memory ranking."""
    cache = {s.text: v for s, v in zip(db_slides, db_vecs, strict=True)}
    cache.update({t: v for t, v in zip(queries, q_vecs, strict=True)})

    class Cached:  # the bench already encoded every text; the store path gets the same vectors
        dim = 384

        def encode(self, texts: list[str], **_: Any) -> np.ndarray:
            return np.stack([cache[t] if t in cache else encoder.encode([t])[0] for t in texts])

    with tempfile.TemporaryDirectory() as tmp:
        store = securecmr.Store.create(Path(tmp) / "store", passphrase="bench passphrase")
        coll = store.create_collection(
            "lpm", bits=cond.hasher.bits, hasher=cond.hasher, policy="item.course in user.courses"
        )
        index = EducationIndex(coll, text_encoder=Cached(), render_px=None, batch_items=1024)
        t0 = time.perf_counter()
        index.add_slide_texts(db_slides, show_progress=False)
        add_s = time.perf_counter() - t0
        courses = sorted({s.course for s in db_slides})
        user = store.session(store.create_user("bench", role="reader", attrs={"courses": courses}))
        guarded = EducationIndex(user.collection("lpm"), text_encoder=Cached(), render_px=None)
        pos = {f"{s.lecture}#page={s.slide}": i for i, s in enumerate(db_slides)}
        same, lat = 0, []
        d = cond.dist(q_vecs[:n])
        for i in range(n):
            t0 = time.perf_counter()
            hits = guarded.search(text=queries[i], k=10)
            lat.append(time.perf_counter() - t0)
            got = sorted(d[i, pos[str(h.id)]] for h in hits)
            same += int(np.allclose(got, np.sort(d[i])[:10]))
        store.close()
    return {
        "hasher": cond.name,
        "queries": n,
        "top10_distances_identical": same / n,
        "add_s": round(add_s, 2),
        "search_ms_median": round(1000 * float(np.median(lat)), 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help="the data folder (with lpm/) or the lpm folder itself",
    )
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--models", type=Path, default=None, help="model dir (default $SECURECMR_HOME/models)")
    p.add_argument("--int8", action="store_true", help="int8 text encoder (default fp32)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bits", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-words", type=int, default=8)
    p.add_argument("--min-slides", type=int, default=5)
    p.add_argument("--hold-frac", type=float, default=0.2)
    p.add_argument("--query-words", type=int, default=12)
    p.add_argument("--max-queries", type=int, default=0, help="subsample the queries (0 = all)")
    p.add_argument("--judge", type=int, default=10, help="results judged by the simulated student")
    p.add_argument(
        "--store-check", type=int, default=200, help="queries run through the real store (0 = skip)"
    )
    p.add_argument(
        "--no-supervised", dest="supervised", action="store_false", help="skip the supervised hasher"
    )
    p.add_argument("--anchors", type=int, default=500, help="RBF anchors of the supervised hasher")
    p.add_argument("--reg", type=float, default=1e-4, help="L2 strength of the supervised hasher (fixed)")
    p.add_argument("--max-iter", type=int, default=50, help="L-BFGS iterations of the supervised hasher")
    p.add_argument("--cache", type=Path, default=None, help="folder to keep / reuse the embeddings")
    args = p.parse_args()

    lpm = args.data / "lpm" if (args.data / "lpm").is_dir() else args.data
    slides = load_lpm(lpm)
    db, qs, qtexts = split(slides, args)
    lectures = sorted({s.lecture for s in slides})
    lid = {x: i for i, x in enumerate(lectures)}
    db_lab = np.array([lid[s.lecture] for s in db])
    q_lab = np.array([lid[s.lecture] for s in qs])
    rel = q_lab[:, None] == db_lab[None, :]
    print(
        f"slides with text {len(slides)}, lectures {len(lectures)}, "
        f"courses {len({s.course for s in slides})}; "
        f"indexed {len(db)}, queries {len(qs)}"
    )

    enc = securecmr.load_text_encoder(args.models, int8=args.int8, num_threads=args.threads)
    cache = None
    if args.cache is not None:  # embeddings of this exact protocol, reused by reruns
        key = hashlib.sha256(json.dumps([[s.text for s in db], qtexts, args.int8]).encode()).hexdigest()[:16]
        cache = args.cache / f"education-{key}.npz"
    t0 = time.perf_counter()
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            db_vecs, q_vecs = z["db"], z["q"]
        print(f"embeddings from {cache}")
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*exceed \d+ tokens", category=UserWarning)
            db_vecs = enc.encode([s.text for s in db], batch_size=64)
            q_vecs = enc.encode(qtexts, batch_size=64)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, db=db_vecs, q=q_vecs)
    encode_s = time.perf_counter() - t0
    print(f"encoded {len(db) + len(qs)} texts in {encode_s:.1f} s (slides over 256 tokens are truncated)")

    timings: dict[str, float] = {"encode_s": round(encode_s, 1)}
    conds = [Condition("float", db_vecs)]
    zs = hashing.create("zero-shot", bits=args.bits, dim=384, seed=0).fit()
    conds.append(Condition(f"zero-shot-{args.bits}", db_vecs, zs))
    t0 = time.perf_counter()
    itq = hashing.create("zero-shot", bits=args.bits, dim=384, seed=0).fit(None, db_vecs)
    timings["fit_itq_s"] = round(time.perf_counter() - t0, 1)
    conds.append(Condition(f"itq-{args.bits}", db_vecs, itq))
    if args.supervised:
        t0 = time.perf_counter()
        sup = hashing.create(
            "supervised", bits=args.bits, anchors=args.anchors, reg=args.reg, max_iter=args.max_iter, seed=0
        ).fit(db_vecs, db_vecs, db_lab)
        timings["fit_supervised_s"] = round(time.perf_counter() - t0, 1)
        conds.append(Condition(f"supervised-{args.bits}", db_vecs, sup))

    rocchio = Rocchio()
    results: dict[str, Any] = {}
    for c in conds:
        d0 = c.dist(q_vecs)
        first = metrics(d0, rel)
        judged = np.argsort(d0, axis=1, kind="stable")[:, : args.judge]
        excl = np.zeros_like(rel)
        np.put_along_axis(excl, judged, True, axis=1)
        base_res = metrics(d0, rel, excl)
        refined = rocchio_queries(q_vecs, db_vecs, judged, rel, rocchio)
        fb_res = metrics(c.dist(refined), rel, excl)
        top3 = np.argsort(d0, axis=1, kind="stable")[:, :3]
        prf_q = np.stack([rocchio.refine(q_vecs[i], db_vecs[top3[i]]) for i in range(len(q_vecs))])
        prf = metrics(c.dist(prf_q), rel)
        results[c.name] = {
            "first": first,
            "residual_before": base_res,
            "residual_rocchio": fb_res,
            "prf": prf,
        }

    check = None
    if args.store_check:
        n = min(args.store_check, len(qs))
        check = store_check(conds[1], db, db_vecs, qtexts, q_vecs, n, enc)

    print(
        f"\nquestion -> slide (relevant = same lecture), {len(qs)} queries, {len(db)} slides, "
        f"{args.bits} bits"
    )
    head = f"{'condition':<16}{'MAP':>7}{'P@10':>7}{'R@1':>7}{'R@5':>7}{'R@10':>7}"
    print(head + f"{'| resid MAP':>12}{'+Rocchio':>10}{'resid R@10':>12}{'+Rocchio':>10}{'| PRF MAP':>10}")
    for name, r in results.items():
        f, b, fb = r["first"], r["residual_before"], r["residual_rocchio"]
        print(
            f"{name:<16}{f['map']:7.3f}{f['p_at_10']:7.3f}{f['recall_at_1']:7.3f}{f['recall_at_5']:7.3f}"
            f"{f['recall_at_10']:7.3f}{b['map']:12.3f}{fb['map']:10.3f}{b['recall_at_10']:12.3f}"
            f"{fb['recall_at_10']:10.3f}{r['prf']['map']:10.3f}"
        )
    if check:
        print(
            f"store check ({check['hasher']}, {check['queries']} queries through EducationIndex on a "
            f"salted+encrypted store with the course policy): top-10 distances identical for "
            f"{check['top10_distances_identical']:.1%}; median search {check['search_ms_median']} ms"
        )
    print("timings:", timings)

    out = {
        "protocol": {
            k: getattr(args, k)
            for k in (
                "seed",
                "min_words",
                "min_slides",
                "hold_frac",
                "query_words",
                "max_queries",
                "judge",
                "bits",
                "int8",
            )
        },
        "slides": len(slides),
        "lectures": len(lectures),
        "indexed": len(db),
        "queries": len(qs),
        "encoder": "all-MiniLM-L6-v2 " + ("int8" if args.int8 else "fp32"),
        "results": results,
        "map": {k: v["first"]["map"] for k, v in results.items()},
        "recall_at_10": {k: v["first"]["recall_at_10"] for k, v in results.items()},
        "rocchio_residual_map_gain": {
            k: v["residual_rocchio"]["map"] - v["residual_before"]["map"] for k, v in results.items()
        },
        "store_check": check,
        "timings": timings,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

"""Traffic simulator: benign clinicians and six kinds of attacker, on an injectable clock.

Principals produce *planned* queries (time, packed query code, k). :func:`run_plan` sends
them through any search function -- a brute-force :class:`HammingIndex` over real codes, or
a real store collection -- and turns the answers into :class:`QueryEvent` objects, so days
of traffic replay in seconds. Everything is driven by one seed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import PermissionDeniedError, ShapeError
from ._events import QueryEvent, keyed_id
from ._features import popcount_u8

__all__ = [
    "ATTACKS",
    "HammingIndex",
    "PlannedQuery",
    "TrafficSimulator",
    "hash_vectors",
    "run_plan",
    "synthetic_collection",
]

ATTACKS: tuple[str, ...] = (
    "scraper",
    "enumerator",
    "membership_prober",
    "inversion_prober",
    "credential_misuse",
    "low_and_slow",
)

DAY = 86400.0
EPOCH = 1_767_225_600.0  # 2026-01-01 00:00 UTC, a Thursday; day 4 is the first Monday


@dataclass(frozen=True)
class PlannedQuery:
    principal: str
    kind: str  # "benign" or an attack name
    time: float
    code: bytes
    k: int


def hash_vectors(vectors: np.ndarray, bits: int = 64, *, seed: int = 0) -> np.ndarray:
    """Sign of a seeded Gaussian projection of centred vectors -> packed codes (n, bits // 8)."""
    X = np.asarray(vectors, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or bits % 8:
        raise ShapeError("need a non-empty (n, d) matrix and bits divisible by 8")
    W = np.random.default_rng(seed).standard_normal((X.shape[1], bits))
    return np.packbits((X - X.mean(axis=0)) @ W > 0, axis=1)


def synthetic_collection(
    n_items: int = 2000, *, n_topics: int = 20, dim: int = 384, bits: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Topic-clustered Gaussian embeddings hashed to packed codes: ``(codes, topics)`` (for tests)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_topics, dim))
    topics = rng.integers(0, n_topics, n_items)
    X = centers[topics] + 1.2 * rng.standard_normal((n_items, dim))
    return hash_vectors(X, bits, seed=seed), topics


class HammingIndex:
    """Brute-force Hamming search over packed codes, returning keyed ids (the monitor's view)."""

    def __init__(self, codes: np.ndarray, *, key: bytes = b"simulator") -> None:
        self.codes = np.ascontiguousarray(codes, dtype=np.uint8)
        self.bits = self.codes.shape[1] * 8
        self.ids = [keyed_id(key, i) for i in range(len(self.codes))]

    def __len__(self) -> int:
        return len(self.codes)

    def search(self, code: bytes, k: int) -> tuple[list[str], list[float]]:
        q = np.frombuffer(code, dtype=np.uint8)
        d = popcount_u8(np.bitwise_xor(self.codes, q)).sum(axis=1, dtype=np.int64)
        k = min(k, len(d))
        top = np.argpartition(d, k - 1)[:k]
        top = top[np.lexsort((top, d[top]))]
        return [self.ids[i] for i in top], [1.0 - float(d[i]) / self.bits for i in top]


def run_plan(
    plan: Sequence[PlannedQuery],
    search: Callable[[PlannedQuery], tuple[list[str], list[float]]],
    *,
    collection: str = "sim",
    collection_size: int,
    bits: int,
    observe: Callable[[QueryEvent], object] | None = None,
) -> list[QueryEvent]:
    """Run planned queries in time order; ``observe`` sees each event as it happens."""
    events = []
    for q in sorted(plan, key=lambda q: q.time):
        denied = False
        try:
            ids, scores = search(q)
        except PermissionDeniedError:
            ids, scores, denied = [], [], True
        ev = QueryEvent(
            principal=q.principal,
            time=q.time,
            collection=collection,
            k=q.k,
            code=q.code,
            result_ids=tuple(ids),
            top1=scores[0] if scores else None,
            top2=scores[1] if len(scores) > 1 else None,
            denied=denied,
            collection_size=collection_size,
            bits=bits,
        )
        events.append(ev)
        if observe is not None:
            observe(ev)
    return events


class TrafficSimulator:
    """Plans benign and attack traffic over a collection of packed ``codes`` with ``topics``.

    ``topics[i]`` is item i's topic (e.g. body region or a k-means cluster); benign users
    stick to one to three topics, work bursty sessions in their own working hours on
    weekdays, and re-run or refine some queries.
    """

    def __init__(self, codes: np.ndarray, topics: Sequence[int] | np.ndarray, *, seed: int = 0) -> None:
        self.codes = np.ascontiguousarray(codes, dtype=np.uint8)
        self.bits = self.codes.shape[1] * 8
        self.topics = np.asarray(topics)
        if len(self.topics) != len(self.codes):
            raise ShapeError("one topic per code")
        self.topic_ids = np.unique(self.topics)
        self.seed = seed

    def _rng(self, *parts: object) -> np.random.Generator:
        digest = hmac.new(str(self.seed).encode(), repr(parts).encode(), "sha256").digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def _flip(self, rng: np.random.Generator, code: np.ndarray, nbits: int) -> bytes:
        bits = np.unpackbits(code)
        idx = rng.choice(self.bits, size=nbits, replace=False)
        bits[idx] ^= 1
        return np.packbits(bits).tobytes()

    # ---------------------------------------------------------------- benign
    def user_hours(self, name: str) -> tuple[float, float]:
        rng = self._rng("hours", name)
        start = float(rng.uniform(6.5, 10.0))
        return start, start + float(rng.uniform(7.5, 9.5))

    def benign(
        self, name: str, *, days: tuple[int, int], topics: Sequence[int] | None = None
    ) -> list[PlannedQuery]:
        """A clinician's searches over days ``[days[0], days[1])`` (day 0 = EPOCH)."""
        rng = self._rng("benign", name, days)
        urng = self._rng("user", name)
        if topics is None:
            topics = urng.choice(self.topic_ids, size=int(urng.integers(1, 4)), replace=False).tolist()
        pool = np.flatnonzero(np.isin(self.topics, topics))
        favourites = urng.choice(pool, size=min(len(pool), 40), replace=False)
        h0, h1 = self.user_hours(name)
        activity = float(urng.uniform(1.5, 4.5))  # sessions per day
        out: list[PlannedQuery] = []
        recent: list[bytes] = []
        for day in range(*days):
            if (day + 3) % 7 in (5, 6) and rng.random() < 0.9:  # weekends, mostly off
                continue
            for _ in range(int(rng.poisson(activity))):
                on_call = rng.random() < 0.03
                hour = float(rng.uniform(0, 24)) if on_call else float(rng.uniform(h0, h1 - 0.5))
                t = EPOCH + day * DAY + hour * 3600.0
                for _ in range(1 + int(rng.geometric(1 / 10))):
                    r = rng.random()
                    if recent and r < 0.08:
                        code = recent[int(rng.integers(len(recent)))]  # re-run
                    elif recent and r < 0.2:
                        code = self._flip(rng, np.frombuffer(recent[-1], np.uint8), int(rng.integers(2, 6)))
                    else:
                        item = int(rng.choice(favourites)) if rng.random() < 0.5 else int(rng.choice(pool))
                        code = self._flip(rng, self.codes[item], int(rng.integers(6, 15)))
                    recent = ([*recent, code])[-20:]
                    k = int(rng.choice([5, 10, 10, 10, 10, 20, 20, 50]))
                    out.append(PlannedQuery(name, "benign", t, code, k))
                    t += float(rng.lognormal(np.log(45.0), 0.8))
        return out

    # ---------------------------------------------------------------- attacks
    def attack(
        self, kind: str, name: str, *, start_day: int, n_queries: int = 400, victim_topics: Sequence[int] = ()
    ) -> list[PlannedQuery]:
        """``n_queries`` planned searches of attack ``kind`` (see :data:`ATTACKS`)."""
        rng = self._rng("attack", kind, name)
        n_items = len(self.codes)
        t = EPOCH + start_day * DAY + float(rng.uniform(0, 24)) * 3600.0
        out: list[PlannedQuery] = []
        if kind == "scraper":
            order = rng.permutation(n_items)
            for i in range(n_queries):
                code = self._flip(rng, self.codes[order[i % n_items]], int(rng.integers(2, 8)))
                out.append(PlannedQuery(name, kind, t, code, int(rng.choice([50, 100]))))
                t += float(rng.uniform(2.0, 8.0))
        elif kind == "enumerator":
            for _ in range(n_queries):
                code = rng.integers(0, 256, size=self.bits // 8, dtype=np.uint8).tobytes()
                out.append(PlannedQuery(name, kind, t, code, int(rng.choice([10, 20, 50]))))
                t += float(rng.uniform(1.0, 10.0))
        elif kind == "membership_prober":
            targets = rng.choice(n_items, size=6, replace=False)
            t = EPOCH + start_day * DAY + 10.5 * 3600.0
            for _ in range(n_queries):
                code = self._flip(rng, self.codes[int(rng.choice(targets))], int(rng.integers(0, 4)))
                out.append(PlannedQuery(name, kind, t, code, int(rng.choice([1, 3, 5]))))
                t += float(rng.lognormal(np.log(40.0), 0.6))
        elif kind == "inversion_prober":
            t = EPOCH + start_day * DAY + 10.0 * 3600.0
            cur = rng.integers(0, 256, size=self.bits // 8, dtype=np.uint8)
            for i in range(n_queries):
                if i % 25 == 0:
                    cur = rng.integers(0, 256, size=self.bits // 8, dtype=np.uint8)
                cur = np.frombuffer(self._flip(rng, cur, int(rng.integers(1, 5))), np.uint8)
                out.append(PlannedQuery(name, kind, t, cur.tobytes(), 10))
                t += float(rng.lognormal(np.log(30.0), 0.6))
        elif kind == "credential_misuse":
            others = np.flatnonzero(~np.isin(self.topics, list(victim_topics)))
            pool = others if others.size else np.arange(n_items)
            t = EPOCH + start_day * DAY + float(rng.uniform(1.0, 3.5)) * 3600.0
            for _ in range(n_queries):
                code = self._flip(rng, self.codes[int(rng.choice(pool))], int(rng.integers(4, 12)))
                out.append(PlannedQuery(name, kind, t, code, int(rng.choice([20, 50]))))
                t += float(rng.lognormal(np.log(20.0), 0.5))
        elif kind == "low_and_slow":
            order = rng.permutation(n_items)
            day = start_day
            h = 9.0
            for i in range(n_queries):
                code = self._flip(rng, self.codes[order[i % n_items]], int(rng.integers(6, 15)))
                out.append(PlannedQuery(name, kind, EPOCH + day * DAY + h * 3600.0, code, 10))
                h += float(rng.lognormal(np.log(600.0), 0.5)) / 3600.0
                if h > 17.0:
                    day += 1 + int((day + 4) % 7 in (5, 6))
                    h = 9.0 + float(rng.uniform(0, 0.5))
        else:
            raise ShapeError(f"unknown attack {kind!r}; choose one of {', '.join(ATTACKS)}")
        return out

"""Per-principal sliding-window features over the query log.

:class:`PrincipalTracker` consumes one principal's events in time order and, every ``stride``
events once it has ``min_events``, emits a feature vector over its last ``window`` events.
The same tracker runs offline (fitting, reports) and online (the guard), so both see
exactly the same numbers. Costs are bounded: a window, a ring of earlier query codes and a
set of keyed result ids per principal.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import deque
from collections.abc import Iterable, Sequence
from statistics import NormalDist

import numpy as np

from ._events import QueryEvent

__all__ = ["FEATURE_NAMES", "PrincipalTracker", "hour_profile", "principal_features"]

FEATURE_NAMES: tuple[str, ...] = (
    "log_rate",  # log1p(queries per hour over the window)
    "log_gap_median",  # log1p(median inter-arrival, seconds)
    "gap_cv",  # inter-arrival coefficient of variation (burstiness)
    "coverage",  # distinct result ids in the window / collection size
    "distinct_ratio",  # distinct result ids / result ids returned
    "novelty",  # share of the window's distinct results never returned to this principal before
    "cumulative_coverage",  # distinct ids ever returned to this principal / collection size
    "overlap",  # mean Jaccard overlap of consecutive result sets
    "dispersion",  # mean pairwise Hamming distance of the window's query codes / bits
    "prada_w",  # Shapiro-Wilk W of each query's min distance to earlier queries (PRADA)
    "near_duplicates",  # share of queries within a few bits of an earlier query (SEAT)
    "top1_mean",  # mean best score
    "top1_std",
    "margin_mean",  # mean top-1 minus top-2 score
    "log_k_mean",  # log of mean k requested
    "denial_rate",
    "off_hours",  # share of queries at hours this principal rarely works
)

_HOURS = 24


def hour_profile(times: Iterable[float], *, smoothing: float = 0.5) -> np.ndarray:
    """Share of activity per UTC hour (24 values summing to 1), lightly smoothed."""
    counts = np.full(_HOURS, smoothing / _HOURS, dtype=np.float64)
    for t in times:
        counts[int(t // 3600) % _HOURS] += 1.0
    return counts / counts.sum()


_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount_u8(x: np.ndarray) -> np.ndarray:
    """Set bits per uint8 element (``np.bitwise_count`` on numpy >= 2, a lookup table before)."""
    fn = getattr(np, "bitwise_count", None)
    return fn(x) if fn is not None else _POP8[x]


def _popcount_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed code rows a (m, nb) and b (n, nb) -> (m, n)."""
    x = np.bitwise_xor(a[:, None, :], b[None, :, :])
    return popcount_u8(x).sum(axis=2, dtype=np.int64)


class PrincipalTracker:
    """Rolling state for one principal; :meth:`push` returns a feature row every ``stride`` events."""

    def __init__(
        self,
        *,
        window: int = 48,
        stride: int = 16,
        min_events: int = 24,
        history: int = 256,
        near_duplicate_bits: int | None = None,
        profile: np.ndarray | None = None,
        off_hours_share: float = 0.02,
    ) -> None:
        self.window = window
        self.stride = stride
        self.min_events = min_events
        self.near_duplicate_bits = near_duplicate_bits
        self.profile = profile
        self.off_hours_share = off_hours_share
        self.count = 0
        self._events: deque[QueryEvent] = deque(maxlen=window)
        self._mind: deque[float] = deque(maxlen=window)  # min distance of each windowed query
        self.history = history
        self._ring: np.ndarray | None = None  # the last ``history`` query codes
        self._seq = np.full(history, -1, dtype=np.int64)  # push number of each ring slot
        self._pending = 0
        self._seen: set[str] = set()
        self._seen_before_window: deque[frozenset[str]] = deque(maxlen=window)

    def __repr__(self) -> str:
        return f"PrincipalTracker(events={self.count}, window={self.window}, stride={self.stride})"

    def push(self, event: QueryEvent) -> np.ndarray | None:
        """Add one event; every ``stride`` events (after ``min_events``) return the window's features."""
        code = np.frombuffer(event.code, dtype=np.uint8)
        if self._ring is None or self._ring.shape[1] != code.size:
            self._settle()  # codes of another width are not comparable: start a new ring
            self._ring = np.zeros((self.history, code.size), dtype=np.uint8)
            self._seq.fill(-1)
        slot = self.count % self.history
        self._ring[slot] = code
        self._seq[slot] = self.count
        self._pending += 1
        new_ids = frozenset(r for r in event.result_ids if r not in self._seen)
        self._seen.update(new_ids)
        self._seen_before_window.append(new_ids)
        self._events.append(event)
        self.count += 1
        if self.count >= self.min_events and self.count % self.stride == 0:
            return self.features()
        return None

    def _settle(self) -> None:
        """Min Hamming distance of each not-yet-measured query to the principal's earlier queries."""
        p = min(self._pending, self.history)
        self._pending = 0
        if p == 0 or self._ring is None:
            return
        bits = self._ring.shape[1] * 8
        seqs = np.arange(self.count - p, self.count)
        new = self._ring[seqs % self.history]
        dist = popcount_u8(np.bitwise_xor(new[:, None, :], self._ring[None, :, :])).sum(axis=2)
        earlier = (self._seq[None, :] >= 0) & (self._seq[None, :] < seqs[:, None])
        dist = np.where(earlier, dist, bits + 1)
        mind = dist.min(axis=1).astype(np.float64)
        self._mind.extend(np.where(mind > bits, 1.0, mind / bits).tolist())

    def features(self) -> np.ndarray:
        """The feature row over the current window (see :data:`FEATURE_NAMES`)."""
        self._settle()
        evs = list(self._events)
        n = len(evs)
        times = np.array([e.time for e in evs], dtype=np.float64)
        gaps = np.diff(times) if n > 1 else np.zeros(1)
        span = max(float(times[-1] - times[0]), 1.0)
        rate = (n - 1) / span * 3600.0 if n > 1 else 0.0
        gap_mean = float(gaps.mean())
        gap_cv = float(gaps.std() / gap_mean) if gap_mean > 0 else 0.0

        size = max((e.collection_size for e in evs), default=0)
        returned = [r for e in evs for r in e.result_ids]
        distinct = set(returned)
        coverage = len(distinct) / size if size > 0 else 0.0
        distinct_ratio = len(distinct) / len(returned) if returned else 0.0
        new_in_window: set[str] = (
            set().union(*self._seen_before_window) if self._seen_before_window else set()
        )
        novelty = len(new_in_window & distinct) / len(distinct) if distinct else 0.0
        cumulative = len(self._seen) / size if size > 0 else 0.0

        overlaps = []
        for a, b in itertools.pairwise(evs):
            sa, sb = set(a.result_ids), set(b.result_ids)
            if sa or sb:
                overlaps.append(len(sa & sb) / len(sa | sb))
        overlap = float(np.mean(overlaps)) if overlaps else 0.0

        ring = self._ring if self._ring is not None else np.zeros((1, 1), np.uint8)
        bits = ring.shape[1] * 8
        m = min(n, self.history, int((self._seq >= 0).sum()))
        if m > 1:
            mat = ring[np.arange(self.count - m, self.count) % self.history]
            dm = _popcount_dist(mat, mat)
            dispersion = float(dm.sum()) / (m * (m - 1)) / bits
        else:
            dispersion = 0.0

        mind = np.array(self._mind, dtype=np.float64)
        prada = _shapiro_w(mind)
        nd_bits = self.near_duplicate_bits if self.near_duplicate_bits is not None else max(1, bits // 20)
        near_dup = float(np.mean(mind * bits <= nd_bits))

        top1 = np.array([e.top1 for e in evs if e.top1 is not None], dtype=np.float64)
        margins = np.array(
            [e.top1 - e.top2 for e in evs if e.top1 is not None and e.top2 is not None], dtype=np.float64
        )
        top1_mean = float(top1.mean()) if top1.size else 0.0
        top1_std = float(top1.std()) if top1.size else 0.0
        margin = float(margins.mean()) if margins.size else 0.0
        k_mean = float(np.mean([e.k for e in evs]))
        denials = float(np.mean([e.denied for e in evs]))
        if self.profile is not None:
            hours = (times // 3600).astype(np.int64) % _HOURS
            off = float(np.mean(self.profile[hours] < self.off_hours_share))
        else:
            off = 0.0
        return np.array(
            [
                math.log1p(rate),
                math.log1p(float(np.median(gaps))),
                gap_cv,
                coverage,
                distinct_ratio,
                novelty,
                cumulative,
                overlap,
                dispersion,
                prada,
                near_dup,
                top1_mean,
                top1_std,
                margin,
                math.log(max(k_mean, 1.0)),
                denials,
                off,
            ],
            dtype=np.float64,
        )


def _shapiro_w(x: np.ndarray) -> float:
    """Shapiro-Wilk W (Royston 1992 coefficients, as in AS R94); 0.0 for a constant sample."""
    n = x.size
    if n < 3 or float(np.ptp(x)) == 0.0:
        return 0.0  # a constant distance profile is as far from normal as it gets
    xs = np.sort(x)
    a = _shapiro_coefficients(n)
    ss = float(((xs - xs.mean()) ** 2).sum())
    return min(1.0, float(a @ xs) ** 2 / ss)


@functools.lru_cache(maxsize=64)
def _shapiro_coefficients(n: int) -> np.ndarray:
    if n == 3:
        return np.array([-math.sqrt(0.5), 0.0, math.sqrt(0.5)])
    nd = NormalDist()
    m = np.array([nd.inv_cdf((i - 0.375) / (n + 0.25)) for i in range(1, n + 1)])
    m2 = float(m @ m)
    u = 1.0 / math.sqrt(n)
    c = m / math.sqrt(m2)
    an = c[-1] + 0.221157 * u - 0.147981 * u**2 - 2.071190 * u**3 + 4.434685 * u**4 - 2.706056 * u**5
    a = np.empty(n)
    if n > 5:
        an1 = c[-2] + 0.042981 * u - 0.293762 * u**2 - 1.752461 * u**3 + 5.682633 * u**4 - 3.582633 * u**5
        phi = (m2 - 2 * m[-1] ** 2 - 2 * m[-2] ** 2) / (1 - 2 * an**2 - 2 * an1**2)
        a[2:-2] = m[2:-2] / math.sqrt(phi)
        a[-1], a[-2], a[0], a[1] = an, an1, -an, -an1
    else:
        phi = (m2 - 2 * m[-1] ** 2) / (1 - 2 * an**2)
        a[1:-1] = m[1:-1] / math.sqrt(phi)
        a[-1], a[0] = an, -an
    return a


def principal_features(
    events: Sequence[QueryEvent],
    *,
    window: int = 48,
    stride: int = 16,
    min_events: int = 24,
    profile: np.ndarray | None = None,
) -> tuple[np.ndarray, list[int]]:
    """Feature rows for one principal's events (time order) and the event count at each row."""
    tr = PrincipalTracker(window=window, stride=stride, min_events=min_events, profile=profile)
    rows: list[np.ndarray] = []
    ends: list[int] = []
    for ev in sorted(events, key=lambda e: e.time):
        row = tr.push(ev)
        if row is not None:
            rows.append(row)
            ends.append(tr.count)
    if not rows:
        return np.zeros((0, len(FEATURE_NAMES))), []
    return np.stack(rows), ends

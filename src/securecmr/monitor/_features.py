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


def _hamming_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed code rows a (m, nb) and b (n, nb) -> (m, n) int64."""
    fn = getattr(np, "bitwise_count", None)
    if fn is not None and a.shape[1] % 8 == 0:  # whole 64-bit words: 8x fewer elements to count
        wa = np.ascontiguousarray(a).view(np.uint64)
        wb = np.ascontiguousarray(b).view(np.uint64)
        return np.asarray(fn(wa[:, None, :] ^ wb[None, :, :]).sum(axis=2, dtype=np.int64))
    return np.asarray(popcount_u8(a[:, None, :] ^ b[None, :, :]).sum(axis=2, dtype=np.int64))


# Columns of the per-event table a tracker keeps for its window (one row per event).
_T, _NRES, _NEW, _TOP1, _MARGIN, _K, _DENIED, _OVERLAP, _CODED, _SIZE = range(10)
_COLUMNS = 10


class PrincipalTracker:
    """Rolling state for one principal; :meth:`push` returns a feature row every ``stride`` events.

    Per event it keeps a row of scalars (time, result count, scores, k, denial, overlap with the
    previous result set) in a ring of ``window`` rows, the result-id set, and the query code in
    a ring of the last ``history`` codes; a window's features are then a few vectorised steps.
    Events without a code (a refused text query, logged without running the model) count for
    rate, k, denials and results, but not for the Hamming-space features.
    """

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
        self._rows: deque[tuple[float, ...]] = deque(maxlen=window)  # per-event scalars, see _COLUMNS
        self._sets: deque[frozenset[str]] = deque(maxlen=window)  # result ids of each windowed event
        self._last: frozenset[str] | None = None
        self._mind: deque[float] = deque(maxlen=window)  # min distance of each recent coded query
        self.history = history
        self._ring: np.ndarray | None = None  # the last ``history`` query codes (as of the last settle)
        self._seq = np.full(history, -1, dtype=np.int64)  # coded-push number of each ring slot
        self._coded = 0  # queries with a code pushed so far
        self._width = 0  # bytes per code in the current ring
        self._pending: list[bytes] = []  # codes pushed since the last settle (written to the ring then)
        self._seen: set[str] = set()

    def __repr__(self) -> str:
        return f"PrincipalTracker(events={self.count}, window={self.window}, stride={self.stride})"

    def push(self, event: QueryEvent) -> np.ndarray | None:
        """Add one event; every ``stride`` events (after ``min_events``) return the window's features."""
        code = event.code
        if code:
            if len(code) != self._width:
                self._settle()  # codes of another width are not comparable: start a new ring
                self._width = len(code)
                self._ring = np.zeros((self.history, self._width), dtype=np.uint8)
                self._seq.fill(-1)
            self._pending.append(code)
            self._coded += 1
            if len(self._pending) > 2 * self.history:  # only the last ``history`` can be measured
                del self._pending[: -self.history]
        ids = event.result_ids
        results = frozenset(ids)
        new_ids = results - self._seen
        self._seen |= new_ids
        prev = self._last
        overlap = math.nan
        if prev is not None and (results or prev):
            overlap = len(results & prev) / len(results | prev)
        top1, top2 = event.top1, event.top2
        self._rows.append(
            (
                event.time,
                len(ids),
                len(new_ids),
                math.nan if top1 is None else top1,
                math.nan if top1 is None or top2 is None else top1 - top2,
                event.k,
                1.0 if event.denied else 0.0,
                overlap,
                1.0 if code else 0.0,
                event.collection_size,
            )
        )
        self._sets.append(results)
        self._last = results
        self.count += 1
        if self.count >= self.min_events and self.count % self.stride == 0:
            return self.features()
        return None

    def _settle(self) -> None:
        """Write pending codes to the ring and measure each one's min Hamming distance to the
        principal's earlier queries (those still in the ring)."""
        pending = self._pending[-self.history :]
        self._pending = []
        p = len(pending)
        if p == 0 or self._ring is None:
            return
        bits = self._width * 8
        seqs = np.arange(self._coded - p, self._coded)
        slots = seqs % self.history
        new = np.frombuffer(b"".join(pending), dtype=np.uint8).reshape(p, self._width)
        self._ring[slots] = new
        self._seq[slots] = seqs
        dist = _hamming_rows(new, self._ring)
        earlier = (self._seq[None, :] >= 0) & (self._seq[None, :] < seqs[:, None])
        dist = np.where(earlier, dist, bits + 1)
        mind = dist.min(axis=1).astype(np.float64)
        self._mind.extend(np.where(mind > bits, 1.0, mind / bits).tolist())

    def features(self) -> np.ndarray:
        """The feature row over the current window (see :data:`FEATURE_NAMES`)."""
        self._settle()
        n = min(self.count, self.window)
        if n == 0:
            return np.zeros(len(FEATURE_NAMES), dtype=np.float64)
        R = np.fromiter(itertools.chain.from_iterable(self._rows), np.float64, n * _COLUMNS).reshape(n, -1)
        times = R[:, _T]
        gaps = np.diff(times) if n > 1 else np.zeros(1)
        span = max(float(times[-1] - times[0]), 1.0)
        rate = (n - 1) / span * 3600.0 if n > 1 else 0.0
        gap_mean = float(gaps.mean())
        gap_cv = _std(gaps) / gap_mean if gap_mean > 0 else 0.0

        size = float(R[:, _SIZE].max())
        returned = float(R[:, _NRES].sum())
        distinct = len(frozenset().union(*self._sets))
        coverage = distinct / size if size > 0 else 0.0
        distinct_ratio = distinct / returned if returned else 0.0
        # ids first seen in the window are all among its results, each counted once
        novelty = float(R[:, _NEW].sum()) / distinct if distinct else 0.0
        cumulative = len(self._seen) / size if size > 0 else 0.0

        ov = R[1:, _OVERLAP]  # the first row's overlap is with an event outside the window
        ov = ov[~np.isnan(ov)]
        overlap = float(ov.mean()) if ov.size else 0.0

        ring = self._ring if self._ring is not None else np.zeros((1, 1), np.uint8)
        bits = ring.shape[1] * 8
        coded = int(R[:, _CODED].sum())
        m = min(coded, self.history, int((self._seq >= 0).sum()))
        if m > 1:
            mat = ring[np.arange(self._coded - m, self._coded) % self.history]
            ones = np.unpackbits(mat, axis=1).sum(axis=0, dtype=np.int64)
            # sum of Hamming distances over ordered pairs = sum over bits of 2 * ones * zeros
            dispersion = float((2 * ones * (m - ones)).sum()) / (m * (m - 1)) / bits
        else:
            dispersion = 0.0

        recent = list(self._mind)[-coded:] if coded else []
        mind = np.array(recent, dtype=np.float64)
        prada = _shapiro_w(mind)
        nd_bits = self.near_duplicate_bits if self.near_duplicate_bits is not None else max(1, bits // 20)
        near_dup = np.count_nonzero(mind * bits <= nd_bits) / mind.size if mind.size else 0.0

        top1 = R[:, _TOP1]
        top1 = top1[~np.isnan(top1)]
        margins = R[:, _MARGIN]
        margins = margins[~np.isnan(margins)]
        top1_mean = float(top1.mean()) if top1.size else 0.0
        top1_std = _std(top1) if top1.size else 0.0
        margin = float(margins.mean()) if margins.size else 0.0
        k_mean = float(R[:, _K].mean())
        denials = float(R[:, _DENIED].mean())
        if self.profile is not None:
            hours = (times // 3600).astype(np.int64) % _HOURS
            off = float(np.count_nonzero(self.profile[hours] < self.off_hours_share)) / n
        else:
            off = 0.0
        return np.array(
            [
                math.log1p(rate),
                math.log1p(_median(gaps)),
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


def _std(x: np.ndarray) -> float:
    """``x.std()`` computed the same way, without numpy's per-call overhead (small arrays)."""
    d = x - x.sum() / x.size
    return math.sqrt(float((d * d).sum()) / x.size)


def _median(x: np.ndarray) -> float:
    """``np.median(x)`` of a non-empty 1-D array, without its per-call overhead."""
    xs = np.sort(x)
    h = xs.size // 2
    return float(xs[h]) if xs.size % 2 else float((xs[h - 1] + xs[h]) / 2.0)


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

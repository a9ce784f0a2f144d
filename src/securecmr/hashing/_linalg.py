"""Numerical building blocks: regularised CCA, ITQ rotation, RBF anchor features, hash centres."""

from __future__ import annotations

import numpy as np

__all__ = [
    "CONFIDENCE_THRESHOLDS",
    "cca",
    "confidence_layout",
    "expand",
    "hash_centres",
    "itq_rotation",
    "rank_code",
    "rank_layout",
    "rbf_features",
    "rbf_gamma",
]


def _inv_sqrt(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    w = np.maximum(w, 1e-12)
    return np.asarray((v / np.sqrt(w)) @ v.T)


def cca(x: np.ndarray, y: np.ndarray, k: int, reg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regularised CCA (Hotelling 1936; ridge ``reg`` relative to the mean variance).

    ``x`` and ``y`` must be centred. Returns ``(Px, Py, rho)`` with ``k' = min(k, dx, dy)`` columns,
    ordered by canonical correlation ``rho``.
    """
    n = x.shape[0]
    cxx = x.T @ x / n
    cyy = y.T @ y / n
    cxx += reg * (np.trace(cxx) / cxx.shape[0] + 1e-12) * np.eye(cxx.shape[0])
    cyy += reg * (np.trace(cyy) / cyy.shape[0] + 1e-12) * np.eye(cyy.shape[0])
    cxy = x.T @ y / n
    wx, wy = _inv_sqrt(cxx), _inv_sqrt(cyy)
    u, s, vt = np.linalg.svd(wx @ cxy @ wy, full_matrices=False)
    r = min(k, u.shape[1])
    return wx @ u[:, :r], wy @ vt.T[:, :r], s[:r]


def expand(r: int, bits: int, seed: int) -> np.ndarray:
    """An (r, bits) map: identity on the first ``r`` bits, seeded Gaussian combinations for the rest
    (sign of random projections in the common space, Charikar 2002), so codes can be longer than
    the rank of the common space."""
    if bits <= r:
        return np.eye(r)[:, :bits]
    rng = np.random.default_rng(seed)
    return np.hstack([np.eye(r), rng.standard_normal((r, bits - r)) / np.sqrt(r)])


def itq_rotation(v: np.ndarray, iters: int, seed: int) -> np.ndarray:
    """Iterative quantisation (Gong & Lazebnik, CVPR 2011): the orthogonal ``R`` minimising
    ``||sign(VR) - VR||``, alternating the codes and an orthogonal Procrustes step."""
    rng = np.random.default_rng(seed)
    c = v.shape[1]
    rot, _ = np.linalg.qr(rng.standard_normal((c, c)))
    for _ in range(iters):
        b = np.where(v @ rot > 0, 1.0, -1.0)
        u, _, wt = np.linalg.svd(v.T @ b)
        rot = u @ wt
    return np.asarray(rot)


def rbf_gamma(x: np.ndarray, anchors: np.ndarray) -> float:
    """``1 / mean squared distance`` between (a sample of) points and the anchors."""
    sample = x[: min(len(x), 500)]
    d = (sample**2).sum(1)[:, None] - 2 * sample @ anchors.T + (anchors**2).sum(1)[None, :]
    mean = float(np.maximum(d, 0).mean())
    return 1.0 / max(mean, 1e-12)


def rbf_features(x: np.ndarray, anchors: np.ndarray, gamma: float) -> np.ndarray:
    """``exp(-gamma * ||x - a||^2)`` for every anchor ``a`` (float32 to match the ONNX head)."""
    x32 = x.astype(np.float32)
    a32 = anchors.astype(np.float32)
    d = (
        (x32 * x32).sum(1, keepdims=True)
        - 2 * x32 @ a32.T
        + (a32.astype(np.float64) ** 2).sum(1).astype(np.float32)[None, :]
    )
    return np.asarray(np.exp(-float(gamma) * np.maximum(d, 0)), dtype=np.float64)


def hash_centres(n_classes: int, bits: int, seed: int) -> np.ndarray:
    """One ±1 code per class. Seeded distinct rows (never the all-ones row) of a Sylvester-Hadamard
    matrix, so all pairwise distances are bits/2 (the hash centres of Yuan et al., CVPR 2020), when
    ``bits`` is a power of two larger than the number of classes, else balanced seeded random codes.
    Rows are drawn at random rather than taken in order because the first rows of a long Sylvester
    matrix repeat a shorter one, which would make a 64-bit mixture code a copy of a 16-bit one."""
    rng = np.random.default_rng(seed)
    if bits & (bits - 1) == 0 and n_classes <= bits - 1:
        h = np.array([[1.0]])
        while h.shape[0] < bits:
            h = np.block([[h, h], [h, -h]])
        return np.asarray(h[1 + rng.permutation(bits - 1)[:n_classes]])
    base = np.tile(np.array([1.0, -1.0]), bits // 2)
    return np.stack([rng.permutation(base) for _ in range(n_classes)])


def rank_layout(class_counts: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The bits of a rank code: bit ``j`` stands for "class ``classes[j]`` is among the query's top
    ``levels[j] + 1`` classes". Bits come in blocks of one bit per class (a partial last block covers
    the most frequent classes first); block ``b`` (from 0) holds level ``ctz(b + 1)`` (the ruler
    sequence 0, 1, 0, 2, 0, 1, 0, 3, ..., capped at ``C - 2``), so each deeper level of the ranking gets
    half the bits of the one above: the top class weighs most, and a Hamming distance between two
    codes computed by the hash functions stays dominated by whether the top classes agree."""
    c = len(class_counts)
    order = np.argsort(-np.asarray(class_counts), kind="stable")
    j = np.arange(bits)
    block = j // c + 1
    level = np.zeros(bits, dtype=np.int64)
    while True:
        even = block % 2 == 0
        if not even.any():
            break
        level[even] += 1
        block = np.where(even, block // 2, block)
    return order[j % c].astype(np.int64), np.minimum(level, max(c - 2, 0)).astype(np.int64)


CONFIDENCE_THRESHOLDS = (0.5, 0.25, 0.75, 0.9)


def confidence_layout(class_counts: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Confidence bits: bit ``j`` is "the score of class ``classes[j]`` exceeds ``thresholds[j]``";
    blocks of one bit per class (most frequent first) cycle through :data:`CONFIDENCE_THRESHOLDS`."""
    c = len(class_counts)
    order = np.argsort(-np.asarray(class_counts), kind="stable")
    j = np.arange(bits)
    thr = np.asarray(CONFIDENCE_THRESHOLDS)[(j // c) % len(CONFIDENCE_THRESHOLDS)]
    return order[j % c].astype(np.int64), thr.astype(np.float64)


def rank_code(scores: np.ndarray, classes: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``levels + 0.5 - rank[:, classes]`` (rank 0 = highest score; > 0 where the class is within the
    level): the numpy twin of the ONNX ``rank`` head."""
    rank = (scores[:, None, :] > scores[:, :, None]).sum(axis=2)
    return np.asarray(levels[None, :] + 0.5 - rank[:, classes], dtype=np.float64)

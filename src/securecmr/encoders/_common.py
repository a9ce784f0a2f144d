"""Helpers shared by the encoders: pooling and row normalisation."""

from __future__ import annotations

import numpy as np

__all__ = ["l2_normalize", "pool"]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def pool(out: np.ndarray, pooling: str, mask: np.ndarray | None = None) -> np.ndarray:
    """(n, seq, d) -> (n, d) by ``cls`` / masked ``mean``; (n, d) passes through for ``none``."""
    out = np.asarray(out, dtype=np.float32)
    if pooling == "none" or out.ndim == 2:
        return out.reshape(out.shape[0], -1) if out.ndim > 2 else out
    if pooling == "cls":
        return out[:, 0]
    if mask is None:
        return out.mean(axis=1)
    m = mask.astype(np.float32)[:, :, None]
    return (out * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)

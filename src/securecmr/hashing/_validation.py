"""Input checks shared by the hashers: feature matrices, labels, bit lengths."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigurationError, ShapeError

__all__ = ["check_bits", "check_features", "check_labels", "labelled_mask"]


def check_bits(bits: Any) -> int:
    """Return ``bits`` as an int, or raise ConfigurationError unless it is a positive multiple of 8."""
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
        raise ConfigurationError(
            f"bits must be an integer multiple of 8 (e.g. 16, 32, 64, 128), got {bits!r}"
        )
    if bits <= 0 or bits % 8 != 0 or bits > 4096:
        raise ConfigurationError(
            f"bits must be a positive multiple of 8 up to 4096 (e.g. 16, 32, 64, 128), got {bits}"
        )
    return int(bits)


def check_features(x: Any, name: str, *, dim: int | None = None, min_rows: int = 1) -> np.ndarray:
    """A finite float64 2-D array; ``dim`` pins the width (the width seen at fit time)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{name} must be a numeric array of shape (n, d)") from exc
    if arr.ndim == 1 and dim is not None and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ShapeError(f"{name} must be 2-D (n, d), got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise ShapeError(f"{name} needs at least {min_rows} row(s), got {arr.shape[0]}")
    if arr.shape[1] == 0:
        raise ShapeError(f"{name} has zero columns")
    if dim is not None and arr.shape[1] != dim:
        raise ShapeError(
            f"{name} has {arr.shape[1]} columns but the hasher was fitted on {dim}-d features; "
            "encode with the same encoder (and layer) used for fit"
        )
    if not np.isfinite(arr).all():
        raise ShapeError(f"{name} contains NaN or inf values; clean or impute them first")
    return arr


def check_labels(labels: Any, n: int) -> np.ndarray:
    """Labels as a (n, L) float multi-hot matrix; unlabelled rows are all-zero.

    Accepts (n,) integer class ids (negative = unlabelled) or an (n, L) multi-hot matrix
    (an all-zero row = unlabelled).
    """
    arr = np.asarray(labels)
    if arr.ndim == 1:
        if arr.shape[0] != n:
            raise ShapeError(f"labels has {arr.shape[0]} rows but the features have {n}")
        if not np.issubdtype(arr.dtype, np.integer):
            if (
                not np.issubdtype(arr.dtype, np.floating)
                or not np.all(np.isfinite(arr))
                or not np.all(arr == np.round(arr))
            ):
                raise ShapeError("1-D labels must be integer class ids (negative for unlabelled rows)")
            arr = arr.astype(np.int64)
        ids = arr.astype(np.int64)
        classes = np.unique(ids[ids >= 0])
        out = np.zeros((n, len(classes)), dtype=np.float64)
        rows = np.nonzero(ids >= 0)[0]
        out[rows, np.searchsorted(classes, ids[rows])] = 1.0
        return out
    if arr.ndim == 2:
        if arr.shape[0] != n:
            raise ShapeError(f"labels has {arr.shape[0]} rows but the features have {n}")
        try:
            out = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ShapeError("multi-hot labels must be numeric 0/1") from exc
        if not np.isin(out, (0.0, 1.0)).all():
            raise ShapeError("multi-hot labels must contain only 0 and 1")
        return out
    raise ShapeError(f"labels must be (n,) class ids or an (n, L) multi-hot matrix, got shape {arr.shape}")


def labelled_mask(y: np.ndarray) -> np.ndarray:
    """Rows that carry at least one label."""
    return np.asarray(y.sum(axis=1) > 0)


def check_kernel_head_params(est: Any, *, positive_ints: tuple[str, ...] = ("max_iter",)) -> None:
    """Shared checks of the kernel-head parameters (``anchors``, ``reg``, ``gamma`` and the positive
    integer counts named in ``positive_ints``) of the learned hashers."""
    anchors = est.anchors
    if isinstance(anchors, bool) or not isinstance(anchors, int) or anchors < 2:
        raise ConfigurationError(f"anchors must be an integer >= 2, got {anchors!r}")
    for name in ("reg", "gamma"):
        value = getattr(est, name)
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise ConfigurationError(f"{name} must be a non-negative number or 'auto', got {value!r}")
    for name in positive_ints:
        value = getattr(est, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")

"""The supervised hasher is never worse than the plain baseline: per-modality logistic regression
onto a random class codebook, signed (generated data; Wikipedia / MedPix figures in the guide)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import securecmr.hashing as hashing
from securecmr.eval import mean_average_precision

FAST = {"anchors": 96}


def make_hard_pairs(
    n: int, *, classes: int = 10, di: int = 64, dt: int = 16, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classes whose means differ little against unit noise in 64-d image and 16-d text features:
    linear boundaries fit them, a kernel on few anchors over-fits (MAP around 0.6, not a solved task)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    mi = np.random.default_rng(200).normal(size=(classes, di)) * 0.35
    mt = np.random.default_rng(201).normal(size=(classes, dt)) * 0.5
    return mi[y] + rng.normal(size=(n, di)), mt[y] + rng.normal(size=(n, dt)), y


def baseline_codes(
    x: np.ndarray, t: np.ndarray, y: np.ndarray, qx: np.ndarray, qt: np.ndarray, bits: int
) -> tuple[np.ndarray, ...]:
    """Logistic regression per modality (scikit-learn), a random ±1 class codebook, sign."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    book = np.random.default_rng(3).choice([-1.0, 1.0], size=(int(y.max()) + 1, bits))
    out = []
    for tr, q in ((x, qx), (t, qt)):
        scale = StandardScaler().fit(tr)
        clf = LogisticRegression(max_iter=1000).fit(scale.transform(tr), y)
        for rows in (tr, q):
            out.append(np.packbits(clf.predict_proba(scale.transform(rows)) @ book > 0, axis=1))
    return tuple(out)  # db image, query image, db text, query text


def _maps(
    qi: np.ndarray, qt: np.ndarray, di: np.ndarray, dt: np.ndarray, qy: np.ndarray, y: np.ndarray
) -> tuple[float, float]:
    return mean_average_precision(qi, dt, qy, y), mean_average_precision(qt, di, qy, y)


@pytest.fixture(scope="module")
def hard() -> dict[str, np.ndarray]:
    x, t, y = make_hard_pairs(800, seed=0)
    qx, qt, qy = make_hard_pairs(300, seed=1)
    return {"x": x, "t": t, "y": y, "qx": qx, "qt": qt, "qy": qy}


@pytest.mark.parametrize("bits", [16, 32, 64])
def test_supervised_at_least_as_good_as_the_baseline(bits: int, hard: dict[str, np.ndarray]) -> None:
    x, t, y, qx, qt, qy = (hard[k] for k in ("x", "t", "y", "qx", "qt", "qy"))
    h = hashing.create("supervised", bits=bits, **FAST).fit(x, t, y)
    ours = _maps(h.encode_image(qx), h.encode_text(qt), h.encode_image(x), h.encode_text(t), qy, y)
    di, bqi, dt, bqt = baseline_codes(x, t, y, qx, qt, bits)
    base = _maps(bqi, bqt, di, dt, qy, y)
    # the held-apart choice maximises the mean of both directions; one direction may trail a little
    assert np.mean(ours) >= np.mean(base), (ours, base, h.validation_)
    assert min(ours[0] - base[0], ours[1] - base[1]) >= -0.03, (ours, base, h.validation_)
    # the choice is recorded: every candidate was scored on the held-apart pairs
    assert len(h.validation_) == (8 if bits >= 10 else 4)  # 2 x 2 heads x (rank, centres)
    assert {h.head_image_, h.head_text_} <= {"kernel", "linear"}


def test_kernel_only_loses_to_the_baseline_here(hard: dict[str, np.ndarray]) -> None:
    """The generated task is one where the kernel head alone is below the baseline (so the test
    above would fail without the linear candidate)."""
    x, t, y, qx, qt, qy = (hard[k] for k in ("x", "t", "y", "qx", "qt", "qy"))
    h = hashing.create("supervised", bits=32, head="kernel", **FAST).fit(x, t, y)
    ours = _maps(h.encode_image(qx), h.encode_text(qt), h.encode_image(x), h.encode_text(t), qy, y)
    di, bqi, dt, bqt = baseline_codes(x, t, y, qx, qt, 32)
    assert np.mean(ours) < np.mean(_maps(bqi, bqt, di, dt, qy, y))


def test_linear_heads_round_trip(hard: dict[str, np.ndarray], tmp_path: Path) -> None:
    x, t, y, qx, qt = (hard[k] for k in ("x", "t", "y", "qx", "qt"))
    h = hashing.create("supervised", bits=32, head="linear", code="centres", **FAST).fit(x, t, y)
    assert (h.head_image_, h.head_text_, h.code_) == ("linear", "linear", "centres")
    assert h.validation_ == {}  # nothing to choose between
    loaded = hashing.load(h.save(tmp_path / "lin.npz"))
    assert (loaded.head_image_, loaded.head_text_) == ("linear", "linear")
    assert np.array_equal(loaded.encode_image(qx), h.encode_image(qx))
    assert np.array_equal(loaded.encode_text(qt), h.encode_text(qt))


def test_semi_supervised_keeps_the_chosen_heads(hard: dict[str, np.ndarray]) -> None:
    x, t, y = hard["x"], hard["t"], hard["y"].copy()
    y[::2] = -1  # half unlabelled
    h = hashing.create("supervised", bits=32, **FAST).fit(x, t, y)
    assert h.train_codes_.shape == (800, 4)
    assert h.validation_  # 300 labelled pairs: the held-apart choice ran


def test_bad_head_parameter() -> None:
    from securecmr.errors import ConfigurationError

    x, t, y = make_hard_pairs(60)
    with pytest.raises(ConfigurationError, match="head must be"):
        hashing.create("supervised", bits=16, head="deep").fit(x, t, y)

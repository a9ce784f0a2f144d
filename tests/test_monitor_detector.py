"""QueryAnomalyDetector: fit/score/predict, exported forest, save/load without pickle, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from securecmr.errors import MonitorError, NotFittedError, SerializationError, ShapeError
from securecmr.monitor import (
    FEATURE_NAMES,
    HammingIndex,
    QueryAnomalyDetector,
    TrafficSimulator,
    principal_features,
    run_plan,
    synthetic_collection,
)
from securecmr.monitor._features import _shapiro_w


@pytest.fixture(scope="module")
def benign() -> dict[str, list]:
    codes, topics = synthetic_collection(400, n_topics=8, seed=1)
    sim = TrafficSimulator(codes, topics, seed=1)
    index = HammingIndex(codes)
    return {
        u: run_plan(
            sim.benign(u, days=(0, 12)),
            lambda q: index.search(q.code, q.k),
            collection_size=len(index),
            bits=64,
        )
        for u in [f"u{i}" for i in range(8)]
    }


@pytest.fixture(scope="module")
def fitted(benign: dict[str, list]) -> QueryAnomalyDetector:
    return QueryAnomalyDetector(n_estimators=50, random_state=3).fit_events(benign, store_id="store-a")


def test_features_shape_and_ranges(benign: dict[str, list]) -> None:
    X, ends = principal_features(benign["u0"])
    assert X.shape[1] == len(FEATURE_NAMES) and X.shape[0] == len(ends) > 0
    assert np.isfinite(X).all()
    assert ends == sorted(ends) and ends[0] >= 24
    cov = X[:, FEATURE_NAMES.index("coverage")]
    assert ((cov >= 0) & (cov <= 1)).all()


def test_fitted_attributes_and_predict(fitted: QueryAnomalyDetector, benign: dict[str, list]) -> None:
    assert fitted.n_windows_ >= 50 and fitted.store_id_ == "store-a"
    X = np.concatenate(
        [principal_features(evs, profile=fitted.profile_for(u))[0] for u, evs in benign.items()]
    )
    scores = fitted.score(X)
    assert scores.shape == (len(X),)
    assert fitted.predict(X).mean() < 0.05  # mostly normal on its own benign history
    crazy = X[:1].copy()
    crazy[0, FEATURE_NAMES.index("log_rate")] = 12.0
    crazy[0, FEATURE_NAMES.index("denial_rate")] = 1.0
    assert fitted.predict(crazy)[0] == 1
    reasons = fitted.explain(crazy[0])
    assert any("rate" in r for r in reasons) and any("denied" in r for r in reasons)


def test_exported_forest_matches_sklearn(benign: dict[str, list]) -> None:
    from sklearn.ensemble import IsolationForest

    X = np.concatenate([principal_features(evs)[0] for evs in benign.values()])
    det = QueryAnomalyDetector(n_estimators=30, random_state=5).fit(X)
    Z = (X - det.center_) / det.scale_
    ref = IsolationForest(n_estimators=30, max_samples=min(256, len(X)), random_state=5).fit(Z)
    np.testing.assert_allclose(det._forest_scores(Z), -ref.score_samples(Z), rtol=1e-9)


def test_shapiro_matches_scipy() -> None:
    from scipy.stats import shapiro

    rng = np.random.default_rng(0)
    for n in (3, 5, 8, 48):
        x = rng.exponential(size=n)
        assert _shapiro_w(x) == pytest.approx(float(shapiro(x).statistic), abs=1e-6)
    assert _shapiro_w(np.ones(10)) == 0.0


def test_save_load_roundtrip_without_pickle(fitted: QueryAnomalyDetector, tmp_path: Path) -> None:
    path = tmp_path / "det.npz"
    fitted.save(path)
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert "meta" in z.files
    again = QueryAnomalyDetector.load(path, store_id="store-a")
    X = np.random.default_rng(0).normal(size=(20, len(FEATURE_NAMES)))
    np.testing.assert_array_equal(again.score(X), fitted.score(X))
    assert again.get_params() == fitted.get_params()
    assert again.profiles_.keys() == fitted.profiles_.keys()


def test_load_refuses_other_store(fitted: QueryAnomalyDetector, tmp_path: Path) -> None:
    path = tmp_path / "det.npz"
    fitted.save(path)
    with pytest.raises(MonitorError, match="another store"):
        QueryAnomalyDetector.load(path, store_id="store-b")


def test_load_tampered_or_missing(fitted: QueryAnomalyDetector, tmp_path: Path) -> None:
    path = tmp_path / "det.npz"
    fitted.save(path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: np.array(z[k]) for k in z.files}
    arrays["tree_threshold_"][0, 0] += 1.0
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(SerializationError):
        QueryAnomalyDetector.load(path)
    path.write_bytes(b"garbage")
    with pytest.raises(SerializationError):
        QueryAnomalyDetector.load(path)
    with pytest.raises(MonitorError, match="monitor fit"):
        QueryAnomalyDetector.load(tmp_path / "missing.npz")


def test_bad_input() -> None:
    det = QueryAnomalyDetector()
    with pytest.raises(NotFittedError):
        det.score(np.zeros((1, len(FEATURE_NAMES))))
    with pytest.raises(MonitorError, match="empty"):
        det.fit_events([])
    with pytest.raises(MonitorError, match="too little benign history"):
        det.fit(np.zeros((10, len(FEATURE_NAMES))))
    with pytest.raises(ShapeError):
        det.fit(np.zeros((100, 3)))
    with pytest.raises(ShapeError):
        det.fit(np.full((100, len(FEATURE_NAMES)), np.nan))
    with pytest.raises(MonitorError):
        QueryAnomalyDetector(window=10, min_events=20).fit(np.zeros((100, len(FEATURE_NAMES))))

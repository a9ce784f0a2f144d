"""QueryAnomalyDetector: an isolation forest plus explicit, explainable rules.

Fitted on benign feature windows only. The forest's trees are exported to flat arrays, so
scoring one window is a handful of vectorised numpy steps (no sklearn call in the search
path) and the fitted model is saved as a plain ``.npz`` with a JSON header, never a pickle.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MonitorError, NotFittedError, SerializationError, ShapeError
from ..protect import atomic_write
from ._events import QueryEvent
from ._features import FEATURE_NAMES, hour_profile, principal_features

__all__ = ["QueryAnomalyDetector"]

_FORMAT = "securecmr.monitor.detector/1"

# Features with an explicit rule: name -> (direction, reason shown to admins, minimum excess)
_RULES: dict[str, tuple[str, str, float]] = {
    "log_rate": ("high", "query rate far above normal", 0.5),
    "coverage": ("high", "walks through a large share of the collection", 0.02),
    "cumulative_coverage": ("high", "has seen more of the collection than any normal user", 0.05),
    "distinct_ratio": ("high", "results almost never repeat (a systematic sweep)", 0.05),
    "novelty": ("high", "almost every result is new to this principal (enumeration)", 0.05),
    "dispersion": ("high", "queries scattered across the code space", 0.03),
    "near_duplicates": ("high", "many near-duplicate queries (membership probing)", 0.1),
    "margin_mean": ("high", "unusually sharp top-1 matches (membership probing)", 0.03),
    "top1_mean": ("low", "queries far from any stored item (off-manifold / inversion probing)", 0.03),
    "log_k_mean": ("high", "asks for unusually many results per query", 0.3),
    "denial_rate": ("high", "many denied searches", 0.1),
    "off_hours": ("high", "active at hours this principal does not work", 0.6),
}


def _avg_path_length(n: np.ndarray) -> np.ndarray:
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class QueryAnomalyDetector:
    """Flags principal-windows that do not look like benign use.

    Parameters
    ----------
    window, stride, min_events:
        Feature windows: the last ``window`` events of a principal, scored every ``stride``
        events once it has made ``min_events`` searches.
    n_estimators, max_samples:
        Isolation forest size.
    forest_quantile:
        Share of benign training windows allowed above the forest's threshold.
    rule_quantile, rule_margin:
        Each rule fires above the benign ``1 - rule_quantile`` quantile plus ``rule_margin``
        times that quantile's distance from the median (and at least a fixed minimum).
    min_windows:
        Fewest benign windows ``fit`` accepts.
    random_state:
        Seed of the forest; fitting is deterministic.

    Fitted attributes end in ``_``: ``center_``, ``scale_``, ``forest_threshold_``,
    ``rule_thresholds_``, ``profiles_``, ``global_profile_``, ``store_id_``, ``n_windows_``.
    ``score`` is higher for more anomalous windows; ``predict`` returns 1 where the score
    exceeds 1.0 (the forest threshold or a rule), else 0.
    """

    def __init__(
        self,
        *,
        window: int = 48,
        stride: int = 16,
        min_events: int = 24,
        n_estimators: int = 100,
        max_samples: int = 256,
        forest_quantile: float = 0.002,
        forest_margin: float = 0.02,
        rule_quantile: float = 0.001,
        rule_margin: float = 0.5,
        min_windows: int = 50,
        random_state: int = 0,
    ) -> None:
        self.window = window
        self.stride = stride
        self.min_events = min_events
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.forest_quantile = forest_quantile
        self.forest_margin = forest_margin
        self.rule_quantile = rule_quantile
        self.rule_margin = rule_margin
        self.min_windows = min_windows
        self.random_state = random_state

    def __repr__(self) -> str:
        fitted = hasattr(self, "forest_threshold_")
        return (
            f"QueryAnomalyDetector(window={self.window}, stride={self.stride}, "
            f"n_estimators={self.n_estimators}, fitted={fitted})"
        )

    # ------------------------------------------------------------------ fitting
    def _validate(self) -> None:
        if self.window < 3 or self.stride < 1 or self.min_events < 3 or self.min_events > self.window:
            raise MonitorError("need window >= min_events >= 3 and stride >= 1")
        if not 0.0 <= self.forest_quantile < 0.5 or not 0.0 <= self.rule_quantile < 0.5:
            raise MonitorError("quantiles must lie in [0, 0.5)")
        if self.n_estimators < 1 or self.max_samples < 2:
            raise MonitorError("need n_estimators >= 1 and max_samples >= 2")

    def fit(
        self,
        X: np.ndarray,
        y: None = None,
        *,
        profiles: Mapping[str, np.ndarray] | None = None,
        global_profile: np.ndarray | None = None,
        store_id: str | None = None,
    ) -> QueryAnomalyDetector:
        """Fit on benign feature windows ``X`` (n_windows, n_features)."""
        self._validate()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(FEATURE_NAMES):
            raise ShapeError(f"expected features of shape (n, {len(FEATURE_NAMES)}), got {X.shape}")
        if not np.isfinite(X).all():
            raise ShapeError("feature matrix contains NaN or inf")
        if X.shape[0] < self.min_windows:
            raise MonitorError(
                f"too little benign history to fit: {X.shape[0]} feature windows, need at least "
                f"{self.min_windows}; let users work normally for longer (each principal yields a window "
                f"every {self.stride} searches after its first {self.min_events})"
            )
        from sklearn.ensemble import IsolationForest

        center = np.median(X, axis=0)
        q25, q75 = np.percentile(X, [25, 75], axis=0)
        scale = q75 - q25
        scale = np.where(scale > 1e-9, scale, np.maximum(X.std(axis=0), 1e-3))
        Z = (X - center) / scale
        forest = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, X.shape[0]),
            random_state=self.random_state,
        ).fit(Z)
        self._export_forest(forest)
        self.center_ = center
        self.scale_ = scale
        raw = self._forest_scores(Z)
        self.forest_threshold_ = float(np.quantile(raw, 1.0 - self.forest_quantile)) + self.forest_margin
        thresholds: dict[str, float] = {}
        for name, (direction, _reason, floor) in _RULES.items():
            col = X[:, FEATURE_NAMES.index(name)]
            med = float(np.median(col))
            if direction == "high":
                q = float(np.quantile(col, 1.0 - self.rule_quantile))
                thresholds[name] = q + max(self.rule_margin * (q - med), floor)
            else:
                q = float(np.quantile(col, self.rule_quantile))
                thresholds[name] = q - max(self.rule_margin * (med - q), floor)
        self.rule_medians_ = {n: float(np.median(X[:, FEATURE_NAMES.index(n)])) for n in _RULES}
        self.rule_thresholds_ = thresholds
        self.profiles_ = {str(k): np.asarray(v, dtype=np.float64) for k, v in (profiles or {}).items()}
        self.global_profile_ = (
            np.asarray(global_profile, dtype=np.float64)
            if global_profile is not None
            else np.full(24, 1 / 24)
        )
        self.store_id_ = store_id
        self.n_windows_ = int(X.shape[0])
        self.n_features_in_ = X.shape[1]
        return self

    def fit_events(
        self,
        events: Sequence[QueryEvent] | Mapping[str, Sequence[QueryEvent]],
        *,
        store_id: str | None = None,
    ) -> QueryAnomalyDetector:
        """Fit on benign query events: hour profiles per principal, then feature windows."""
        self._validate()
        groups = _group(events)
        if not groups:
            raise MonitorError("the query history is empty: nothing to learn normal use from")
        profiles = {p: hour_profile(e.time for e in evs) for p, evs in groups.items()}
        global_profile = hour_profile(e.time for evs in groups.values() for e in evs)
        rows = [
            principal_features(
                evs,
                window=self.window,
                stride=self.stride,
                min_events=self.min_events,
                profile=profiles[p],
            )[0]
            for p, evs in groups.items()
        ]
        X = np.concatenate(rows) if rows else np.zeros((0, len(FEATURE_NAMES)))
        return self.fit(X, profiles=profiles, global_profile=global_profile, store_id=store_id)

    def _export_forest(self, forest: Any) -> None:
        trees = forest.estimators_
        n_nodes = max(t.tree_.node_count for t in trees)
        T = len(trees)
        feat = np.full((T, n_nodes), -1, dtype=np.int32)
        thr = np.zeros((T, n_nodes), dtype=np.float64)
        left = np.zeros((T, n_nodes), dtype=np.int32)
        right = np.zeros((T, n_nodes), dtype=np.int32)
        leaf = np.zeros((T, n_nodes), dtype=np.float64)
        depth_max = 0
        for i, est in enumerate(trees):
            t = est.tree_
            m = t.node_count
            fmap = np.asarray(forest.estimators_features_[i])
            f = np.asarray(t.feature)
            is_split = f >= 0
            feat[i, :m] = np.where(is_split, fmap[np.where(is_split, f, 0)], -1)
            thr[i, :m] = t.threshold
            left[i, :m] = np.where(is_split, t.children_left, 0)
            right[i, :m] = np.where(is_split, t.children_right, 0)
            depth = np.zeros(m, dtype=np.int64)
            for node in range(m):  # parents precede children in sklearn trees
                if is_split[node]:
                    depth[t.children_left[node]] = depth[node] + 1
                    depth[t.children_right[node]] = depth[node] + 1
            depth_max = max(depth_max, int(depth.max()))
            leaf[i, :m] = depth + _avg_path_length(np.asarray(t.n_node_samples))
        self.tree_feature_ = feat
        self.tree_threshold_ = thr
        self.tree_left_ = left
        self.tree_right_ = right
        self.tree_leaf_ = leaf
        self.tree_depth_ = depth_max
        self.forest_norm_ = float(T * _avg_path_length(np.array([forest.max_samples_]))[0])

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if not hasattr(self, "forest_threshold_"):
            raise NotFittedError("QueryAnomalyDetector is not fitted: call fit() or fit_events() first")

    def _forest_scores(self, Z: np.ndarray) -> np.ndarray:
        """Isolation-forest anomaly scores in (0, 1] (sklearn's ``-score_samples``)."""
        Zf = Z.astype(np.float32).astype(np.float64)  # sklearn trees compare float32 inputs
        if Zf.shape[0] == 1:
            return self._forest_score_one(Zf[0])
        T, N = self.tree_feature_.shape
        feat, thr = self.tree_feature_.ravel(), self.tree_threshold_.ravel()
        left, right = self.tree_left_.ravel(), self.tree_right_.ravel()
        base = np.arange(T, dtype=np.int64) * N
        rows = np.arange(Zf.shape[0], dtype=np.int64)[:, None] * Zf.shape[1]
        flat_z = Zf.ravel()
        node = np.broadcast_to(base, (Zf.shape[0], T)).copy()  # flat index tree * N + node
        for _ in range(self.tree_depth_):
            f = feat[node]
            split = f >= 0
            if not split.any():
                break
            x = flat_z[rows + np.maximum(f, 0)]
            nxt = np.where(x <= thr[node], left[node], right[node])
            node = np.where(split, base + nxt, node)
        depths = self.tree_leaf_.ravel()[node].sum(axis=1)
        return np.asarray(2.0 ** (-depths / self.forest_norm_), dtype=np.float64)

    def _flat_forest(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every node of every tree in one flat array (built once from the fitted arrays, cached).

        (feature, threshold, left child, right child, leaf depth) per flat node ``tree * N + node``;
        a leaf points to itself on both sides, so walking ``tree_depth_`` steps from each root ends
        on the leaf whatever the tree's depth.
        """
        cached = getattr(self, "_flat_cache", None)
        if cached is not None and cached[0] is self.tree_feature_:
            return cached[1]
        T, N = self.tree_feature_.shape
        base = (np.arange(T, dtype=np.int64) * N)[:, None]
        own = base + np.arange(N, dtype=np.int64)[None, :]
        split = self.tree_feature_ >= 0
        feat = np.where(split, self.tree_feature_, 0).astype(np.int64).ravel()
        left = np.where(split, base + self.tree_left_, own).ravel()
        right = np.where(split, base + self.tree_right_, own).ravel()
        flat = (feat, self.tree_threshold_.ravel(), left, right, self.tree_leaf_.ravel())
        self._flat_cache = (self.tree_feature_, flat)
        return flat

    def _forest_score_one(self, z: np.ndarray) -> np.ndarray:
        """:meth:`_forest_scores` for one row (the guard scores one window at a time): all trees
        step down together, ``tree_depth_`` steps, leaves stepping onto themselves."""
        feat, thr, left, right, leaf = self._flat_forest()
        T, N = self.tree_feature_.shape
        node = np.arange(T, dtype=np.int64) * N
        for _ in range(self.tree_depth_):
            node = np.where(z[feat[node]] <= thr[node], left[node], right[node])
        depth = float(leaf[node].sum())
        return np.array([2.0 ** (-depth / self.forest_norm_)], dtype=np.float64)

    def _rule_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(feature columns, medians, signs, spans) of the rules, built once from the fitted dicts."""
        cached = getattr(self, "_rule_cache", None)
        if cached is not None and cached[0] is self.rule_thresholds_:
            return cached[1]
        cols, meds, signs, spans = [], [], [], []
        for name, (direction, _r, _f) in _RULES.items():
            med, thr = self.rule_medians_[name], self.rule_thresholds_[name]
            high = direction == "high"
            cols.append(FEATURE_NAMES.index(name))
            meds.append(med)
            signs.append(1.0 if high else -1.0)
            spans.append(max((thr - med) if high else (med - thr), 1e-9))
        arrays = (np.array(cols), np.array(meds), np.array(signs), np.array(spans))
        self._rule_cache = (self.rule_thresholds_, arrays)
        return arrays

    def _as_matrix(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != len(FEATURE_NAMES):
            raise ShapeError(f"expected features of shape (n, {len(FEATURE_NAMES)}), got {X.shape}")
        return X

    def _rule_ratios(self, X: np.ndarray) -> np.ndarray:
        cols, meds, signs, spans = self._rule_arrays()
        return np.asarray(signs * (X[:, cols] - meds) / spans, dtype=np.float64)

    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score per window: > 1.0 means anomalous (forest or at least one rule)."""
        self._check_fitted()
        X = self._as_matrix(X)
        forest = self._forest_scores((X - self.center_) / self.scale_) / self.forest_threshold_
        rules = self._rule_ratios(X).max(axis=1)
        return np.asarray(np.maximum(forest, rules), dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 for anomalous windows, 0 for normal ones."""
        return (self.score(X) > 1.0).astype(np.int64)

    def explain(self, x: np.ndarray) -> list[str]:
        """Human-readable reasons a single window is anomalous (empty if it is not)."""
        self._check_fitted()
        X = self._as_matrix(x)[:1]
        reasons = [
            f"{reason} ({name}={X[0, FEATURE_NAMES.index(name)]:.3g})"
            for ratio, (name, (_d, reason, _f)) in zip(self._rule_ratios(X)[0], _RULES.items(), strict=False)
            if ratio > 1.0
        ]
        forest = float(self._forest_scores((X - self.center_) / self.scale_)[0]) / self.forest_threshold_
        if forest > 1.0:
            z = np.abs((X[0] - self.center_) / self.scale_)
            top = [FEATURE_NAMES[i] for i in np.argsort(-z)[:3]]
            reasons.append(
                f"unusual combination of behaviour (isolation forest; most unusual: {', '.join(top)})"
            )
        return reasons

    def profile_for(self, principal: str) -> np.ndarray:
        """The principal's learned hour profile (or the store-wide one for new principals)."""
        self._check_fitted()
        return self.profiles_.get(principal, self.global_profile_)

    # ------------------------------------------------------------------ persistence
    _ARRAYS = (
        "center_",
        "scale_",
        "tree_feature_",
        "tree_threshold_",
        "tree_left_",
        "tree_right_",
        "tree_leaf_",
        "global_profile_",
    )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted detector to ``path`` (.npz with a JSON header; no pickle), atomically."""
        atomic_write(Path(path), self.to_bytes())

    def to_bytes(self) -> bytes:
        """The fitted detector as .npz bytes (what :meth:`save` writes; a store seals them)."""
        self._check_fitted()
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        meta = {
            "format": _FORMAT,
            "params": self.get_params(),
            "features": list(FEATURE_NAMES),
            "forest_threshold": self.forest_threshold_,
            "forest_norm": self.forest_norm_,
            "tree_depth": self.tree_depth_,
            "rule_thresholds": self.rule_thresholds_,
            "rule_medians": self.rule_medians_,
            "profiles": {p: v.tolist() for p, v in self.profiles_.items()},
            "store_id": self.store_id_,
            "n_windows": self.n_windows_,
            "digest": _digest(arrays),
        }
        buf = io.BytesIO()
        np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8), **arrays)
        return buf.getvalue()

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, store_id: str | None = None) -> QueryAnomalyDetector:
        """Read a detector; with ``store_id``, refuse one fitted for another store (MonitorError)."""
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise MonitorError(f"no fitted detector at {path}: run `securecmr monitor fit` first") from None
        return cls.from_bytes(data, store_id=store_id, name=str(path))

    @classmethod
    def from_bytes(
        cls, data: bytes, *, store_id: str | None = None, name: str = "the detector"
    ) -> QueryAnomalyDetector:
        """:meth:`load` from the bytes :meth:`to_bytes` made."""
        path = name
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode("utf-8"))
                arrays = {name: np.array(z[name]) for name in cls._ARRAYS}
        except (OSError, ValueError, KeyError, UnicodeDecodeError, EOFError) as exc:
            raise SerializationError(
                f"{path} is not a readable detector file ({type(exc).__name__})"
            ) from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise SerializationError(f"{path}: unknown detector format")
        if meta.get("digest") != _digest(arrays) or meta.get("features") != list(FEATURE_NAMES):
            raise SerializationError(f"{path}: detector file is corrupt or from an incompatible version")
        if store_id is not None and meta.get("store_id") != store_id:
            raise MonitorError(
                f"{path} was fitted on another store; refit it for this one (`securecmr monitor fit`)"
            )
        det = cls(**meta["params"])
        for name, arr in arrays.items():
            setattr(det, name, arr)
        det.forest_threshold_ = float(meta["forest_threshold"])
        det.forest_norm_ = float(meta["forest_norm"])
        det.tree_depth_ = int(meta["tree_depth"])
        det.rule_thresholds_ = {str(k): float(v) for k, v in meta["rule_thresholds"].items()}
        det.rule_medians_ = {str(k): float(v) for k, v in meta["rule_medians"].items()}
        det.profiles_ = {str(p): np.asarray(v, dtype=np.float64) for p, v in meta["profiles"].items()}
        det.store_id_ = meta["store_id"]
        det.n_windows_ = int(meta["n_windows"])
        det.n_features_in_ = len(FEATURE_NAMES)
        return det

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {
            "window": self.window,
            "stride": self.stride,
            "min_events": self.min_events,
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "forest_quantile": self.forest_quantile,
            "forest_margin": self.forest_margin,
            "rule_quantile": self.rule_quantile,
            "rule_margin": self.rule_margin,
            "min_windows": self.min_windows,
            "random_state": self.random_state,
        }

    def set_params(self, **params: Any) -> QueryAnomalyDetector:
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise MonitorError(f"unknown parameter {key!r}")
            setattr(self, key, value)
        return self


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()


def _group(events: Sequence[QueryEvent] | Mapping[str, Sequence[QueryEvent]]) -> dict[str, list[QueryEvent]]:
    if isinstance(events, Mapping):
        return {str(p): sorted(evs, key=lambda e: e.time) for p, evs in events.items() if evs}
    out: dict[str, list[QueryEvent]] = {}
    for ev in events:
        out.setdefault(ev.principal, []).append(ev)
    return {p: sorted(evs, key=lambda e: e.time) for p, evs in out.items()}

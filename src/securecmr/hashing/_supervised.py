"""``supervised``: two-step label-embedding hashing with kernel hash functions.

Step 1 (target codes): every class gets a hash centre, a row of a Hadamard matrix (pairwise
Hamming distance ``bits / 2``; the hash centres of Central Similarity Quantization, Yuan et al.,
CVPR 2020); an item's target code is the sign of the sum of its labels' centres (multi-label: the
label-embedding codes of SePH / LCMFH-style methods). These are the learned database codes
(``train_codes_``) of the ``learned-db`` protocol.

Step 2 (hash functions, as in two-step hashing, Lin et al., ICCV 2013): per modality, RBF kernel
features on anchor points (the kernel trick of SePH / KSH; signed square root first for histogram
features) and a softmax (single-label) or sigmoid (multi-label) logistic regression trained with
torch L-BFGS; the hash function is ``sign(p(labels | x) @ centres)``, so the Hamming distance to each
class centre follows the predicted class probabilities. The L2 strength is picked on a held-out
fifth of the training rows when ``reg="auto"``.

Semi-supervised: rows without labels (``-1`` ids or all-zero multi-hot rows) are pseudo-labelled by
the average of both modalities' classifiers when it is confident (``>= pseudo_threshold``) and the
classifiers are refitted once; their learned codes come from the average prediction.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigurationError, InputError
from ._base import BaseHasher, pack_signs
from ._heads import KernelHead, signed_sqrt
from ._linalg import hash_centres, rbf_features, rbf_gamma
from ._train import KernelClassifier, fit_classifier
from ._validation import check_labels, labelled_mask

__all__ = ["SupervisedHasher", "fit_kernel_classifier"]

_REG_GRID = (1e-5, 1e-4, 1e-3)


def _auto_sqrt(flag: bool | str, x: np.ndarray) -> bool:
    if flag == "auto":
        return bool((x >= 0).all())
    return bool(flag)


def _held_out_score(p: np.ndarray, y: np.ndarray) -> float:
    """Mean reciprocal rank of the first true label (what the Hamming ranking follows)."""
    true_score = np.where(y > 0, p, -np.inf).max(axis=1)
    rank = (p > true_score[:, None]).sum(axis=1) + 1
    return float(np.mean(1.0 / rank))


def fit_kernel_classifier(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_anchors: int,
    sqrt: bool,
    multilabel: bool,
    reg: float | str,
    max_iter: int,
    seed: int,
) -> KernelClassifier:
    """RBF anchor features + (multi-label) logistic regression; ``reg="auto"`` picks the L2 strength on
    a held-out fifth of the rows."""
    rng = np.random.default_rng(seed)
    z = signed_sqrt(x) if sqrt else x
    anchors = z[rng.choice(len(z), size=min(n_anchors, len(z)), replace=False)]
    gamma = rbf_gamma(z, anchors)
    k = rbf_features(z, anchors, gamma)
    if reg == "auto":
        order = rng.permutation(len(z))
        n_val = max(len(z) // 5, 1)
        val, tr = order[:n_val], order[n_val:]
        scores = []
        for r in _REG_GRID:
            w, b = fit_classifier(k[tr], y[tr], multilabel=multilabel, reg=r, max_iter=max_iter, seed=seed)
            clf = KernelClassifier(anchors, gamma, w, b, False, multilabel)
            scores.append(_held_out_score(clf.probs(z[val]), y[val]))
        reg_value = _REG_GRID[int(np.argmax(scores))]
    else:
        reg_value = float(reg)
    w, b = fit_classifier(k, y, multilabel=multilabel, reg=reg_value, max_iter=max_iter, seed=seed)
    clf = KernelClassifier(anchors, gamma, w, b, sqrt, multilabel)
    clf.reg_ = reg_value  # type: ignore[attr-defined]
    return clf


def kernel_head(clf: KernelClassifier, centres: np.ndarray) -> KernelHead:
    return KernelHead.build(
        anchors=clf.anchors,
        gamma=clf.gamma,
        w1=clf.weight,
        b1=clf.bias,
        activation="sigmoid" if clf.multilabel else "softmax",
        w2=centres,
        b2=np.zeros(centres.shape[1]),
        sqrt=clf.sqrt,
    )


class SupervisedHasher(BaseHasher):
    """Supervised (and semi-supervised) cross-modal hashing; see the module docstring.

    Parameters: ``bits``; ``anchors`` (RBF anchor points per modality, default 1000); ``reg`` (L2
    strength or ``"auto"``); ``sqrt`` (signed square root of inputs: ``"auto"`` = for non-negative
    features such as histograms); ``max_iter`` (L-BFGS iterations); ``pseudo_threshold``
    (semi-supervised confidence); ``seed``.

    Fitted attributes: ``image_dim_``, ``text_dim_``, ``centres_`` (±1, one row per label),
    ``train_codes_`` (packed learned codes of the training pairs), ``reg_image_``, ``reg_text_``.
    """

    method: ClassVar[str] = "supervised"
    _param_names: ClassVar[tuple[str, ...]] = (
        "bits",
        "anchors",
        "reg",
        "sqrt",
        "max_iter",
        "pseudo_threshold",
        "seed",
    )
    _fitted_arrays: ClassVar[tuple[str, ...]] = ("centres_", "train_codes_")

    def __init__(
        self,
        bits: int = 64,
        *,
        anchors: int = 1000,
        reg: float | str = "auto",
        sqrt: bool | str = "auto",
        max_iter: int = 100,
        pseudo_threshold: float = 0.6,
        seed: int = 0,
    ) -> None:
        self.bits = bits
        self.anchors = anchors
        self.reg = reg
        self.sqrt = sqrt
        self.max_iter = max_iter
        self.pseudo_threshold = pseudo_threshold
        self.seed = seed

    def _check_params(self) -> None:
        if not isinstance(self.anchors, int) or self.anchors < 2:
            raise ConfigurationError(f"anchors must be an integer >= 2, got {self.anchors!r}")
        if self.reg != "auto" and (not isinstance(self.reg, int | float) or self.reg < 0):
            raise ConfigurationError(f"reg must be a non-negative number or 'auto', got {self.reg!r}")
        if not 0.0 < float(self.pseudo_threshold) <= 1.0:
            raise ConfigurationError("pseudo_threshold must be in (0, 1]")

    def fit(self, image_features: Any, text_features: Any, labels: Any = None) -> SupervisedHasher:
        """Fit on aligned pairs with labels: (n,) class ids or (n, L) multi-hot; rows with id < 0 or an
        all-zero multi-hot row are unlabelled (semi-supervised)."""
        x, t = self._check_pair(image_features, text_features)
        self._check_params()
        if labels is None:
            raise InputError("the supervised hasher needs labels; use method='unsupervised' for pairs only")
        y = check_labels(labels, x.shape[0])
        self._fit_labelled(x, t, y)
        return self

    def _fit_labelled(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        mask = labelled_mask(y)
        present = y[mask].sum(axis=0) > 0
        if int(present.sum()) < 2 or int(mask.sum()) < 2:
            raise InputError("supervised fit needs labelled rows from at least two classes")
        y = y[:, present]
        multilabel = bool((y.sum(axis=1) > 1).any())
        common = {
            "n_anchors": int(self.anchors),
            "multilabel": multilabel,
            "reg": self.reg,
            "max_iter": int(self.max_iter),
            "seed": int(self.seed),
        }
        sx, st = _auto_sqrt(self.sqrt, x), _auto_sqrt(self.sqrt, t)
        clf_x = fit_kernel_classifier(x[mask], y[mask], sqrt=sx, **common)  # type: ignore[arg-type]
        clf_t = fit_kernel_classifier(t[mask], y[mask], sqrt=st, **common)  # type: ignore[arg-type]
        soft = np.zeros_like(y)
        if not mask.all():
            soft = 0.5 * (clf_x.probs(x[~mask]) + clf_t.probs(t[~mask]))
            if multilabel:
                pseudo = (soft >= self.pseudo_threshold).astype(np.float64)
            else:
                pseudo = np.zeros_like(soft)
                best = soft.argmax(axis=1)
                confident = soft.max(axis=1) >= self.pseudo_threshold
                pseudo[np.nonzero(confident)[0], best[confident]] = 1.0
            keep = pseudo.sum(axis=1) > 0
            if keep.any():
                rows = np.concatenate([np.nonzero(mask)[0], np.nonzero(~mask)[0][keep]])
                y_aug = np.vstack([y[mask], pseudo[keep]])
                clf_x = fit_kernel_classifier(x[rows], y_aug, sqrt=sx, **common)  # type: ignore[arg-type]
                clf_t = fit_kernel_classifier(t[rows], y_aug, sqrt=st, **common)  # type: ignore[arg-type]
                soft = 0.5 * (clf_x.probs(x[~mask]) + clf_t.probs(t[~mask]))
        centres = hash_centres(y.shape[1], int(self.bits), int(self.seed))
        target = y @ centres
        if not mask.all():
            target[~mask] = soft @ centres
        self.centres_ = centres
        self.train_codes_ = pack_signs(target)
        self.reg_image_ = float(clf_x.reg_)  # type: ignore[attr-defined]
        self.reg_text_ = float(clf_t.reg_)  # type: ignore[attr-defined]
        self.image_dim_, self.text_dim_ = x.shape[1], t.shape[1]
        self.image_head_ = kernel_head(clf_x, centres)
        self.text_head_ = kernel_head(clf_t, centres)

"""``supervised``: two-step label-embedding hashing with kernel hash functions.

Step 1 (target codes, the learned database codes ``train_codes_`` of the ``learned-db`` protocol):
every class gets a fixed binary code and an item's target code follows its labels, so the Hamming
ranking of the database is a ranking of classes. Two codings (``code="auto"`` picks ``rank`` for
single-label data when ``bits >= number of classes``, else ``centres``):

* ``rank``: bit ``(level k, class c)`` is "class c is among the top k + 1 classes"; a class's code is
  its indicator repeated at every level. The Hamming distance from a query's code to the code of
  class ``c`` then falls with the rank of ``c`` in the query's class scores (exactly, for the
  ``bits // C`` levels the code holds), so longer codes carry more of the class ranking. This is
  label-embedding hashing in the line of SePH (Lin et al., CVPR 2015) and of discrete latent-factor
  methods (DLFH, Jiang & Li, TIP 2019), with the embedding fixed by the label ranking instead of
  learned.
  With ``confidence > 0`` that fraction of the bits (whole blocks of one bit per class) become
  confidence bits "the score of class c exceeds t" (t cycling 0.5, 0.25, 0.75, 0.9): a class's code
  has them set for its own class only, so learned codes keep the ranking property, while codes
  computed by the hash functions also order database items by how sure the classifier is (useful
  when database codes come from the hash functions; chosen on a dev split by ``securecmr eval``).
* ``centres``: hash centres, seeded rows of a Hadamard matrix (pairwise distance ``bits / 2``; Central
  Similarity Quantization, Yuan et al., CVPR 2020); an item's code is the sign of the sum of its
  labels' centres (multi-label).

Step 2 (hash functions, as in two-step hashing, Lin et al., ICCV 2013): per modality, RBF kernel
features on anchor points (the kernel trick of SePH / KSH; signed square root first for histogram
features) and a softmax (single-label) or sigmoid (multi-label) logistic regression trained with
torch L-BFGS; the hash function is the class ranking (``rank``) or ``sign(p(labels | x) @ centres)``
(``centres``) of the predicted scores. The L2 strength and the kernel width are picked on a held-out
fifth of the training rows when ``reg="auto"`` / ``gamma="auto"`` (score: mean reciprocal rank of the
true class, which is what the Hamming ranking follows). The heads are ONNX graphs (no torch at
encode time).

Never worse than the plain baseline (``head="auto"``, ``code="auto"``): besides the kernel
classifier, each modality may use a *linear* multinomial (or multi-label) logistic regression on its
standardised (signed-square-rooted) features, and besides the rank code the hash centres (for
single-label data that is the classic baseline "logistic regression per modality + a class codebook
+ sign"). A fifth of the labelled pairs is held apart, every combination (image head, text head,
coding) is fitted on the rest and scored by the mean cross-modal MAP of the held-apart queries
against the rest (codes from the hash functions, as deployed), and the best is refitted on all
labelled rows with the regularisation it picked. The scores are kept in ``validation_``.

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
from ._linalg import confidence_layout, hash_centres, rank_code, rank_layout, rbf_features, rbf_gamma
from ._train import KernelClassifier, fit_classifier
from ._validation import check_kernel_head_params, check_labels, labelled_mask

__all__ = ["SupervisedHasher", "fit_kernel_classifier"]

_REG_GRID = (1e-5, 1e-4, 1e-3)
_LINEAR_REG_GRID = (1e-4, 1e-3, 1e-2)
_GAMMA_GRID = (0.5, 1.0, 2.0, 4.0)
_CODES = ("auto", "rank", "centres")
_HEADS = ("auto", "kernel", "linear")
_MIN_SELECT_ROWS = 40  # fewer labelled pairs than this: no held-apart selection (kernel head, auto code)


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
    gamma: float | str = 1.0,
    score: str = "mrr",
) -> KernelClassifier:
    """RBF anchor features + (multi-label) logistic regression. ``gamma`` scales the kernel width
    heuristic (``1 / mean squared distance``); ``reg="auto"`` / ``gamma="auto"`` pick the L2 strength /
    the scale on a held-out fifth of the rows, by the mean reciprocal rank of the true class
    (``score="mrr"``) or the fraction of target bits predicted right (``score="bits"``, for
    multi-label 0/1 targets that are code bits)."""
    rng = np.random.default_rng(seed)
    z = signed_sqrt(x) if sqrt else x
    anchors = z[rng.choice(len(z), size=min(n_anchors, len(z)), replace=False)]
    base_gamma = rbf_gamma(z, anchors)
    regs = _REG_GRID if reg == "auto" else (float(reg),)
    scales = _GAMMA_GRID if gamma == "auto" else (float(gamma),)
    reg_value, scale = regs[0], scales[0]
    if len(regs) * len(scales) > 1:
        order = rng.permutation(len(z))
        n_val = max(len(z) // 5, 1)
        val, tr = order[:n_val], order[n_val:]
        best = -1.0
        for sc in scales:
            k = rbf_features(z, anchors, base_gamma * sc)
            for r in regs:
                w, b = fit_classifier(
                    k[tr], y[tr], multilabel=multilabel, reg=r, max_iter=max_iter, seed=seed
                )
                logits = k[val] @ w + b
                if score == "bits":
                    value = float(np.mean((logits > 0) == (y[val] > 0.5)))
                else:
                    value = _held_out_score(logits, y[val])
                if value > best:
                    best, reg_value, scale = value, r, sc
    k = rbf_features(z, anchors, base_gamma * scale)
    w, b = fit_classifier(k, y, multilabel=multilabel, reg=reg_value, max_iter=max_iter, seed=seed)
    clf = KernelClassifier(anchors, base_gamma * scale, w, b, sqrt, multilabel)
    clf.reg_ = reg_value  # type: ignore[attr-defined]
    clf.gamma_scale_ = scale  # type: ignore[attr-defined]
    return clf


def fit_linear_classifier(
    x: np.ndarray,
    y: np.ndarray,
    *,
    sqrt: bool,
    multilabel: bool,
    reg: float | str,
    max_iter: int,
    seed: int,
) -> KernelClassifier:
    """(Multi-label) logistic regression on the standardised inputs (after the signed square root
    when ``sqrt``), the standardisation folded into the weights; ``reg="auto"`` picks the L2
    strength on a held-out fifth of the rows by the mean reciprocal rank of the true class."""
    z = signed_sqrt(x) if sqrt else x
    mu = z.mean(axis=0)
    sd = z.std(axis=0) + 1e-6
    zs = (z - mu) / sd
    regs = _LINEAR_REG_GRID if reg == "auto" else (float(reg),)
    reg_value = regs[0]
    if len(regs) > 1:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(zs))
        n_val = max(len(zs) // 5, 1)
        val, tr = order[:n_val], order[n_val:]
        best = -1.0
        for r in regs:
            w, b = fit_classifier(zs[tr], y[tr], multilabel=multilabel, reg=r, max_iter=max_iter, seed=seed)
            value = _held_out_score(zs[val] @ w + b, y[val])
            if value > best:
                best, reg_value = value, r
    w, b = fit_classifier(zs, y, multilabel=multilabel, reg=reg_value, max_iter=max_iter, seed=seed)
    weight = w / sd[:, None]
    clf = KernelClassifier(None, 0.0, weight, b - (mu / sd) @ w, sqrt, multilabel)
    clf.reg_ = reg_value  # type: ignore[attr-defined]
    clf.gamma_scale_ = 0.0  # type: ignore[attr-defined]
    return clf


def _fit_head(
    kind: str, x: np.ndarray, y: np.ndarray, *, sqrt: bool, common: dict[str, Any]
) -> KernelClassifier:
    if kind == "linear":
        return fit_linear_classifier(
            x,
            y,
            sqrt=sqrt,
            multilabel=common["multilabel"],
            reg=common["reg"],
            max_iter=common["max_iter"],
            seed=common["seed"],
        )
    return fit_kernel_classifier(x, y, sqrt=sqrt, **common)


def kernel_head(
    clf: KernelClassifier,
    centres: np.ndarray | None,
    rank: tuple[np.ndarray, np.ndarray] | None = None,
    conf: tuple[np.ndarray, np.ndarray] | None = None,
) -> KernelHead:
    """The ONNX hash function: the class ranking (``rank = (classes, levels)``, plus confidence bits
    ``conf = (classes, thresholds)``) or ``p @ centres``."""
    if rank is not None:
        classes, levels = rank
        return KernelHead.build(
            anchors=clf.anchors,
            gamma=clf.gamma,
            w1=clf.weight,
            b1=clf.bias,
            activation="rank",
            w2=np.zeros((clf.weight.shape[1], len(classes))),
            b2=levels + 0.5,
            sqrt=clf.sqrt,
            rank_classes=classes,
            conf_classes=None if conf is None else conf[0],
            conf_thresholds=None if conf is None else conf[1],
        )
    if centres is None:
        raise ValueError("kernel_head needs centres or a rank layout")
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
    strength or ``"auto"``); ``gamma`` (kernel width scale or ``"auto"``); ``sqrt`` (signed square root
    of inputs: ``"auto"`` = for non-negative features such as histograms); ``max_iter`` (L-BFGS
    iterations); ``pseudo_threshold`` (semi-supervised confidence); ``code`` (``"auto"``, ``"rank"``
    or ``"centres"``); ``seed``.

    Fitted attributes: ``image_dim_``, ``text_dim_``, ``code_`` (the coding used), ``centres_`` (±1,
    one row per label), ``rank_classes_`` / ``rank_levels_`` (the rank-code layout), ``train_codes_``
    (packed learned codes of the training pairs), ``reg_image_``, ``reg_text_``.
    """

    method: ClassVar[str] = "supervised"
    _param_names: ClassVar[tuple[str, ...]] = (
        "bits",
        "anchors",
        "reg",
        "gamma",
        "sqrt",
        "max_iter",
        "pseudo_threshold",
        "code",
        "confidence",
        "head",
        "seed",
    )
    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        "centres_",
        "rank_classes_",
        "rank_levels_",
        "conf_classes_",
        "conf_thresholds_",
        "train_codes_",
    )

    def __init__(
        self,
        bits: int = 64,
        *,
        anchors: int = 1000,
        reg: float | str = "auto",
        gamma: float | str = "auto",
        sqrt: bool | str = "auto",
        max_iter: int = 100,
        pseudo_threshold: float = 0.6,
        code: str = "auto",
        confidence: float = 0.0,
        head: str = "auto",
        seed: int = 0,
    ) -> None:
        self.bits = bits
        self.anchors = anchors
        self.reg = reg
        self.gamma = gamma
        self.sqrt = sqrt
        self.max_iter = max_iter
        self.pseudo_threshold = pseudo_threshold
        self.code = code
        self.confidence = confidence
        self.head = head
        self.seed = seed

    def _check_params(self) -> None:
        check_kernel_head_params(self)
        if not 0.0 < float(self.pseudo_threshold) <= 1.0:
            raise ConfigurationError("pseudo_threshold must be in (0, 1]")
        if (
            isinstance(self.confidence, bool)
            or not isinstance(self.confidence, int | float)
            or not 0.0 <= self.confidence < 1.0
        ):
            raise ConfigurationError(f"confidence must be a fraction in [0, 1), got {self.confidence!r}")
        if self.code not in _CODES:
            raise ConfigurationError(f"code must be one of {', '.join(_CODES)}, got {self.code!r}")
        if self.head not in _HEADS:
            raise ConfigurationError(f"head must be one of {', '.join(_HEADS)}, got {self.head!r}")

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

    def _extra_state(self) -> dict[str, Any]:
        return {
            "code": self.code_,
            "heads": [self.head_image_, self.head_text_],
            "validation": self.validation_,
        }

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.code_ = str(extra["code"])
        heads = extra.get("heads") or ["kernel", "kernel"]  # files written before the linear heads
        self.head_image_, self.head_text_ = str(heads[0]), str(heads[1])
        self.validation_ = dict(extra.get("validation") or {})

    def _layout(
        self, code: str, counts: np.ndarray, n_classes: int
    ) -> tuple[tuple[np.ndarray, np.ndarray] | None, tuple[np.ndarray, np.ndarray] | None]:
        """(rank layout, confidence layout) of a coding (both None for ``centres``)."""
        if code != "rank":
            return None, None
        bits = int(self.bits)
        n_conf = min(round(bits * float(self.confidence) / n_classes) * n_classes, bits - n_classes)
        conf = confidence_layout(counts, n_conf) if n_conf > 0 else None
        return rank_layout(counts, bits - n_conf), conf

    def _select(
        self,
        x: np.ndarray,
        t: np.ndarray,
        y: np.ndarray,
        mask: np.ndarray,
        codes: tuple[str, ...],
        kinds: tuple[str, ...],
        common: dict[str, Any],
        sqrts: tuple[bool, bool],
    ) -> tuple[str, str, str, dict[str, Any], dict[str, float]]:
        """Hold a fifth of the labelled pairs apart, fit every head kind per modality on the rest and
        score every (image head, text head, coding) by the mean cross-modal MAP of the held-apart
        queries against the rest. Returns (image kind, text kind, code, fitted regs, scores)."""
        from ..eval._metrics import mean_average_precision

        lab = np.flatnonzero(mask)
        order = np.random.default_rng(int(self.seed) + 1).permutation(lab.size)
        n_val = max(lab.size // 5, 1)
        val, trn = lab[order[:n_val]], lab[order[n_val:]]
        probs: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        picked: dict[str, Any] = {}
        for side, feats, sq in (("image", x, sqrts[0]), ("text", t, sqrts[1])):
            for kind in kinds:
                clf = _fit_head(kind, feats[trn], y[trn], sqrt=sq, common=common)
                probs[(side, kind)] = (clf.probs(feats[trn]), clf.probs(feats[val]))
                picked[f"{side}/{kind}"] = (float(clf.reg_), float(clf.gamma_scale_))  # type: ignore[attr-defined]
        counts = y[trn].sum(axis=0)
        centres = hash_centres(y.shape[1], int(self.bits), int(self.seed))
        scores: dict[str, float] = {}
        best: tuple[float, str, str, str] = (-1.0, kinds[0], kinds[0], codes[0])
        for code in codes:
            layout, conf = self._layout(code, counts, y.shape[1])

            def pack(p: np.ndarray, layout: Any = layout, conf: Any = conf) -> np.ndarray:
                if layout is None:
                    return pack_signs(p @ centres)
                v = rank_code(p, *layout)
                if conf is not None:
                    v = np.hstack([v, p[:, conf[0]] - conf[1][None, :]])
                return pack_signs(v)

            for ki in kinds:
                for kt in kinds:
                    (pi_tr, pi_val), (pt_tr, pt_val) = probs[("image", ki)], probs[("text", kt)]
                    score = 0.5 * (
                        mean_average_precision(pack(pi_val), pack(pt_tr), y[val], y[trn])
                        + mean_average_precision(pack(pt_val), pack(pi_tr), y[val], y[trn])
                    )
                    scores[f"{ki}/{kt}/{code}"] = round(float(score), 6)
                    if score > best[0] + 1e-9:
                        best = (score, ki, kt, code)
        return best[1], best[2], best[3], picked, scores

    def _fit_labelled(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        mask = labelled_mask(y)
        present = y[mask].sum(axis=0) > 0
        if int(present.sum()) < 2 or int(mask.sum()) < 2:
            raise InputError("supervised fit needs labelled rows from at least two classes")
        y = y[:, present]
        multilabel = bool((y.sum(axis=1) > 1).any())
        n_classes, bits = y.shape[1], int(self.bits)
        code = self.code
        if code == "auto":
            code = "rank" if not multilabel and bits >= n_classes else "centres"
        if code == "rank" and multilabel:
            raise ConfigurationError(
                "code='rank' needs single-label data; use code='centres' for multi-label"
            )
        if code == "rank" and bits < n_classes:
            raise ConfigurationError(
                f"code='rank' needs at least one bit per class ({n_classes} classes, {bits} bits)"
            )
        common = {
            "n_anchors": int(self.anchors),
            "multilabel": multilabel,
            "reg": self.reg,
            "gamma": self.gamma,
            "max_iter": int(self.max_iter),
            "seed": int(self.seed),
        }
        sx, st = _auto_sqrt(self.sqrt, x), _auto_sqrt(self.sqrt, t)
        kinds = ("kernel", "linear") if self.head == "auto" else (str(self.head),)
        codes: tuple[str, ...] = (code,)
        if self.code == "auto" and code == "rank":
            codes = ("rank", "centres")
        kind_x = kind_t = kinds[0]
        self.validation_ = {}
        if len(kinds) * len(codes) > 1 and int(mask.sum()) >= _MIN_SELECT_ROWS:
            kind_x, kind_t, code, picked, self.validation_ = self._select(
                x, t, y, mask, codes, kinds, common, (sx, st)
            )
            # refit on every labelled row with the regularisation the held-apart fit picked
            reg_x, gamma_x = picked[f"image/{kind_x}"]
            reg_t, gamma_t = picked[f"text/{kind_t}"]
            common_x = {**common, "reg": reg_x, "gamma": gamma_x or 1.0}
            common_t = {**common, "reg": reg_t, "gamma": gamma_t or 1.0}
        elif self.head == "auto":
            kind_x = kind_t = "kernel"
            common_x = common_t = common
        else:
            common_x = common_t = common
        clf_x = _fit_head(kind_x, x[mask], y[mask], sqrt=sx, common=common_x)
        clf_t = _fit_head(kind_t, t[mask], y[mask], sqrt=st, common=common_t)
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
                clf_x = _fit_head(kind_x, x[rows], y_aug, sqrt=sx, common=common_x)
                clf_t = _fit_head(kind_t, t[rows], y_aug, sqrt=st, common=common_t)
                soft = 0.5 * (clf_x.probs(x[~mask]) + clf_t.probs(t[~mask]))
        centres = hash_centres(n_classes, bits, int(self.seed))
        conf: tuple[np.ndarray, np.ndarray] | None = None
        if code == "rank":
            counts = y[mask].sum(axis=0)
            rank_lay, conf = self._layout(code, counts, n_classes)
            if rank_lay is None:  # pragma: no cover - _layout gives one for "rank"
                raise ConfigurationError("no rank layout")
            classes, levels = rank_lay
            target = y[:, classes] - 0.5
            if not mask.all():
                target[~mask] = rank_code(soft, classes, levels)
            if conf is not None:
                extra = y[:, conf[0]] - conf[1][None, :]
                if not mask.all():
                    extra[~mask] = soft[:, conf[0]] - conf[1][None, :]
                target = np.hstack([target, extra])
                self.conf_classes_, self.conf_thresholds_ = conf
            layout: tuple[np.ndarray, np.ndarray] | None = (classes, levels)
            self.rank_classes_, self.rank_levels_ = classes, levels
        else:
            target = y @ centres
            if not mask.all():
                target[~mask] = soft @ centres
            layout = None
            for stale in ("rank_classes_", "rank_levels_"):
                if hasattr(self, stale):
                    delattr(self, stale)
        self.code_ = code
        self.head_image_, self.head_text_ = kind_x, kind_t
        self.centres_ = centres
        self.train_codes_ = pack_signs(target)
        self.reg_image_ = float(clf_x.reg_)  # type: ignore[attr-defined]
        self.reg_text_ = float(clf_t.reg_)  # type: ignore[attr-defined]
        self.image_dim_, self.text_dim_ = x.shape[1], t.shape[1]
        if conf is None:
            for stale in ("conf_classes_", "conf_thresholds_"):
                if hasattr(self, stale):
                    delattr(self, stale)
        self.image_head_ = kernel_head(clf_x, centres, layout, conf)
        self.text_head_ = kernel_head(clf_t, centres, layout, conf)

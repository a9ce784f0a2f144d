"""``unsupervised``: pairs only, no labels.

Teacher-student two-step hashing. Unsupervised cross-modal hashing methods build a semantic
structure from the pairs and teach it to both modalities' hash functions (DJSRH, Su et al., ICCV
2019; JDSH, Liu et al., SIGIR 2020; the teacher-student distillation of UKD, Hu et al., CVPR 2020).
Here the teacher is the side that carries the semantics in caption data, the text:

1. Target codes (the learned codes ``train_codes_`` of the ``learned-db`` protocol): PCA to ``bits``
   dimensions and iterative quantisation (ITQ, Gong & Lazebnik, CVPR 2011) of the teacher
   modality's features (signed square root first for histograms / topic proportions). Extra bits
   beyond the rank of the features are seeded random combinations of the principal directions.
2. Hash functions (two-step hashing, Lin et al., ICCV 2013): per modality, RBF kernel features on
   anchor points and one logistic regression per bit (torch L-BFGS) predicting the target bit from
   that modality's features alone; the code is the sign of the logits. Both modalities learn the
   same targets, so a caption and its image land on nearby codes. The L2 strength and kernel width
   are picked on a held-out fifth of the rows by the fraction of target bits predicted right (no
   labels are used anywhere).

``teacher="image"`` uses the image side instead (for data whose text is poor).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigurationError
from ._base import BaseHasher, pack_signs
from ._heads import KernelHead, signed_sqrt
from ._linalg import expand, itq_rotation
from ._supervised import _auto_sqrt, fit_kernel_classifier
from ._validation import check_kernel_head_params

__all__ = ["UnsupervisedHasher"]


class UnsupervisedHasher(BaseHasher):
    """Parameters: ``bits``; ``anchors`` (RBF anchor points per modality, default 1000); ``reg`` (L2
    strength or ``"auto"``); ``gamma`` (kernel width scale or ``"auto"``); ``sqrt`` (signed square
    root of the inputs; ``"auto"`` = for non-negative features); ``max_iter`` (L-BFGS iterations);
    ``teacher`` (``"text"`` or ``"image"``: whose structure the codes follow); ``itq_iters``; ``seed``.

    Fitted attributes: ``image_dim_``, ``text_dim_``, ``train_codes_`` (packed target codes of the
    training pairs), ``reg_image_``, ``reg_text_``.
    """

    method: ClassVar[str] = "unsupervised"
    _param_names: ClassVar[tuple[str, ...]] = (
        "bits",
        "anchors",
        "reg",
        "gamma",
        "sqrt",
        "max_iter",
        "teacher",
        "itq_iters",
        "seed",
    )
    _fitted_arrays: ClassVar[tuple[str, ...]] = ("train_codes_",)

    def __init__(
        self,
        bits: int = 64,
        *,
        anchors: int = 1000,
        reg: float | str = "auto",
        gamma: float | str = "auto",
        sqrt: bool | str = "auto",
        max_iter: int = 100,
        teacher: str = "text",
        itq_iters: int = 50,
        seed: int = 0,
    ) -> None:
        self.bits = bits
        self.anchors = anchors
        self.reg = reg
        self.gamma = gamma
        self.sqrt = sqrt
        self.max_iter = max_iter
        self.teacher = teacher
        self.itq_iters = itq_iters
        self.seed = seed

    def _check_params(self) -> None:
        check_kernel_head_params(self, positive_ints=("max_iter", "itq_iters"))
        if self.teacher not in ("text", "image"):
            raise ConfigurationError(f"teacher must be 'text' or 'image', got {self.teacher!r}")

    def _targets(self, z: np.ndarray) -> np.ndarray:
        """PCA-ITQ projections of the teacher features: (n, bits), the code bit is ``> 0``."""
        bits = int(self.bits)
        centred = z - z.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        rank = int(max((s > s[0] * 1e-8).sum(), 1)) if s.size and s[0] > 0 else 1
        pcs = vt[: min(bits, rank)].T
        weight = pcs @ expand(pcs.shape[1], bits, int(self.seed))
        v = centred @ weight
        return np.asarray(v @ itq_rotation(v, int(self.itq_iters), int(self.seed)))

    def fit(self, image_features: Any, text_features: Any, labels: Any = None) -> UnsupervisedHasher:
        """Fit on aligned pairs; ``labels`` are ignored."""
        x, t = self._check_pair(image_features, text_features, min_rows=3)
        self._check_params()
        sx, st = _auto_sqrt(self.sqrt, x), _auto_sqrt(self.sqrt, t)
        src, s_src = (t, st) if self.teacher == "text" else (x, sx)
        v = self._targets(signed_sqrt(src) if s_src else src)
        targets = (v > 0).astype(np.float64)
        common = {
            "n_anchors": int(self.anchors),
            "multilabel": True,
            "reg": self.reg,
            "gamma": self.gamma,
            "max_iter": int(self.max_iter),
            "seed": int(self.seed),
            "score": "bits",
        }
        clf_x = fit_kernel_classifier(x, targets, sqrt=sx, **common)  # type: ignore[arg-type]
        clf_t = fit_kernel_classifier(t, targets, sqrt=st, **common)  # type: ignore[arg-type]
        bits = int(self.bits)
        heads = [
            KernelHead.build(
                anchors=clf.anchors,
                gamma=clf.gamma,
                w1=clf.weight,
                b1=clf.bias,
                activation="none",
                w2=np.eye(bits),
                b2=np.zeros(bits),
                sqrt=clf.sqrt,
            )
            for clf in (clf_x, clf_t)
        ]
        self.train_codes_ = pack_signs(v)
        self.reg_image_ = float(clf_x.reg_)  # type: ignore[attr-defined]
        self.reg_text_ = float(clf_t.reg_)  # type: ignore[attr-defined]
        self.image_dim_, self.text_dim_ = x.shape[1], t.shape[1]
        self.image_head_, self.text_head_ = heads
        return self

"""``unsupervised``: pairs only, no labels.

Cluster-then-hash with kernel CCA, in the spirit of deep unsupervised cross-modal hashing that builds
semantic structure from both modalities (DJSRH, Su et al. ICCV 2019; JDSH, Liu et al. SIGIR 2020)
and of pseudo-label / fused-similarity methods (FSH, Liu et al. CVPR 2017):

1. RBF kernel features on anchors for each modality (signed square root first for histograms), then
   regularised CCA between them: a common space where the pairs agree (approximate kernel CCA).
2. k-means (``n_clusters``) on the unit-normalised common-space embeddings (``cluster_on``: the text
   side by default, the side that carries most of the semantics in caption data; ``"fused"`` adds
   both members of each pair): pseudo-classes from the structure the two modalities share.
3. The two-step hasher of ``supervised`` trained on the pseudo-classes: kernel logistic hash
   functions per modality producing class-ranking (or hash centre) codes.
4. Learned codes of the training pairs (``train_codes_``, the ``learned-db`` protocol):
   ``learned_codes="text"`` (default) codes each pair by its caption through the text hash function,
   which keeps the ranking of pseudo-classes (the pseudo-classes come from the text side);
   ``"clusters"`` gives every pair the code of its hard cluster.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigurationError
from ._heads import signed_sqrt
from ._linalg import cca, rbf_features, rbf_gamma
from ._supervised import SupervisedHasher, _auto_sqrt

__all__ = ["UnsupervisedHasher"]


class UnsupervisedHasher(SupervisedHasher):
    """Parameters: those of :class:`SupervisedHasher` plus ``n_clusters`` (``"auto"`` = ``min(bits - 1,
    16)``), ``cca_dim`` (common-space width, default 32), ``cca_reg``, ``cluster_on`` (``"text"``,
    ``"image"`` or ``"fused"``) and ``learned_codes`` (``"text"`` or ``"clusters"``)."""

    method: ClassVar[str] = "unsupervised"
    _param_names: ClassVar[tuple[str, ...]] = (
        *SupervisedHasher._param_names,
        "n_clusters",
        "cca_dim",
        "cca_reg",
        "cluster_on",
        "learned_codes",
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
        seed: int = 0,
        n_clusters: int | str = "auto",
        cca_dim: int = 32,
        cca_reg: float = 0.1,
        cluster_on: str = "text",
        learned_codes: str = "text",
    ) -> None:
        super().__init__(
            bits,
            anchors=anchors,
            reg=reg,
            gamma=gamma,
            sqrt=sqrt,
            max_iter=max_iter,
            pseudo_threshold=pseudo_threshold,
            code=code,
            confidence=confidence,
            seed=seed,
        )
        self.n_clusters = n_clusters
        self.cca_dim = cca_dim
        self.cca_reg = cca_reg
        self.cluster_on = cluster_on
        self.learned_codes = learned_codes

    def _embed(self, x: np.ndarray, sqrt: bool, rng: np.random.Generator) -> np.ndarray:
        z = signed_sqrt(x) if sqrt else x
        anchors = z[rng.choice(len(z), size=min(int(self.anchors), len(z)), replace=False)]
        k = rbf_features(z, anchors, rbf_gamma(z, anchors))
        return np.asarray(k - k.mean(axis=0))

    def fit(self, image_features: Any, text_features: Any, labels: Any = None) -> UnsupervisedHasher:
        """Fit on aligned pairs; ``labels`` are ignored."""
        from sklearn.cluster import KMeans

        x, t = self._check_pair(image_features, text_features, min_rows=3)
        self._check_params()
        k = min(int(self.bits) - 1, 16) if self.n_clusters == "auto" else self.n_clusters
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ConfigurationError(f"n_clusters must be an integer >= 2 or 'auto', got {self.n_clusters!r}")
        if self.cluster_on not in ("text", "image", "fused"):
            raise ConfigurationError(f"cluster_on must be text, image or fused, got {self.cluster_on!r}")
        if self.learned_codes not in ("text", "clusters"):
            raise ConfigurationError(f"learned_codes must be text or clusters, got {self.learned_codes!r}")
        k = min(k, x.shape[0] - 1)
        rng = np.random.default_rng(int(self.seed))
        kx = self._embed(x, _auto_sqrt(self.sqrt, x), rng)
        kt = self._embed(t, _auto_sqrt(self.sqrt, t), rng)
        px, pt, _ = cca(kx, kt, int(self.cca_dim), float(self.cca_reg))
        zx, zt = kx @ px, kt @ pt
        zx /= np.linalg.norm(zx, axis=1, keepdims=True) + 1e-12
        zt /= np.linalg.norm(zt, axis=1, keepdims=True) + 1e-12
        side = {"text": zt, "image": zx, "fused": zx + zt}[self.cluster_on]
        km = KMeans(n_clusters=k, n_init=4, random_state=int(self.seed)).fit(side)
        pseudo = np.zeros((x.shape[0], k))
        pseudo[np.arange(x.shape[0]), km.labels_] = 1.0
        pseudo = pseudo[:, pseudo.sum(axis=0) > 0]
        self.cluster_labels_ = km.labels_
        self._fit_labelled(x, t, pseudo)
        if self.learned_codes == "text":
            self.train_codes_ = self.encode_text(t)
        return self

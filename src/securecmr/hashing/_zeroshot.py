"""``zero-shot``: hashing of a space both modalities already share (the ConSE / MiniLM 384-d space).

* ``fit()`` with no data: data-independent, the sign of ``bits`` seeded random orthogonal projections
  (SimHash, Charikar STOC 2002; orthogonalised as in Ji et al., NeurIPS 2012 "super-bit LSH"), so the
  Hamming distance tracks the angle between vectors. Deterministic given ``seed``; no training.
* ``fit(None, text_features)`` (or image and/or text features in the shared space): centring,
  PCA to ``bits`` dimensions and ITQ (Gong & Lazebnik, CVPR 2011); when ``bits`` exceeds the rank
  of the data the extra bits are seeded random projections of the PCA space.

``encode_image`` and ``encode_text`` are the same function.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigurationError, ShapeError
from ._base import BaseHasher
from ._heads import LinearHead
from ._linalg import expand, itq_rotation
from ._validation import check_bits, check_features

__all__ = ["ZeroShotHasher"]


class ZeroShotHasher(BaseHasher):
    """Parameters: ``bits``, ``dim`` (width of the shared space, default 384; ``None`` = from data),
    ``seed``, ``itq_iters``."""

    method: ClassVar[str] = "zero-shot"
    _param_names: ClassVar[tuple[str, ...]] = ("bits", "dim", "seed", "itq_iters")

    def __init__(self, bits: int = 64, *, dim: int | None = 384, seed: int = 0, itq_iters: int = 50) -> None:
        self.bits = bits
        self.dim = dim
        self.seed = seed
        self.itq_iters = itq_iters

    def fit(
        self, image_features: Any = None, text_features: Any = None, labels: Any = None
    ) -> ZeroShotHasher:
        """Data-independent without arguments; PCA-ITQ on any features given (labels are ignored)."""
        bits = check_bits(self.bits)
        parts = [
            check_features(f, name, dim=self.dim)
            for f, name in ((image_features, "image_features"), (text_features, "text_features"))
            if f is not None
        ]
        if len(parts) == 2 and parts[0].shape[1] != parts[1].shape[1]:
            raise ShapeError(
                f"zero-shot hashes one shared space, but image_features are {parts[0].shape[1]}-d and "
                f"text_features {parts[1].shape[1]}-d; use the image encoder's zero-shot output "
                "(the text space) or a trained method"
            )
        if parts:
            data = np.vstack(parts)
            dim = data.shape[1]
            if data.shape[0] < 2:
                raise ShapeError("zero-shot fit needs at least 2 rows to learn PCA-ITQ (or no data at all)")
            mean = data.mean(axis=0)
            centred = data - mean
            _, s, vt = np.linalg.svd(centred, full_matrices=False)
            rank = int(max((s > s[0] * 1e-8).sum(), 1)) if s.size and s[0] > 0 else 1
            pcs = vt[: min(bits, rank)].T
            weight = pcs @ expand(pcs.shape[1], bits, int(self.seed))
            rot = itq_rotation(centred @ weight, int(self.itq_iters), int(self.seed))
            weight = weight @ rot
        else:
            if self.dim is None or int(self.dim) < 1:
                raise ConfigurationError(
                    "zero-shot fit() without data needs dim (the width of the shared space)"
                )
            dim = int(self.dim)
            rng = np.random.default_rng(int(self.seed))
            g = rng.standard_normal((dim, max(bits, 1)))
            if bits <= dim:
                q, _ = np.linalg.qr(g)
                weight = q[:, :bits]
            else:
                # more bits than dimensions: orthogonal blocks of ``dim`` directions each
                blocks = [np.linalg.qr(g[:, i : i + dim])[0] for i in range(0, bits, dim)]
                weight = np.hstack(blocks)[:, :bits]
            mean = np.zeros(dim)
        head = LinearHead(mean, weight)
        self.image_dim_ = self.text_dim_ = dim
        self.image_head_ = self.text_head_ = head
        return self

    def encode(self, X: Any) -> np.ndarray:
        """Codes for vectors of either modality (the space is shared)."""
        return self.encode_text(X)

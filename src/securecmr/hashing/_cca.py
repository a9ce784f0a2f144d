"""``cca`` and ``cca-itq``: the classic unsupervised baselines.

* ``cca``: canonical correlation analysis (Hotelling 1936; as the cross-modal baseline of
  Rasiwasia et al., ACM MM 2010) to a common space, codes = sign of the projections. Its real-valued
  projections (``project_image`` / ``project_text``) are the float reference.
* ``cca-itq``: CCA followed by iterative quantisation (Gong & Lazebnik, CVPR 2011; Gong et al.,
  TPAMI 2013), the rotation learned on both modalities' projections.

When ``bits`` exceeds the rank of the CCA space (e.g. 64 bits on 10-d text) the extra bits are signs
of seeded random combinations of the canonical directions.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._base import BaseHasher
from ._heads import LinearHead, signed_sqrt
from ._linalg import cca, expand, itq_rotation

__all__ = ["CCAHasher", "CCAITQHasher"]


def _auto_sqrt(flag: bool | str, x: np.ndarray) -> bool:
    if flag == "auto":
        return bool((x >= 0).all())
    return bool(flag)


class CCAHasher(BaseHasher):
    """CCA + sign. Parameters: ``bits``, ``reg`` (ridge, relative), ``sqrt`` (signed square root of
    the inputs first: ``True``, ``False`` or ``"auto"`` = only for non-negative features, applied to
    each modality separately), ``seed``."""

    method: ClassVar[str] = "cca"
    _param_names: ClassVar[tuple[str, ...]] = ("bits", "reg", "sqrt", "seed")
    _itq: ClassVar[bool] = False

    def __init__(self, bits: int = 64, *, reg: float = 1e-3, sqrt: bool | str = False, seed: int = 0) -> None:
        self.bits = bits
        self.reg = reg
        self.sqrt = sqrt
        self.seed = seed

    def fit(self, image_features: Any, text_features: Any, labels: Any = None) -> CCAHasher:
        """Fit on aligned pairs; ``labels`` are ignored (unsupervised)."""
        x, y = self._check_pair(image_features, text_features)
        sx, sy = _auto_sqrt(self.sqrt, x), _auto_sqrt(self.sqrt, y)
        xs = signed_sqrt(x) if sx else x
        ys = signed_sqrt(y) if sy else y
        mx, my = xs.mean(0), ys.mean(0)
        px, py, rho = cca(xs - mx, ys - my, self.bits, float(self.reg))
        e = expand(px.shape[1], self.bits, self.seed)
        wx, wy = px @ e, py @ e
        if self._itq:
            v = np.vstack([(xs - mx) @ wx, (ys - my) @ wy])
            rot = itq_rotation(v, 50, self.seed)
            wx, wy = wx @ rot, wy @ rot
        self.correlations_ = rho
        self.image_dim_, self.text_dim_ = x.shape[1], y.shape[1]
        self.image_head_ = LinearHead(mx, wx, sqrt=sx)
        self.text_head_ = LinearHead(my, wy, sqrt=sy)
        return self


class CCAITQHasher(CCAHasher):
    """CCA followed by ITQ (Gong & Lazebnik 2011). Same parameters as :class:`CCAHasher`."""

    method: ClassVar[str] = "cca-itq"
    _itq: ClassVar[bool] = True

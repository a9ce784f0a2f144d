"""The hasher base class: parameters, fitted checks, encoding to packed codes, save."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import NotFittedError, ShapeError
from ._heads import Head
from ._validation import check_bits, check_features

__all__ = ["BaseHasher", "pack_signs"]


def pack_signs(values: np.ndarray) -> np.ndarray:
    """Bit ``j`` of a code is 1 where ``values[:, j] > 0``; packed big-endian by ``numpy.packbits``."""
    return np.packbits(np.asarray(values) > 0, axis=1)


class BaseHasher:
    """A cross-modal hasher following scikit-learn conventions.

    Only parameters are set in ``__init__``; ``fit`` sets the fitted attributes (ending in ``_``):
    ``image_dim_``, ``text_dim_``, ``image_head_``, ``text_head_``. Codes are packed uint8 arrays of
    shape ``(n, bits // 8)``.
    """

    method: ClassVar[str] = "base"
    _param_names: ClassVar[tuple[str, ...]] = ("bits",)
    # fitted array attributes (beyond the heads) that save/load round-trip
    _fitted_arrays: ClassVar[tuple[str, ...]] = ()

    bits: int
    image_dim_: int
    text_dim_: int
    image_head_: Head
    text_head_: Head

    # -- scikit-learn style parameter access -------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names}

    def set_params(self, **params: Any) -> BaseHasher:
        for key, value in params.items():
            if key not in self._param_names:
                raise ValueError(f"unknown parameter {key!r} for {type(self).__name__}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- fitted state ----------------------------------------------------------------------
    def _is_fitted(self) -> bool:
        return hasattr(self, "image_head_") and hasattr(self, "text_head_")

    def _check_fitted(self) -> None:
        if not self._is_fitted():
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; "
                "call fit(...) first (or securecmr.hashing.load)"
            )

    def _check_pair(
        self, image_features: Any, text_features: Any, min_rows: int = 2
    ) -> tuple[np.ndarray, np.ndarray]:
        check_bits(self.bits)
        x = check_features(image_features, "image_features", min_rows=min_rows)
        y = check_features(text_features, "text_features", min_rows=min_rows)
        if x.shape[0] != y.shape[0]:
            raise ShapeError(
                f"image_features has {x.shape[0]} rows but text_features has {y.shape[0]}; "
                "rows must be aligned pairs"
            )
        return x, y

    # -- encoding ----------------------------------------------------------------------------
    def project_image(self, X: Any) -> np.ndarray:
        """Real-valued projections of image features into the common space, (n, bits) float64."""
        self._check_fitted()
        return self.image_head_.forward(check_features(X, "image features", dim=self.image_dim_))

    def project_text(self, X: Any) -> np.ndarray:
        """Real-valued projections of text features into the common space, (n, bits) float64."""
        self._check_fitted()
        return self.text_head_.forward(check_features(X, "text features", dim=self.text_dim_))

    def embed_image(self, X: Any) -> np.ndarray:
        """The real-valued learned space the image codes are quantised from (class scores for the
        supervised heads, the projections otherwise): the float reference of the same space."""
        self._check_fitted()
        return self.image_head_.embed(check_features(X, "image features", dim=self.image_dim_))

    def embed_text(self, X: Any) -> np.ndarray:
        """The real-valued learned space the text codes are quantised from (see :meth:`embed_image`)."""
        self._check_fitted()
        return self.text_head_.embed(check_features(X, "text features", dim=self.text_dim_))

    def encode_image(self, X: Any) -> np.ndarray:
        """Packed uint8 codes (n, bits // 8) for image features."""
        return pack_signs(self.project_image(X))

    def encode_text(self, X: Any) -> np.ndarray:
        """Packed uint8 codes (n, bits // 8) for text features."""
        return pack_signs(self.project_text(X))

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted hasher to one ``.npz`` file (JSON metadata, arrays, ONNX heads; no pickle)."""
        from ._io import save_hasher

        self._check_fitted()
        return save_hasher(self, Path(path))

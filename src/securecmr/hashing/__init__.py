"""Cross-modal hashing: map image and text features into one Hamming space.

``create(method, bits=64, **params)`` returns an unfitted hasher (scikit-learn conventions);
``fit(image_features, text_features, labels=None)``; ``encode_image(X)`` / ``encode_text(X)`` give
packed uint8 codes ``(n, bits // 8)`` (:func:`numpy.packbits` bit order, bit = projection > 0);
``save(path)`` / :func:`load` use one ``.npz`` file with JSON metadata, a format version, a SHA-256
checksum and ONNX graphs for nonlinear heads (no pickle; loading never imports torch).

Methods: ``cca``, ``cca-itq``, ``supervised`` (also semi-supervised), ``unsupervised``, ``zero-shot``.
"""

from __future__ import annotations

from ._base import BaseHasher, pack_signs
from ._cca import CCAHasher, CCAITQHasher
from ._io import FORMAT_VERSION, load
from ._registry import METHODS, create
from ._supervised import SupervisedHasher
from ._unsupervised import UnsupervisedHasher
from ._zeroshot import ZeroShotHasher

__all__ = [
    "FORMAT_VERSION",
    "METHODS",
    "BaseHasher",
    "CCAHasher",
    "CCAITQHasher",
    "SupervisedHasher",
    "UnsupervisedHasher",
    "ZeroShotHasher",
    "create",
    "load",
    "pack_signs",
]

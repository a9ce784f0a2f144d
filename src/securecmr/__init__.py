"""securecmr: privacy-preserving cross-modal retrieval.

Public names are listed in ``__all__`` (kept sorted; a test checks it). Heavy dependencies
(torch, transformers) are never imported here: the runtime path is onnxruntime + faiss.
"""

from __future__ import annotations

from . import access, audit, encoders, errors, monitor, protect
from ._version import __version__
from .encoders import VideoEncoder, VideoSegment, load_image_encoder, load_text_encoder, load_video_encoder
from .errors import SecureCMRError
from .store import Collection, Hit, Item, Store

__all__ = [
    "Collection",
    "Hit",
    "Item",
    "SecureCMRError",
    "Store",
    "VideoEncoder",
    "VideoSegment",
    "__version__",
    "access",
    "audit",
    "encoders",
    "errors",
    "load_image_encoder",
    "load_text_encoder",
    "load_video_encoder",
    "monitor",
    "protect",
]

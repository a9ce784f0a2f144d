"""Encoders: ONNX text and image towers that map into one shared embedding space.

Public surface (also re-exported from :mod:`securecmr`): :func:`load_text_encoder`,
:func:`load_image_encoder`, :func:`load_encoder` (bring your own ONNX encoder from a config),
:func:`export_models` / :func:`verify_models` (the ``securecmr models`` commands) and
:func:`export_clip` (export a transformers ``CLIPModel`` plus configs). Exporting needs the
``export`` extra (torch); encoding needs only onnxruntime and tokenizers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._config import EncoderConfig, ImageEncoderConfig, TextEncoderConfig
from ._image import ImageEncoder
from ._load import load_encoder, load_image_encoder, load_text_encoder
from ._manifest import read_manifest, verify_models
from ._text import TextEncoder
from ._video import VideoEncoder, VideoSegment, load_video_encoder

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "EncoderConfig",
    "ImageEncoder",
    "ImageEncoderConfig",
    "TextEncoder",
    "TextEncoderConfig",
    "VideoEncoder",
    "VideoSegment",
    "export_clip",
    "export_models",
    "load_encoder",
    "load_image_encoder",
    "load_text_encoder",
    "load_video_encoder",
    "read_manifest",
    "verify_models",
]


def export_models(model_dir: str | Path | None = None, **kwargs: Any) -> Path:
    """Export the built-in encoders to ONNX (see :func:`securecmr.encoders._export.export_models`)."""
    from ._export import export_models as _export_models

    return _export_models(model_dir, **kwargs)


def export_clip(model: Any, directory: str | Path, **kwargs: Any) -> dict[str, Path]:
    """Export a transformers ``CLIPModel``'s towers to ONNX plus encoder configs (see ``_clip``)."""
    from ._clip import export_clip as _export_clip

    return _export_clip(model, directory, **kwargs)

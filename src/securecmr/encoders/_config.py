"""Configs that describe an ONNX encoder, so any exported model (e.g. a CLIP tower) can be loaded.

A config is JSON (or a dict) validated by pydantic with ``extra="forbid"``; relative file paths are
resolved against the directory of the config file (or ``base_dir``)::

    {"kind": "text", "onnx": "clip_text.onnx", "tokenizer": "tokenizer.json",
     "input_ids": "input_ids", "attention_mask": "attention_mask",
     "output": "text_embeds", "dim": 512, "pooling": "none", "normalize": true}

    {"kind": "image", "onnx": "clip_image.onnx", "pixel_values": "pixel_values",
     "image_size": 224, "mean": [0.481, 0.458, 0.408], "std": [0.269, 0.261, 0.276],
     "output": "image_embeds", "dim": 512}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigurationError

__all__ = ["EncoderConfig", "ImageEncoderConfig", "TextEncoderConfig", "parse_config"]

Pooling = Literal["cls", "mean", "none"]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    onnx: str = Field(description="ONNX file (relative to the config's directory)")
    output: str = Field(description="name of the ONNX output holding the embedding")
    dim: int = Field(gt=0, description="embedding width")
    pooling: Pooling = Field(default="none", description="cls / mean over the sequence axis, or none")
    normalize: bool = Field(default=True, description="unit-normalise the rows")
    sha256: dict[str, str] | None = Field(
        default=None, description="optional {file: sha256}; a mismatch refuses to load"
    )


class TextEncoderConfig(_Base):
    """A text encoder: a tokenizer.json (``tokenizers`` library) and an ONNX graph."""

    kind: Literal["text"] = "text"
    tokenizer: str = Field(description="tokenizer.json file of the `tokenizers` library")
    input_ids: str = "input_ids"
    attention_mask: str | None = "attention_mask"
    token_type_ids: str | None = None
    max_length: int = Field(default=256, gt=1)
    pad_id: int | None = Field(
        default=None, ge=0, description="padding token id (default: the tokenizer's, else 0)"
    )


class ImageEncoderConfig(_Base):
    """An image encoder: resize / crop / normalise, then an ONNX graph on NCHW float32 pixels."""

    kind: Literal["image"] = "image"
    pixel_values: str = "pixel_values"
    image_size: int = Field(default=224, gt=0)
    resize: int | None = Field(
        default=None, gt=0, description="shorter side before the centre crop (default: image_size)"
    )
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    features_output: str | None = Field(default=None, description="optional second output (raw features)")
    feature_dim: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> ImageEncoderConfig:
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        if (self.features_output is None) != (self.feature_dim is None):
            raise ValueError("features_output and feature_dim go together")
        if self.resize is not None and self.resize < self.image_size:
            raise ValueError("resize must be >= image_size")
        return self


EncoderConfig = Annotated[TextEncoderConfig | ImageEncoderConfig, Field(discriminator="kind")]


def parse_config(
    config: str | Path | dict[str, object] | TextEncoderConfig | ImageEncoderConfig,
    base_dir: str | Path | None = None,
) -> tuple[TextEncoderConfig | ImageEncoderConfig, Path]:
    """Validate ``config`` (a JSON file path, a dict or a config object); returns (config, base dir)."""
    if isinstance(config, TextEncoderConfig | ImageEncoderConfig):
        return config, Path(base_dir) if base_dir is not None else Path.cwd()
    if isinstance(config, str | Path):
        path = Path(config).expanduser()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(f"encoder config {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigurationError(f"encoder config {path} is not valid JSON: {exc}") from None
        base = Path(base_dir) if base_dir is not None else path.parent
    else:
        raw = dict(config)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    if not isinstance(raw, dict):
        raise ConfigurationError("an encoder config must be a JSON object")
    kind = raw.get("kind")
    cls: type[TextEncoderConfig] | type[ImageEncoderConfig]
    if kind == "text":
        cls = TextEncoderConfig
    elif kind == "image":
        cls = ImageEncoderConfig
    else:
        raise ConfigurationError(f"encoder config needs \"kind\": \"text\" or \"image\" (got {kind!r})")
    try:
        return cls.model_validate(raw), base
    except ValidationError as exc:
        lines = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid {kind} encoder config: {lines}") from None

"""Export a transformers ``CLIPModel`` (both towers) to ONNX plus encoder configs for :func:`load_encoder`.

Needs the ``export`` extra (torch, transformers). The text graph takes ``input_ids`` and
``attention_mask`` and returns the projected, pooled ``text_embeds``; the image graph takes
``pixel_values`` and returns ``image_embeds``. Rows are unit-normalised at load time (``normalize``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from .._lazy import require
from ..errors import ConfigurationError
from ._config import ImageEncoderConfig, TextEncoderConfig
from ._manifest import sha256_file

__all__ = ["CLIP_MEAN", "CLIP_STD", "export_clip"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
OPSET = 17


def export_clip(
    model: Any,
    directory: str | Path,
    *,
    tokenizer: str | Path | Any,
    prefix: str = "clip",
    mean: tuple[float, float, float] = CLIP_MEAN,
    std: tuple[float, float, float] = CLIP_STD,
    max_length: int | None = None,
    pad_id: int = 0,
) -> dict[str, Path]:
    """Write ``<prefix>_text.onnx``, ``<prefix>_image.onnx``, the tokenizer and two JSON configs.

    ``tokenizer`` is a ``tokenizer.json`` path or a ``tokenizers.Tokenizer``. Returns
    ``{"text": config_path, "image": config_path}``; load them with
    ``securecmr.encoders.load_encoder(path)``.
    """
    torch = require("torch", extra="export")
    require("transformers", extra="export")
    import warnings

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tok_name = f"{prefix}_tokenizer.json"
    if isinstance(tokenizer, str | Path):
        shutil.copyfile(tokenizer, out / tok_name)
    elif hasattr(tokenizer, "save"):
        tokenizer.save(str(out / tok_name))
    else:
        raise ConfigurationError("tokenizer must be a tokenizer.json path or a tokenizers.Tokenizer")
    if hasattr(model, "set_attn_implementation"):
        with contextlib.suppress(ValueError, AttributeError):
            model.set_attn_implementation("eager")
    model.eval()
    cfg = model.config
    text_len = max_length or int(cfg.text_config.max_position_embeddings)
    size = int(cfg.vision_config.image_size)
    dim = int(cfg.projection_dim)

    class Text(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            pooled = self.m.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
            return self.m.text_projection(pooled)

    class Vision(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, pixel_values: Any) -> Any:
            return self.m.visual_projection(self.m.vision_model(pixel_values=pixel_values).pooler_output)

    text_file, image_file = f"{prefix}_text.onnx", f"{prefix}_image.onnx"
    ids = torch.ones((2, min(8, text_len)), dtype=torch.long)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Text().eval(), (ids, torch.ones_like(ids)), str(out / text_file),
            input_names=["input_ids", "attention_mask"], output_names=["text_embeds"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "text_embeds": {0: "batch"},
            },
            opset_version=OPSET, dynamo=False,
        )
        torch.onnx.export(
            Vision().eval(), (torch.zeros(2, 3, size, size),), str(out / image_file),
            input_names=["pixel_values"], output_names=["image_embeds"],
            dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    text_cfg = TextEncoderConfig(
        onnx=text_file, tokenizer=tok_name, input_ids="input_ids", attention_mask="attention_mask",
        output="text_embeds", dim=dim, pooling="none", normalize=True, max_length=text_len, pad_id=pad_id,
        sha256={text_file: sha256_file(out / text_file), tok_name: sha256_file(out / tok_name)},
    )
    image_cfg = ImageEncoderConfig(
        onnx=image_file, pixel_values="pixel_values", image_size=size, resize=size, mean=mean, std=std,
        interpolation="bicubic", output="image_embeds", dim=dim, pooling="none", normalize=True,
        sha256={image_file: sha256_file(out / image_file)},
    )
    paths = {"text": out / f"{prefix}_text.json", "image": out / f"{prefix}_image.json"}
    paths["text"].write_text(json.dumps(text_cfg.model_dump(), indent=2) + "\n", encoding="utf-8")
    paths["image"].write_text(json.dumps(image_cfg.model_dump(), indent=2) + "\n", encoding="utf-8")
    return paths

"""Load the built-in encoders from an exported model directory, or any encoder from a config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelIntegrityError, ModelNotFoundError
from ._config import ImageEncoderConfig, TextEncoderConfig, parse_config
from ._image import ImageEncoder
from ._manifest import read_manifest, resolve_dir, sha256_file, verify_file
from ._session import make_session
from ._text import TextEncoder

__all__ = ["load_encoder", "load_image_encoder", "load_text_encoder"]


def _builtin_config(model_dir: Path, kind: str, int8: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    manifest = read_manifest(model_dir)
    entry = manifest.get("models", {}).get(kind)
    if not isinstance(entry, dict) or "config" not in entry:
        raise ModelNotFoundError(
            f"the {kind} model is not in {model_dir}; run `securecmr models export --force`"
        )
    config = dict(entry["config"])
    if int8:
        name = entry.get("int8")
        if not name:
            raise ModelNotFoundError(
                f"no int8 {kind} model in {model_dir}; run `securecmr models export --int8`"
            )
        config["onnx"] = name
    return manifest, config


def load_text_encoder(
    model_dir: str | Path | None = None, *, int8: bool = False, num_threads: int | None = None
) -> TextEncoder:
    """The built-in text encoder (all-MiniLM-L6-v2, 384-d, mean pooled, unit rows).

    ``model_dir`` defaults to ``$SECURECMR_HOME/models``. Every file is checked against the
    manifest's sha256 (:class:`~securecmr.errors.ModelIntegrityError` on mismatch); missing models
    raise :class:`~securecmr.errors.ModelNotFoundError` (run ``securecmr models export``).
    """
    directory = resolve_dir(model_dir)
    manifest, raw = _builtin_config(directory, "text", int8)
    config = TextEncoderConfig.model_validate(raw)
    onnx = verify_file(directory, config.onnx, manifest)
    tok = verify_file(directory, config.tokenizer, manifest)
    name = "all-MiniLM-L6-v2" + ("-int8" if int8 else "")
    return TextEncoder(make_session(onnx, num_threads=num_threads), tok, config, name=name)


def load_image_encoder(
    model_dir: str | Path | None = None, *, int8: bool = False, num_threads: int | None = None
) -> ImageEncoder:
    """The built-in image encoder (EfficientNet-Lite0, or Lite2 if exported so, + ConSE zero-shot head).

    ``encode(images)`` returns 384-d vectors in the text encoder's space; ``encode(images,
    output="features")`` the 1280-d penultimate features. Integrity checks as for the text encoder.
    """
    directory = resolve_dir(model_dir)
    manifest, raw = _builtin_config(directory, "image", int8)
    config = ImageEncoderConfig.model_validate(raw)
    onnx = verify_file(directory, config.onnx, manifest)
    model_id = str(manifest.get("models", {}).get("image", {}).get("id", "efficientnet-lite0"))
    name = f"{model_id}-conse" + ("-int8" if int8 else "")  # the tower it was exported with
    return ImageEncoder(make_session(onnx, num_threads=num_threads), config, name=name)


def _checked(base: Path, name: str, sha: dict[str, str] | None) -> Path:
    path = (base / name).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"encoder file {path} does not exist")
    if sha is not None and name in sha and sha256_file(path) != sha[name].lower():
        raise ModelIntegrityError(f"encoder file {path} does not match the sha256 in its config; refusing it")
    return path


def load_encoder(
    config: str | Path | dict[str, Any] | TextEncoderConfig | ImageEncoderConfig,
    *,
    base_dir: str | Path | None = None,
    num_threads: int | None = None,
) -> TextEncoder | ImageEncoder:
    """Bring your own ONNX encoder: load it from a JSON config file, a dict or a config object.

    Relative paths in the config are resolved against the config file's directory (or
    ``base_dir``). Returns a :class:`TextEncoder` or an :class:`ImageEncoder` by ``kind``.
    """
    cfg, base = parse_config(config, base_dir)
    onnx = _checked(base, cfg.onnx, cfg.sha256)
    session = make_session(onnx, num_threads=num_threads)
    if isinstance(cfg, TextEncoderConfig):
        tok = _checked(base, cfg.tokenizer, cfg.sha256)
        return TextEncoder(session, tok, cfg, name=Path(cfg.onnx).stem)
    return ImageEncoder(session, cfg, name=Path(cfg.onnx).stem)

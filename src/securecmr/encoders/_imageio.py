"""Turn paths, bytes, PIL images and arrays into RGB uint8 arrays, and preprocess them for a model."""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageDecodeError, ShapeError

__all__ = ["ImageInput", "preprocess", "to_rgb"]

ImageInput = Any  # str | os.PathLike | bytes | PIL.Image.Image | np.ndarray

_HINT = "pass a PNG/JPEG/TIFF/BMP/GIF/WebP file, its bytes, a PIL image or a uint8/uint16 array"


def _decode_pil(data: bytes | Path, what: str) -> Any:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        src: Any = io.BytesIO(data) if isinstance(data, bytes) else data
        with Image.open(src) as opened:
            opened.load()
            img: Any = ImageOps.exif_transpose(opened) or opened
            return img.copy()
    except FileNotFoundError:
        raise ImageDecodeError(f"image file {what} does not exist; check the path") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{what} is not an image in a supported format; {_HINT}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(
            f"{what} could not be decoded ({type(exc).__name__}: corrupt or truncated?); "
            f"re-export or re-download the image. {_HINT}"
        ) from None


def _from_pil(img: Any) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _from_array(np.asarray(img))
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode == "L":
        return _from_array(np.asarray(img, dtype=np.uint8))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        return _from_array(np.asarray(img.convert("RGBA"), dtype=np.uint8))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype in (np.uint16, np.int16, np.int32, np.uint32, np.float32, np.float64):
        a = arr.astype(np.float64)
        if not np.isfinite(a).all():
            raise ShapeError("image array contains NaN or infinite values")
        if arr.dtype.kind == "f" and a.min() >= 0.0 and a.max() <= 1.0:
            return np.round(a * 255.0).astype(np.uint8)
        lo, hi = float(a.min()), float(a.max())
        if hi <= lo:
            return np.zeros(arr.shape, dtype=np.uint8)
        # high bit depth (e.g. 12/16-bit medical images): window to the image's own range
        return np.round((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    raise ShapeError(f"unsupported image array dtype {arr.dtype}; use uint8 or uint16 (or float in [0, 1])")


def _from_array(arr: np.ndarray) -> np.ndarray:
    if arr.size == 0:
        raise ImageDecodeError(f"zero-size image array of shape {arr.shape}; pass a non-empty image")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        g = _to_uint8(arr)
        return np.repeat(g[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ShapeError(
            f"image array of shape {arr.shape} is not an image; expected (H, W), (H, W, 3) or (H, W, 4)"
        )
    a = _to_uint8(arr)
    if a.shape[2] == 4:  # composite RGBA over white
        alpha = a[:, :, 3:4].astype(np.float32) / 255.0
        rgb = a[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return np.round(rgb).astype(np.uint8)
    return np.ascontiguousarray(a)


def to_rgb(image: ImageInput) -> np.ndarray:
    """Decode one image into an (H, W, 3) uint8 RGB array."""
    if isinstance(image, np.ndarray):
        rgb = _from_array(image)
    elif isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
        if not data:
            raise ImageDecodeError("empty image bytes (zero-size); pass the full file content")
        rgb = _from_pil(_decode_pil(data, "image bytes"))
    elif isinstance(image, str | os.PathLike):
        path = Path(image)
        if path.is_file() and path.stat().st_size == 0:
            raise ImageDecodeError(f"image file {path} is empty (zero bytes); re-copy the file")
        rgb = _from_pil(_decode_pil(path, str(path)))
    elif hasattr(image, "mode") and hasattr(image, "size") and hasattr(image, "convert"):
        if 0 in tuple(image.size):
            raise ImageDecodeError(f"zero-size PIL image {tuple(image.size)}; pass a non-empty image")
        rgb = _from_pil(image)
    else:
        raise ImageDecodeError(f"cannot read an image from a {type(image).__name__}; {_HINT}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageDecodeError(f"zero-size image of shape {rgb.shape}; pass a non-empty image")
    return rgb


def preprocess(
    rgb: np.ndarray,
    *,
    image_size: int,
    resize: int | None,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    interpolation: str = "bilinear",
) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, S, S) float32: shorter side to ``resize``, centre crop, normalise."""
    from PIL import Image

    resample = Image.Resampling.BICUBIC if interpolation == "bicubic" else Image.Resampling.BILINEAR
    target = resize or image_size
    h, w = rgb.shape[:2]
    scale = target / min(h, w)
    nh, nw = max(image_size, round(h * scale)), max(image_size, round(w * scale))
    img = Image.fromarray(rgb)
    if (nh, nw) != (h, w):
        img = img.resize((nw, nh), resample=resample)
    top, left = (nh - image_size) // 2, (nw - image_size) // 2
    crop = np.asarray(img)[top : top + image_size, left : left + image_size]
    table = _normalise_table(tuple(map(float, mean)), tuple(map(float, std)))
    out = np.empty((3, image_size, image_size), dtype=np.float32)
    for c in range(3):  # a table look-up per channel, written straight into CHW
        np.take(table[c], crop[:, :, c], out=out[c])
    return out


@functools.lru_cache(maxsize=8)
def _normalise_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: ``(v / 255 - mean) / std`` for every uint8 value ``v``, computed with the
    same float32 operations as normalising the image directly (so results are bit-identical)."""
    v = np.arange(256, dtype=np.float32)[None, :]
    m, s = np.asarray(mean, np.float32)[:, None], np.asarray(std, np.float32)[:, None]
    return (v / np.float32(255.0) - m) / s

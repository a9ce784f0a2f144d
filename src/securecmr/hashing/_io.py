"""Saving and loading hashers: one ``.npz`` file (``allow_pickle=False``) holding a JSON header with a
format version and a SHA-256 checksum of the header and every array, the heads (numpy weights for
linear heads, serialised ONNX graphs for nonlinear ones) and any learned training codes."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SerializationError
from ..protect import atomic_write
from ._heads import head_from_state

__all__ = ["FORMAT", "FORMAT_VERSION", "load", "save_hasher"]

FORMAT = "securecmr.hasher"
FORMAT_VERSION = 1


def _digest(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> str:
    """SHA-256 over the header (everything but the checksum itself) and every array."""
    h = hashlib.sha256()
    body = {k: v for k, v in header.items() if k != "sha256"}
    h.update(json.dumps(body, sort_keys=True).encode())
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(arr.dtype).encode())
        h.update(repr(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def save_hasher(hasher: Any, path: Path) -> Path:
    arrays: dict[str, np.ndarray] = {}
    heads: dict[str, Any] = {}
    for side in ("image", "text"):
        meta, arrs = getattr(hasher, f"{side}_head_").state(f"{side}_")
        heads[side] = meta
        arrays.update(arrs)
    for name in hasher._fitted_arrays:
        if hasattr(hasher, name):
            arrays[f"attr_{name}"] = np.asarray(getattr(hasher, name))
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "method": hasher.method,
        "params": hasher.get_params(),
        "image_dim": int(hasher.image_dim_),
        "text_dim": int(hasher.text_dim_),
        "heads": heads,
        "extra": hasher._extra_state() if hasattr(hasher, "_extra_state") else {},
    }
    header["sha256"] = _digest(arrays, header)
    arrays["header"] = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    atomic_write(path, buf.getvalue())
    return path


def load(path: str | Path) -> Any:
    """Load a hasher written by ``hasher.save(path)``.

    Raises :class:`~securecmr.errors.SerializationError` when the file is corrupt, altered, not a
    securecmr hasher or written by a newer securecmr.
    """
    from . import _registry

    path = Path(path)
    if not path.exists() and path.with_name(path.name + ".npz").exists():
        path = path.with_name(path.name + ".npz")
    if not path.is_file():
        raise FileNotFoundError(f"no hasher file at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise SerializationError(f"{path.name} is not a readable hasher file (corrupt or truncated)") from exc
    try:
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise SerializationError(f"{path.name} has no valid hasher header") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SerializationError(f"{path.name} is not a securecmr hasher file")
    version = header.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SerializationError(
            f"{path.name} was written by a newer securecmr (format version {version!r} > {FORMAT_VERSION}); "
            "upgrade securecmr to read it"
        )
    if header.get("sha256") != _digest(arrays, header):
        raise SerializationError(f"{path.name} failed its checksum: the file was altered or corrupted")
    try:
        cls = _registry.hasher_class(header["method"])
        hasher = cls(**header["params"])
        hasher.image_dim_ = int(header["image_dim"])
        hasher.text_dim_ = int(header["text_dim"])
        hasher.image_head_ = head_from_state(header["heads"]["image"], arrays, "image_")
        hasher.text_head_ = head_from_state(header["heads"]["text"], arrays, "text_")
        for name in cls._fitted_arrays:
            if f"attr_{name}" in arrays:
                setattr(hasher, name, arrays[f"attr_{name}"])
        if hasattr(hasher, "_load_extra_state"):
            hasher._load_extra_state(header.get("extra", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise SerializationError(f"{path.name} has an inconsistent hasher header") from exc
    return hasher

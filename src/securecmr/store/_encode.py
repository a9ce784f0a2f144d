"""Turn raw text/image/video, vectors or codes into packed codes (encoders are loaded lazily)."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError, ShapeError

__all__ = ["Encoders", "default_hasher", "hasher_from_bytes", "hasher_to_bytes"]

_LOAD_LOCK = threading.Lock()


def default_hasher(bits: int) -> Any:
    """The data-independent zero-shot hasher a collection uses when none was given."""
    from .. import hashing

    return hashing.create("zero-shot", bits=bits, dim=384, seed=0).fit()


def hasher_to_bytes(hasher: Any) -> bytes:
    if not hasattr(hasher, "save") or not hasattr(hasher, "bits"):
        raise ConfigurationError("hasher= must be a fitted securecmr.hashing hasher")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(hasher.save(Path(tmp) / "hasher.npz"))
        return path.read_bytes()


def hasher_from_bytes(data: bytes) -> Any:
    from .. import hashing

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hasher.npz"
        path.write_bytes(data)
        return hashing.load(path)


class Encoders:
    """Lazily-loaded encoders plus the collection's hasher."""

    def __init__(self, hasher: Any, bits: int, *, loader: Callable[[], Any] | None = None) -> None:
        self._hasher = hasher
        self._loader = loader  # builds the hasher on first use (searching codes never needs it)
        self.bits = bits
        self._text: Any = None
        self._image: Any = None
        self._video: Any = None

    def __repr__(self) -> str:
        return f"Encoders(bits={self.bits})"

    @property
    def hasher(self) -> Any:
        if self._hasher is None and self._loader is not None:
            with _LOAD_LOCK:  # threads share a collection: load once
                if self._hasher is None:
                    self._hasher = self._loader()
        return self._hasher

    def _image_output(self, encoder: Any) -> str:
        fdim = getattr(encoder, "feature_dim", None)
        return (
            "features"
            if fdim is not None and getattr(self.hasher, "image_dim_", None) == fdim
            else "zeroshot"
        )

    def code(self, modality: str, *, raw: Any = None, vector: Any = None, code: Any = None) -> np.ndarray:
        """One packed code (bits // 8,) for one modality."""
        nb = self.bits // 8
        if code is not None:
            arr = np.asarray(code)
            if arr.dtype != np.uint8 or arr.reshape(-1).shape[0] != nb:
                raise ShapeError(f"a {modality} code must be {nb} packed uint8 bytes for {self.bits} bits")
            return arr.reshape(-1)
        if vector is not None:
            v = np.asarray(vector, dtype=np.float32).reshape(1, -1)
            fn = self.hasher.encode_text if modality == "text" else self.hasher.encode_image
            return np.asarray(fn(v), dtype=np.uint8).reshape(-1)
        return self.codes_for(modality, [raw])[0]

    def codes_for(
        self, modality: str, raws: list[Any], kept: dict[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """Packed codes of raw inputs; with ``kept`` (a dict), also the encoder features a hasher
        family needs, by kind ``"<modality>:<dim>"`` (text: the embedding; image: the zero-shot
        vector and the penultimate features, from one pass). Video keeps none."""
        from ..encoders import load_image_encoder, load_text_encoder, load_video_encoder

        if modality == "text":
            if self._text is None:
                self._text = load_text_encoder()
            emb = self._text.encode(raws)
            if kept is not None:
                kept[f"text:{emb.shape[1]}"] = emb
            return np.asarray(self.hasher.encode_text(emb), dtype=np.uint8)
        if modality == "image":
            if self._image is None:
                self._image = load_image_encoder()
            out = self._image_output(self._image)
            imgs = list(raws)
            if kept is not None and getattr(self._image, "feature_dim", None) is not None:
                both = self._image.encode_outputs(imgs, ("zeroshot", "features"))
                for arr in both.values():
                    kept[f"image:{arr.shape[1]}"] = arr
                return np.asarray(self.hasher.encode_image(both[out]), dtype=np.uint8)
            vecs = self._image.encode(imgs, output=out)
            if kept is not None:
                kept[f"image:{vecs.shape[1]}"] = vecs
            return np.asarray(self.hasher.encode_image(vecs), dtype=np.uint8)
        if self._video is None:
            self._video = load_video_encoder()
        out = self._image_output(self._video)
        return np.asarray(self.hasher.encode_image(self._video.encode(raws, output=out)), dtype=np.uint8)

    def encode_kept(self, modality: str, rows: np.ndarray) -> np.ndarray:
        """Packed codes from kept features of ``modality`` (what re-coding runs)."""
        fn = self.hasher.encode_text if modality == "text" else self.hasher.encode_image
        return np.asarray(fn(rows), dtype=np.uint8)

    def feature_kind(self, modality: str) -> str:
        """The kept kind the current hasher codes ``modality`` from."""
        dim = self.hasher.text_dim_ if modality == "text" else self.hasher.image_dim_
        return f"{modality}:{int(dim)}"

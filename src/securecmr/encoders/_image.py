"""The ONNX image encoder: zero-shot (shared text space) and raw feature outputs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np

from .._progress import progress
from ..errors import ConfigurationError, EmptyInputError, InputError, ShapeError
from ._common import l2_normalize, pool
from ._config import ImageEncoderConfig
from ._imageio import ImageInput, preprocess, to_rgb

__all__ = ["ImageEncoder", "Output"]

Output = Literal["zeroshot", "features"]


def _is_single(images: Any) -> bool:
    if isinstance(images, np.ndarray):
        return images.ndim in (2, 3)
    return isinstance(images, str | bytes | bytearray | memoryview) or hasattr(images, "__fspath__") or (
        hasattr(images, "mode") and hasattr(images, "convert")
    )


class ImageEncoder:
    """Encode images into unit-norm float32 rows.

    ``encode(images, output="zeroshot")`` (default) gives vectors in the text encoder's space, so
    ``image_vectors @ text_vectors.T`` ranks captions; ``output="features"`` gives the raw
    penultimate features (``.feature_dim`` wide, unit rows) for training hashers.
    """

    def __init__(self, session: Any, config: ImageEncoderConfig, *, name: str) -> None:
        self._session = session
        self._config = config
        self._name = name

    @property
    def dim(self) -> int:
        return self._config.dim

    @property
    def feature_dim(self) -> int | None:
        return self._config.feature_dim

    @property
    def image_size(self) -> int:
        return self._config.image_size

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"ImageEncoder(name={self._name!r}, dim={self.dim}, feature_dim={self.feature_dim})"

    def _output_name(self, output: str) -> tuple[str, int]:
        c = self._config
        if output == "zeroshot":
            return c.output, c.dim
        if output == "features":
            if c.features_output is None or c.feature_dim is None:
                raise ConfigurationError(
                    f"encoder {self._name!r} has no features output; use output='zeroshot'"
                )
            return c.features_output, c.feature_dim
        raise ConfigurationError(f"output must be 'zeroshot' or 'features', not {output!r}")

    def _pixels(self, rgb: np.ndarray) -> np.ndarray:
        c = self._config
        return preprocess(rgb, image_size=c.image_size, resize=c.resize, mean=c.mean, std=c.std,
                          interpolation=c.interpolation)

    def _run(self, batch: np.ndarray, output: str) -> np.ndarray:
        name, _ = self._output_name(output)
        (out,) = self._session.run([name], {self._config.pixel_values: batch})
        return pool(out, self._config.pooling)

    def _encode_rgb(self, rgbs: Iterable[np.ndarray], n: int, output: str, batch_size: int,
                    show_progress: bool | None, description: str) -> np.ndarray:
        _, dim = self._output_name(output)
        if batch_size < 1:
            raise InputError("batch_size must be >= 1")
        out = np.empty((n, dim), dtype=np.float32)
        it = iter(rgbs)
        starts = range(0, n, batch_size)
        for s in progress(starts, total=len(starts), description=description, show=show_progress,
                          min_total=max(1, 64 // batch_size), count=lambda s: min(batch_size, n - s),
                          units=n, unit="images"):
            m = min(batch_size, n - s)
            batch = np.stack([self._pixels(next(it)) for _ in range(m)])
            out[s : s + m] = self._run(batch, output)
        normalize = self._config.normalize or output == "features"
        return l2_normalize(out) if normalize else out

    def encode(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        output: Output = "zeroshot",
        batch_size: int = 32,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """(n, dim) float32 unit rows for paths, bytes, PIL images or uint8/uint16 arrays.

        A single image (not in a list) gives one row. Undecodable input raises
        :class:`~securecmr.errors.ImageDecodeError`.
        """
        self._output_name(output)
        items = [images] if _is_single(images) else list(images)
        if not items:
            raise EmptyInputError("no images to encode; pass a non-empty list")
        return self._encode_rgb((to_rgb(x) for x in items), len(items), output, batch_size, show_progress,
                                "encoding images")

    def encode_outputs(
        self, images: Sequence[ImageInput], outputs: Sequence[Output], *, batch_size: int = 32
    ) -> dict[str, np.ndarray]:
        """Several outputs of one pass over ``images`` (e.g. ``("zeroshot", "features")``, what a
        collection that keeps its features needs), each as :meth:`encode` would give it."""
        names = [self._output_name(o)[0] for o in outputs]
        items = list(images)
        if not items:
            raise EmptyInputError("no images to encode; pass a non-empty list")
        if batch_size < 1:
            raise InputError("batch_size must be >= 1")
        parts: list[list[np.ndarray]] = [[] for _ in outputs]
        for s in range(0, len(items), batch_size):
            batch = np.stack([self._pixels(to_rgb(x)) for x in items[s : s + batch_size]])
            outs = self._session.run(names, {self._config.pixel_values: batch})
            for j, out in enumerate(outs):
                parts[j].append(pool(out, self._config.pooling))
        result: dict[str, np.ndarray] = {}
        for o, chunks in zip(outputs, parts, strict=True):
            arr = np.concatenate(chunks).astype(np.float32)
            result[o] = l2_normalize(arr) if (self._config.normalize or o == "features") else arr
        return result

    def encode_frames(
        self,
        frames: np.ndarray | Sequence[np.ndarray],
        *,
        output: Output = "zeroshot",
        batch_size: int = 32,
        show_progress: bool | None = False,
    ) -> np.ndarray:
        """Fast path for decoded video frames: (n, H, W, 3) uint8 RGB (or a list of such frames)."""
        self._output_name(output)
        if isinstance(frames, np.ndarray):
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise ShapeError(f"frames must be (n, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
            seq: Sequence[np.ndarray] = list(frames)
        else:
            seq = list(frames)
            for f in seq:
                if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[-1] != 3 or f.dtype != np.uint8:
                    raise ShapeError("each frame must be an (H, W, 3) uint8 RGB array")
        if not seq:
            raise EmptyInputError("no frames to encode")
        if any(f.shape[0] == 0 or f.shape[1] == 0 for f in seq):
            raise ShapeError("zero-size frame")
        return self._encode_rgb(iter(seq), len(seq), output, batch_size, show_progress, "encoding frames")

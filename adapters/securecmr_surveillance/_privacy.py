"""Privacy filters applied to sampled frames before they are encoded.

A filter is any callable taking an (H, W, 3) uint8 RGB frame and returning one of the same shape
and dtype. :class:`FaceBlur` is the one shipped here: OpenCV's bundled Haar cascade for frontal faces
plus a strong Gaussian blur (kernel half the box wide) over each detected box, with a margin.

Limits (read before relying on it): Haar cascades find *frontal*, upright, reasonably lit faces.
They miss profiles and strongly turned heads, faces smaller than ``min_size`` pixels in the sampled
frame (sampled frames are downscaled, by default to a 320-pixel short side), partly occluded faces,
faces under masks/helmets, and faces in motion blur; they also fire on some face-like patterns. Face
blurring protects the *embeddings* (the encoder never sees the blurred faces); it does not alter the
footage the sealed ``ref`` points to. It is off by default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from securecmr.errors import ConfigurationError, MissingDependencyError, ShapeError

__all__ = ["FaceBlur", "FrameFilter", "compose_filters"]

FrameFilter = Callable[[np.ndarray], np.ndarray]


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise MissingDependencyError(
            "face blurring needs OpenCV; run: pip install 'securecmr[surveillance]'"
        ) from exc
    if not hasattr(cv2, "CascadeClassifier"):
        raise MissingDependencyError(
            "this OpenCV build has no Haar cascades (OpenCV 5 removed them); "
            "run: pip install 'opencv-python-headless>=4.8,<5'"
        )
    return cv2


class FaceBlur:
    """Blur frontal faces found by OpenCV's Haar cascade (``cv2.data.haarcascades``).

    Parameters: ``scale_factor``, ``min_neighbors`` and ``min_size`` go to
    ``CascadeClassifier.detectMultiScale`` (lower ``min_neighbors`` finds more faces and more false
    positives); ``margin`` grows each box by that fraction on every side; ``cascade`` names the XML
    file in ``cv2.data.haarcascades``. See the module docstring for what it misses.
    """

    def __init__(
        self,
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: tuple[int, int] = (20, 20),
        margin: float = 0.2,
        cascade: str = "haarcascade_frontalface_default.xml",
    ) -> None:
        if scale_factor <= 1.0:
            raise ConfigurationError(f"scale_factor must be > 1, got {scale_factor}")
        if min_neighbors < 0 or margin < 0:
            raise ConfigurationError("min_neighbors and margin must be >= 0")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.margin = margin
        self.cascade = cascade
        cv2 = _cv2()
        path = cv2.data.haarcascades + cascade
        self._classifier = cv2.CascadeClassifier(path)
        if self._classifier.empty():
            raise ConfigurationError(f"cannot load Haar cascade {cascade!r} from OpenCV's data folder")

    def __repr__(self) -> str:
        return (f"FaceBlur(scale_factor={self.scale_factor}, min_neighbors={self.min_neighbors}, "
                f"min_size={self.min_size}, margin={self.margin}, cascade={self.cascade!r})")

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """(n, 4) int boxes ``x, y, w, h`` of the faces found in an (H, W, 3) uint8 RGB frame."""
        _check_frame(frame)
        cv2 = _cv2()
        grey = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
        boxes = self._classifier.detectMultiScale(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=self.min_size
        )
        return np.asarray(boxes, dtype=np.int64).reshape(-1, 4)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """A copy of ``frame`` with every detected face blurred beyond recognition."""
        boxes = self.detect(frame)
        if len(boxes) == 0:
            return frame
        cv2 = _cv2()
        out = frame.copy()
        h, w = frame.shape[:2]
        for x, y, bw, bh in boxes:
            mx, my = int(bw * self.margin), int(bh * self.margin)
            x0, y0 = max(0, x - mx), max(0, y - my)
            x1, y1 = min(w, x + bw + mx), min(h, y + bh + my)
            roi = out[y0:y1, x0:x1]
            k = max(3, (max(x1 - x0, y1 - y0) // 2) | 1)  # odd kernel half the box wide, sigma k/3
            out[y0:y1, x0:x1] = cv2.GaussianBlur(roi, (k, k), k / 3)
        return out


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ShapeError("a frame must be an (H, W, 3) uint8 RGB array")


def compose_filters(*filters: FrameFilter) -> FrameFilter:
    """One filter applying ``filters`` in order."""

    def apply(frame: np.ndarray) -> np.ndarray:
        for f in filters:
            frame = f(frame)
        return frame

    return apply

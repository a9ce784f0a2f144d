"""Request limits of the HTTP service, each configurable and each refused with its own problem type."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigurationError

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server.

    ``max_body_bytes``: request body (JSON or multipart), 413 ``body-too-large``.
    ``max_image_pixels``: width x height of an uploaded image, 413 ``image-too-large``.
    ``max_video_seconds``: duration of an uploaded clip, 413 ``video-too-long``.
    ``max_batch``: items in one add, ids in one delete/hold/release, 413 ``batch-too-large``.
    ``max_k``: results of one search, 422 ``k-too-large``.
    ``request_timeout``: seconds a request may wait for and use the store, 503 ``timeout``.
    ``body_timeout``: seconds a client may take between two chunks of its body, 408 ``slow-body``.
    ``header_timeout``: seconds a client may take to send its request headers (connection closed).
    """

    max_body_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_video_seconds: float = 600.0
    max_batch: int = 1000
    max_k: int = 1000
    request_timeout: float = 30.0
    body_timeout: float = 10.0
    header_timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_image_pixels", "max_batch", "max_k"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{name} must be a positive integer")
        for name in ("max_video_seconds", "request_timeout", "body_timeout", "header_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds")

"""Uploaded images and clips: checked against the limits before any model sees them."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ImageDecodeError, VideoDecodeError
from ._limits import Limits
from ._problems import HTTPProblem

__all__ = ["checked_image", "checked_video"]


def checked_image(data: bytes, limits: Limits) -> bytes:
    """The image bytes if they name an image within ``max_image_pixels`` (read from the header,
    nothing is decoded here); 413 ``image-too-large`` otherwise."""
    if not data:
        raise ImageDecodeError("the uploaded image is empty")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ImageDecodeError("the upload is not an image in a supported format (PNG, JPEG, ...)") from None
    if width * height > limits.max_image_pixels:
        raise HTTPProblem(
            413,
            "image-too-large",
            f"the image has {width * height} pixels; this server accepts at most {limits.max_image_pixels}",
        )
    return data


@contextmanager
def checked_video(data: bytes, limits: Limits) -> Iterator[Path]:
    """A private temporary file holding the clip, if it lasts at most ``max_video_seconds``;
    removed on exit. 413 ``video-too-long`` when longer, VideoDecodeError when unreadable."""
    if not data:
        raise VideoDecodeError("the uploaded video is empty")
    with tempfile.TemporaryDirectory(prefix="securecmr-upload-") as tmp:
        os.chmod(tmp, 0o700)
        path = Path(tmp) / "clip"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        seconds = _duration(path)
        if seconds > limits.max_video_seconds:
            raise HTTPProblem(
                413,
                "video-too-long",
                f"the clip lasts {seconds:.0f} s; this server accepts at most {limits.max_video_seconds:g} s",
            )
        yield path


def _duration(path: Path) -> float:
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                return float(container.duration) / 1_000_000.0
            streams = [s for s in container.streams if s.type == "video"]
            if not streams:
                raise VideoDecodeError("the upload has no video stream")
            st = streams[0]
            if st.duration is not None and st.time_base is not None:
                return float(st.duration * st.time_base)
            return 0.0
    except VideoDecodeError:
        raise
    except Exception:
        raise VideoDecodeError("the upload is not a video in a supported format") from None

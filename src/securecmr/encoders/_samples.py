"""Real sample images that ship with scikit-image and scikit-learn (demo, calibration, tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._lazy import require

__all__ = ["sample_images"]

# name -> caption (what the photo shows)
SAMPLES: dict[str, str] = {
    "astronaut": "an astronaut in a space suit",
    "coffee": "a cup of coffee on a saucer",
    "chelsea": "a cat",
    "rocket": "a rocket on the launch pad",
    "camera": "a photographer with a camera on a tripod",
    "horse": "a silhouette of a horse",
    "china": "a pagoda temple in China",
    "flower": "a close-up of a flower",
    "coins": "old coins",
    "clock": "a clock",
    "moon": "the surface of the moon",
    "retina": "a retina fundus photograph",
    "hubble_deep_field": "a deep field of galaxies in space",
    "page": "a page of printed text",
    "immunohistochemistry": "a microscope image of stained tissue",
}


def sample_images(names: list[str] | None = None) -> dict[str, np.ndarray]:
    """{name: uint8 array} for the bundled sample images (skimage.data + sklearn sample images)."""
    from sklearn.datasets import load_sample_images

    wanted = list(SAMPLES) if names is None else names
    out: dict[str, np.ndarray] = {}
    sk = load_sample_images()
    sk_images = {
        Path(n).stem: img for n, img in zip(sk.filenames, sk.images, strict=True)
    }
    skdata = None
    for name in wanted:
        if name in sk_images:
            out[name] = np.asarray(sk_images[name])
            continue
        if skdata is None:
            skdata = require("skimage.data", package="scikit-image", extra="export")
        img = getattr(skdata, name)()
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        out[name] = np.asarray(img)
    return out

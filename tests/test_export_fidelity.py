"""The exported ONNX models reproduce the torch models they come from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from securecmr.encoders import export_models, load_image_encoder, load_text_encoder, read_manifest
from securecmr.encoders._samples import SAMPLES, sample_images

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.models


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _pixels(enc: object, imgs: list[np.ndarray]) -> object:
    rgb = [np.repeat(i[:, :, None], 3, 2) if i.ndim == 2 else i for i in imgs]
    return torch.from_numpy(np.stack([enc._pixels(i) for i in rgb]))  # type: ignore[attr-defined]


def test_onnx_fp32_matches_torch(models_dir: Path) -> None:
    from securecmr.encoders._export import embed_texts_torch, load_image_torch, load_text_torch

    torch.set_num_threads(1)
    bert, tok_dir = load_text_torch()
    texts = list(SAMPLES.values())
    ref_t = embed_texts_torch(bert, tok_dir, texts)
    assert _cos(load_text_encoder().encode(texts), ref_t).min() >= 0.9999

    enc = load_image_encoder()
    imgs = list(sample_images(["chelsea", "coffee", "camera", "rocket"]).values())
    net = load_image_torch()
    with torch.no_grad():
        feats = net.extract_features(_pixels(enc, imgs)).mean(dim=(2, 3)).numpy()
    assert _cos(enc.encode(imgs, output="features"), feats).min() >= 0.9999


@pytest.mark.slow
def test_onnx_zeroshot_matches_torch(models_dir: Path) -> None:
    from securecmr.encoders._classes import embed_class_prompts
    from securecmr.encoders._export import (
        embed_texts_torch,
        image_module,
        load_image_torch,
        load_text_torch,
    )

    torch.set_num_threads(1)
    bert, tok_dir = load_text_torch()
    enc = load_image_encoder()
    imgs = list(sample_images(["chelsea", "coffee", "camera", "rocket"]).values())
    classes = embed_class_prompts(lambda texts: embed_texts_torch(bert, tok_dir, texts))
    module = image_module(load_image_torch(), classes)
    with torch.no_grad():
        _, zs = module(_pixels(enc, imgs))
    assert _cos(enc.encode(imgs), zs.numpy()).min() >= 0.9999


@pytest.mark.slow
def test_export_leaves_other_files_alone(tmp_path: Path) -> None:
    (tmp_path / "mine.onnx").write_bytes(b"not ours")
    export_models(tmp_path)
    assert (tmp_path / "mine.onnx").read_bytes() == b"not ours"
    manifest = read_manifest(tmp_path)
    assert set(manifest["files"]) == {"text.onnx", "image.onnx", "tokenizer.json"}
    assert load_text_encoder(tmp_path).encode(["ok"]).shape == (1, 384)

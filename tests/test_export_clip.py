"""Bring your own encoder: a tiny random CLIPModel exported with export_clip, loaded by config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from securecmr.encoders import ImageEncoder, TextEncoder, export_clip, load_encoder
from securecmr.errors import ConfigurationError, ModelIntegrityError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

WORDS = ["a", "photo", "of", "cat", "dog", "rocket", "coffee", "cup", "the", "moon", "on", "red", "blue"]
EOS = 3


def _tokenizer() -> object:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"<pad>": 0, "<bos>": 1, "<unk>": 2, "<eos>": EOS} | {w: i + 4 for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", 1), ("<eos>", EOS)]
    )
    return tok


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object, dict[str, Path]]:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = transformers.CLIPConfig(
        text_config={"vocab_size": len(WORDS) + 4, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 16,
                     "eos_token_id": EOS, "bos_token_id": 1, "pad_token_id": 0},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
        projection_dim=24,
    )
    model = transformers.CLIPModel(cfg).eval()
    tok = _tokenizer()
    paths = export_clip(model, tmp_path_factory.mktemp("clip"), tokenizer=tok)
    return model, tok, paths


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_clip_text_tower_matches_torch(clip: tuple[object, object, dict[str, Path]]) -> None:
    model, tok, paths = clip
    enc = load_encoder(paths["text"])
    assert isinstance(enc, TextEncoder) and enc.dim == 24
    texts = ["a photo of a cat", "the moon", "a red rocket on the moon", "coffee cup", "dog"]
    got = enc.encode(texts, batch_size=2)  # padded, length-sorted batches
    ref = []
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([tok.encode(t).ids])  # type: ignore[attr-defined]
            pooled = model.text_model(input_ids=ids, attention_mask=torch.ones_like(ids)).pooler_output  # type: ignore[attr-defined]
            ref.append(model.text_projection(pooled).numpy()[0])  # type: ignore[attr-defined]
    assert _cos(got, np.stack(ref)).min() >= 0.9999


def test_clip_image_tower_matches_torch(clip: tuple[object, object, dict[str, Path]]) -> None:
    model, _, paths = clip
    enc = load_encoder(paths["image"])
    assert isinstance(enc, ImageEncoder) and enc.dim == 24 and enc.feature_dim is None
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    got = enc.encode(imgs)
    pixels = np.stack([enc._pixels(i) for i in imgs])  # the encoder's own preprocessing
    with torch.no_grad():
        pooled = model.vision_model(pixel_values=torch.from_numpy(pixels)).pooler_output  # type: ignore[attr-defined]
        ref = model.visual_projection(pooled).numpy()  # type: ignore[attr-defined]
    assert _cos(got, ref).min() >= 0.9999
    with pytest.raises(ConfigurationError, match="no features output"):
        enc.encode(imgs, output="features")


def test_config_is_strict_and_checks_hashes(
    clip: tuple[object, object, dict[str, Path]], tmp_path: Path
) -> None:
    _, _, paths = clip
    raw = json.loads(paths["image"].read_text())
    with pytest.raises(ConfigurationError, match="Extra inputs"):
        load_encoder(raw | {"typo_field": 1}, base_dir=paths["image"].parent)
    with pytest.raises(ConfigurationError, match="kind"):
        load_encoder({k: v for k, v in raw.items() if k != "kind"})
    bad = raw | {"sha256": {raw["onnx"]: "0" * 64}}
    with pytest.raises(ModelIntegrityError):
        load_encoder(bad, base_dir=paths["image"].parent)
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_encoder(tmp_path / "missing.json")

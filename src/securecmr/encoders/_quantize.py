"""int8 versions of the encoders (onnxruntime.quantization).

* text: ONNX Runtime's BERT graph optimiser (fused embedding + layer norm, fused attention, GELU with
  its bias as the tanh approximation ``FastGelu``; residual Add + LayerNormalization left unfused),
  then dynamic quantisation with per-channel int8 weights of the MatMul nodes and of the fused
  attention's Q/K/V projection (``QAttention``; activations quantised on the fly, uint8 x int8 uses
  VNNI where the CPU has it). On 128 MedPix captions, one thread, batch 32, AMD EPYC with AVX-512
  VNNI, in CPU time: quantising the attention projection too took the int8 graph from 1.8x to 2.3x
  torch fp32, keeping Add + LayerNormalization (onnxruntime 1.32's ``SkipLayerNormalization`` CPU
  kernel measured ~10x slower per row, see ``_session.py``) and ``FastGelu`` to 2.8x; mean / min
  cosine to float 0.993 / 0.973 (per-tensor weights: 0.949, so per channel it stays).
* image: static QDQ quantisation of the convolutions (per-channel int8 weights, uint8 activations),
  calibrated on the real sample images that ship with scikit-image and scikit-learn (colour, mirrored
  and grey copies). The convolutions most sensitive to 8-bit activations stay in float. Measured on
  24 MedPix CT/MR images as the feature / zero-shot cosine to float when only that part is int8: the
  stem (0.79 / 0.64), MBConv block 0 (0.87 / 0.74), block 1 (0.98 / 0.95), block 3 (0.99 / 0.97),
  block 11 (0.97 / 0.95); every other block alone stays >= 0.998 / 0.99, and keeping blocks 2, 8
  and 15 in float as well lifts the whole network from 0.991 / 0.976 to 0.996 / 0.987. The
  classifier and the ConSE head stay in float. Dynamic int8 wrecks this network (cosine 0.37).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._imageio import preprocess, to_rgb
from ._samples import sample_images

__all__ = ["quantize_image", "quantize_text"]

FLOAT_BLOCKS = (0, 1, 2, 3, 8, 11, 15)
TEXT_HEADS, TEXT_HIDDEN = 12, 384  # all-MiniLM-L6-v2


def quantize_text(src: Path, dst: Path) -> None:
    import tempfile

    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    fusion = FusionOptions("bert")
    fusion.enable_skip_layer_norm = False  # the fused kernel is slower than Add + LayerNormalization
    fusion.enable_bias_skip_layer_norm = False
    fusion.enable_gelu_approximation = True  # BiasGelu -> FastGelu (tanh form), well inside int8 noise
    with tempfile.TemporaryDirectory(prefix=".opt-", dir=dst.parent) as tmp:
        fused = Path(tmp) / "fused.onnx"
        optimized = optimize_model(
            str(src), model_type="bert", num_heads=TEXT_HEADS, hidden_size=TEXT_HIDDEN,
            optimization_options=fusion,
        )
        optimized.save_model_to_file(str(fused))
        quantize_dynamic(
            str(fused), str(dst), per_channel=True, weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm", "Attention"],
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )


def _calibration_batches(config: dict[str, Any]) -> Iterator[np.ndarray]:
    for img in sample_images().values():
        rgb = to_rgb(img)
        grey = np.repeat(rgb.mean(axis=2).astype(np.uint8)[:, :, None], 3, axis=2)
        for x in (rgb, rgb[:, ::-1], grey):
            yield preprocess(
                np.ascontiguousarray(x), image_size=config["image_size"], resize=config["resize"],
                mean=tuple(config["mean"]), std=tuple(config["std"]),
            )[None]


def quantize_image(src: Path, dst: Path, config: dict[str, Any]) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(_calibration_batches(config))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {config["pixel_values"]: x}

    quantize_static(
        str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv"], calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=_sensitive_convs(src),
    )


def _sensitive_convs(path: Path) -> list[str]:
    """Conv nodes kept in float: the stem and MBConv blocks 0-3, 8, 11 and 15 (torch export names)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    keep = ("/_conv_stem/", *(f"/_blocks.{b}/" for b in FLOAT_BLOCKS))
    return [n.name for n in model.graph.node if n.op_type == "Conv" and n.name.startswith(keep)]

"""int8 versions of the encoders (onnxruntime.quantization).

* text: dynamic quantisation, per-channel int8 weights (MatMul / Gemm).
* image: static QDQ quantisation of the convolutions, calibrated on the real sample images that ship
  with scikit-image and scikit-learn. The stem and the first two MBConv blocks (the layers most
  sensitive to 8-bit activations: quantising them drops the feature cosine to float from 0.95 to
  0.75 on the sample images), the classifier and the ConSE head stay in float. Dynamic int8 wrecks
  this network (cosine 0.37 to float in a trial).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._imageio import preprocess, to_rgb
from ._samples import sample_images

__all__ = ["quantize_image", "quantize_text"]


def quantize_text(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
    )


def _calibration_batches(config: dict[str, Any]) -> Iterator[np.ndarray]:
    for img in sample_images().values():
        rgb = to_rgb(img)
        for flip in (False, True):
            x = rgb[:, ::-1] if flip else rgb
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
    """Conv nodes kept in float: the stem and MBConv blocks 0 and 1 (names from the torch export)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    keep = ("/_conv_stem/", "/_blocks.0/", "/_blocks.1/")
    return [n.name for n in model.graph.node if n.op_type == "Conv" and n.name.startswith(keep)]

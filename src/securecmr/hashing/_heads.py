"""Hash heads: the per-modality functions from features to real-valued code projections.

A head maps (n, d) features to (n, bits) real values; the code bit is 1 where the value is > 0.

* :class:`LinearHead` ``((f(x) - mean) @ W)`` runs in plain numpy (``f`` = identity or signed
  square root, the Hellinger map for histograms).
* :class:`KernelHead` ``act(rbf(f(x), anchors) @ W1 + b1) @ W2 + b2`` (RBF kernel features on anchor
  points, then a linear classifier/regressor and a second linear map onto the code space) is kept as
  an ONNX graph that this module writes with ``onnx.helper``; it runs through onnxruntime both after
  ``fit`` and after ``load``, so saved and in-memory hashers give bit-identical codes and the runtime
  never needs torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._lazy import require

__all__ = ["Head", "KernelHead", "LinearHead", "signed_sqrt"]

_OPSET = 17


def signed_sqrt(x: np.ndarray) -> np.ndarray:
    """``sign(x) * sqrt(|x|)``: the Hellinger map for non-negative histograms."""
    return np.sign(x) * np.sqrt(np.abs(x))


class Head:
    """Common interface: ``in_dim``, ``out_dim`` and ``forward``."""

    kind: str = "head"
    in_dim: int
    out_dim: int

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def embed(self, x: np.ndarray) -> np.ndarray:
        """The real-valued space the codes are taken from (default: the projections themselves)."""
        return self.forward(x)

    def state(self, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:  # pragma: no cover
        raise NotImplementedError


class LinearHead(Head):
    """``(f(x) - mean) @ W``; ``f`` is identity or the signed square root."""

    kind = "linear"

    def __init__(self, mean: np.ndarray, weight: np.ndarray, *, sqrt: bool = False) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.weight = np.asarray(weight, dtype=np.float64)
        self.sqrt = bool(sqrt)
        self.in_dim = int(self.weight.shape[0])
        self.out_dim = int(self.weight.shape[1])

    def forward(self, x: np.ndarray) -> np.ndarray:
        z = signed_sqrt(x) if self.sqrt else x
        return np.asarray((z - self.mean) @ self.weight)

    def state(self, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"kind": self.kind, "sqrt": self.sqrt}, {
            f"{prefix}mean": self.mean,
            f"{prefix}weight": self.weight,
        }

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str) -> LinearHead:
        return cls(arrays[f"{prefix}mean"], arrays[f"{prefix}weight"], sqrt=bool(meta.get("sqrt", False)))


class KernelHead(Head):
    """RBF features on anchors, an optional linear layer + activation, then a linear map; as ONNX."""

    kind = "onnx"

    def __init__(self, model_bytes: bytes, in_dim: int, out_dim: int) -> None:
        self.model_bytes = bytes(model_bytes)
        self.in_dim = int(in_dim)
        self.out_dim = int(out_dim)
        self._session: Any = None

    @classmethod
    def build(
        cls,
        *,
        anchors: np.ndarray | None,
        gamma: float,
        w1: np.ndarray,
        b1: np.ndarray,
        activation: str,
        w2: np.ndarray,
        b2: np.ndarray,
        sqrt: bool,
        mean: np.ndarray | None = None,
        rank_classes: np.ndarray | None = None,
        conf_classes: np.ndarray | None = None,
        conf_thresholds: np.ndarray | None = None,
    ) -> KernelHead:
        """Write the ONNX graph ``act(rbf(f(x)) @ w1 + b1) @ w2 + b2`` (``mean`` centres the rbf features
        before ``w1``; ``anchors=None`` skips the kernel: a linear classifier on ``f(x)``).
        ``activation`` is ``softmax``, ``sigmoid``, ``none`` or ``rank``: for ``rank``
        the output is ``b2 - rank[:, rank_classes]`` where ``rank[c]`` counts the classes scored above
        class ``c`` (0 = the top class) and ``w2`` is unused; bit ``j`` is then "class
        ``rank_classes[j]`` is among the top ``b2[j] + 0.5``". ``conf_classes`` / ``conf_thresholds``
        append confidence outputs ``softmax[:, conf_classes] - conf_thresholds`` (bit: "the class's
        score exceeds the threshold"). Needs the ``onnx`` package."""
        onnx = require("onnx", extra="train")
        helper, tp = onnx.helper, onnx.TensorProto
        nph = require("onnx.numpy_helper", package="onnx", extra="train")
        f32 = np.float32
        inits = [
            nph.from_array(np.asarray(w1, dtype=f32), "w1"),
            nph.from_array(np.asarray(b1, dtype=f32).reshape(1, -1), "b1"),
            nph.from_array(np.asarray(b2, dtype=f32).reshape(1, -1), "b2"),
        ]
        nodes = []
        src = "x"
        if sqrt:
            nodes += [
                helper.make_node("Abs", ["x"], ["x_abs"]),
                helper.make_node("Sqrt", ["x_abs"], ["x_sqrt"]),
                helper.make_node("Sign", ["x"], ["x_sign"]),
                helper.make_node("Mul", ["x_sign", "x_sqrt"], ["x_h"]),
            ]
            src = "x_h"
        if anchors is None:  # a linear classifier on f(x)
            in_dim = int(np.asarray(w1).shape[0])
            nodes.append(helper.make_node("Identity", [src], ["k"]))
        else:
            anchors = np.asarray(anchors, dtype=f32)
            in_dim = int(anchors.shape[1])
            inits += [
                nph.from_array(np.ascontiguousarray(anchors.T), "anchors_t"),
                nph.from_array(
                    (anchors.astype(np.float64) ** 2).sum(axis=1).astype(f32)[None, :], "anchor_sq"
                ),
                nph.from_array(np.array([-float(gamma)], dtype=f32), "neg_gamma"),
                nph.from_array(np.array([-2.0], dtype=f32), "minus_two"),
                nph.from_array(np.array([0.0], dtype=f32), "zero"),
                nph.from_array(np.array([1], dtype=np.int64), "axis1"),
            ]
            nodes += [
                helper.make_node("Mul", [src, src], ["x_sq_el"]),
                helper.make_node("ReduceSum", ["x_sq_el", "axis1"], ["x_sq"], keepdims=1),
                helper.make_node("MatMul", [src, "anchors_t"], ["xa"]),
                helper.make_node("Mul", ["xa", "minus_two"], ["xa2"]),
                helper.make_node("Add", ["xa2", "x_sq"], ["d1"]),
                helper.make_node("Add", ["d1", "anchor_sq"], ["d2"]),
                helper.make_node("Max", ["d2", "zero"], ["dist"]),
                helper.make_node("Mul", ["dist", "neg_gamma"], ["dg"]),
                helper.make_node("Exp", ["dg"], ["k"]),
            ]
        ksrc = "k"
        if mean is not None:
            inits.append(nph.from_array(np.asarray(mean, dtype=f32).reshape(1, -1), "k_mean"))
            nodes.append(helper.make_node("Sub", ["k", "k_mean"], ["k_c"]))
            ksrc = "k_c"
        nodes += [
            helper.make_node("MatMul", [ksrc, "w1"], ["h0"]),
            helper.make_node("Add", ["h0", "b1"], ["h1"]),
        ]
        if activation == "softmax":
            nodes.append(helper.make_node("Softmax", ["h1"], ["h"], axis=1))
        elif activation == "sigmoid":
            nodes.append(helper.make_node("Sigmoid", ["h1"], ["h"]))
        elif activation == "none":
            nodes.append(helper.make_node("Identity", ["h1"], ["h"]))
        elif activation == "rank":
            nodes.append(helper.make_node("Softmax", ["h1"], ["h"], axis=1))
            if rank_classes is None:
                raise ValueError("activation='rank' needs rank_classes")
            inits += [
                nph.from_array(np.array([1], dtype=np.int64), "ax_1"),
                nph.from_array(np.array([2], dtype=np.int64), "ax_2"),
                nph.from_array(np.asarray(rank_classes, dtype=np.int64), "rank_classes"),
            ]
            nodes += [
                helper.make_node("Unsqueeze", ["h1", "ax_1"], ["h_row"]),  # (n, 1, C): z[c']
                helper.make_node("Unsqueeze", ["h1", "ax_2"], ["h_col"]),  # (n, C, 1): z[c]
                helper.make_node("Greater", ["h_row", "h_col"], ["above"]),  # z[c'] > z[c]
                helper.make_node("Cast", ["above"], ["above_f"], to=tp.FLOAT),
                helper.make_node("ReduceSum", ["above_f", "ax_2"], ["rank"], keepdims=0),
                helper.make_node("Gather", ["rank", "rank_classes"], ["rank_sel"], axis=1),
                helper.make_node("Sub", ["b2", "rank_sel"], ["y_rank"]),
            ]
            if conf_classes is not None and len(conf_classes):
                inits += [
                    nph.from_array(np.asarray(conf_classes, dtype=np.int64), "conf_classes"),
                    nph.from_array(np.asarray(conf_thresholds, dtype=f32).reshape(1, -1), "conf_thr"),
                ]
                nodes += [
                    helper.make_node("Gather", ["h", "conf_classes"], ["conf_sel"], axis=1),
                    helper.make_node("Sub", ["conf_sel", "conf_thr"], ["y_conf"]),
                    helper.make_node("Concat", ["y_rank", "y_conf"], ["y"], axis=1),
                ]
            else:
                nodes.append(helper.make_node("Identity", ["y_rank"], ["y"]))
        else:
            raise ValueError(f"unknown activation {activation!r}")
        if activation != "rank":
            inits.append(nph.from_array(np.asarray(w2, dtype=f32), "w2"))
            nodes += [
                helper.make_node("MatMul", ["h", "w2"], ["y0"]),
                helper.make_node("Add", ["y0", "b2"], ["y"]),
            ]
        n_conf = 0 if conf_classes is None else len(conf_classes)
        out_dim = int(np.asarray(b2).reshape(-1).shape[0]) + (n_conf if activation == "rank" else 0)
        n_scores = int(np.asarray(w1).shape[1])
        nodes.append(helper.make_node("Identity", ["h"], ["p"]))
        graph = helper.make_graph(
            nodes,
            "securecmr_hash_head",
            [helper.make_tensor_value_info("x", tp.FLOAT, ["n", in_dim])],
            [
                helper.make_tensor_value_info("y", tp.FLOAT, ["n", out_dim]),
                helper.make_tensor_value_info("p", tp.FLOAT, ["n", n_scores]),
            ],
            initializer=inits,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="securecmr.hashing"
        )
        model.ir_version = 8
        onnx.checker.check_model(model)
        return cls(model.SerializeToString(), in_dim, out_dim)

    def _sess(self) -> Any:
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(
                self.model_bytes, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        return self._session

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = self._sess().run(["y"], {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]
        return np.asarray(out, dtype=np.float64)

    def embed(self, x: np.ndarray) -> np.ndarray:
        """The second output ``p`` (the activation before the code map: class scores) when present."""
        sess = self._sess()
        if "p" not in {o.name for o in sess.get_outputs()}:
            return self.forward(x)
        out = sess.run(["p"], {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]
        return np.asarray(out, dtype=np.float64)

    def state(self, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"kind": self.kind, "in_dim": self.in_dim, "out_dim": self.out_dim}, {
            f"{prefix}onnx": np.frombuffer(self.model_bytes, dtype=np.uint8).copy()
        }

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str) -> KernelHead:
        return cls(arrays[f"{prefix}onnx"].tobytes(), int(meta["in_dim"]), int(meta["out_dim"]))


def head_from_state(meta: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str) -> Head:
    if meta.get("kind") == LinearHead.kind:
        return LinearHead.from_state(meta, arrays, prefix)
    if meta.get("kind") == KernelHead.kind:
        return KernelHead.from_state(meta, arrays, prefix)
    raise KeyError(f"unknown head kind {meta.get('kind')!r}")

"""Training the per-modality hash functions of the two-step hashers (torch, imported lazily)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._lazy import require

__all__ = ["KernelClassifier", "fit_classifier"]


class KernelClassifier:
    """Plain container for a fitted classifier on RBF-anchor features (``anchors=None``: on the
    (signed-square-rooted) inputs themselves, a linear classifier): ``probs(x)`` in numpy (training
    only)."""

    def __init__(
        self,
        anchors: np.ndarray | None,
        gamma: float,
        weight: np.ndarray,
        bias: np.ndarray,
        sqrt: bool,
        multilabel: bool,
    ) -> None:
        self.anchors, self.gamma, self.weight, self.bias = anchors, gamma, weight, bias
        self.sqrt, self.multilabel = sqrt, multilabel

    def logits(self, x: np.ndarray) -> np.ndarray:
        from ._heads import signed_sqrt
        from ._linalg import rbf_features

        z = signed_sqrt(x) if self.sqrt else x
        k = z if self.anchors is None else rbf_features(z, self.anchors, self.gamma)
        return np.asarray(k @ self.weight + self.bias)

    def probs(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x)
        if self.multilabel:
            return np.asarray(1.0 / (1.0 + np.exp(-z)))
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True))


def fit_classifier(
    feats: np.ndarray, targets: np.ndarray, *, multilabel: bool, reg: float, max_iter: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial (softmax cross-entropy) or multi-label (sigmoid) logistic regression with an L2
    penalty, full-batch L-BFGS. Returns ``(weight (m, L), bias (L,))``."""
    torch: Any = require("torch", extra="train")
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    f = torch.as_tensor(feats, dtype=torch.float32)
    t = torch.as_tensor(targets, dtype=torch.float32)
    if not multilabel:
        t = t / t.sum(dim=1, keepdim=True).clamp_min(1.0)
    w = torch.zeros((f.shape[1], t.shape[1]), dtype=torch.float32, requires_grad=True)
    b = torch.zeros((t.shape[1],), dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe", tolerance_grad=1e-6
    )
    n = float(f.shape[0])

    def closure() -> Any:
        opt.zero_grad()
        z = f @ w + b
        if multilabel:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, t, reduction="sum") / n
        else:
            loss = -(t * torch.log_softmax(z, dim=1)).sum() / n
        loss = loss + reg * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().astype(np.float64), b.detach().numpy().astype(np.float64)

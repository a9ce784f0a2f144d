"""Evaluation of cross-modal retrieval: metrics on packed codes and dataset loaders.

Metrics (Hamming ranking with a stable sort: ties keep database order; relevant = shares a label):
:func:`mean_average_precision`, :func:`precision_at_k`, :func:`precision_recall_curve`,
:func:`recall_at_k` (paired retrieval), :func:`float_mean_average_precision` (cosine ranking).
Loaders return :class:`CrossModalData`: :func:`load_wikipedia`, :func:`load_mat`,
:func:`load_medpix`, :func:`load_manifest`. :func:`evaluate` runs one method at several lengths.
"""

from __future__ import annotations

from ._datasets import CrossModalData, Split, load_manifest, load_mat, load_medpix, load_wikipedia
from ._metrics import (
    float_mean_average_precision,
    hamming_distance,
    mean_average_precision,
    precision_at_k,
    precision_recall_curve,
    recall_at_k,
    relevance,
)
from ._run import PROTOCOLS, evaluate

__all__ = [
    "PROTOCOLS",
    "CrossModalData",
    "Split",
    "evaluate",
    "float_mean_average_precision",
    "hamming_distance",
    "load_manifest",
    "load_mat",
    "load_medpix",
    "load_wikipedia",
    "mean_average_precision",
    "precision_at_k",
    "precision_recall_curve",
    "recall_at_k",
    "relevance",
]

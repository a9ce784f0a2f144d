"""The 1,000 ImageNet-1k class names used by the ConSE zero-shot head (see data/NOTICE)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import numpy as np

__all__ = ["class_prompt_groups", "class_prompts", "imagenet_classes"]


def imagenet_classes() -> list[tuple[str, str]]:
    """(synset, lemmas) for the 1,000 classes in class-index order."""
    text = resources.files("securecmr.encoders").joinpath("data/imagenet1k_lemmas.tsv").read_text("utf-8")
    rows = [tuple(line.split("\t", 1)) for line in text.splitlines() if line.strip()]
    return [(r[0], r[1]) for r in rows]


def class_prompts() -> list[str]:
    """The text embedded for each class: ``"a photo of a <first lemma>"``."""
    return [f"a photo of a {lemmas.split(',')[0].strip()}" for _, lemmas in imagenet_classes()]

SYNONYMS = 3  # lemmas per class whose prompts are averaged (tuned by bench/conse.py)


def class_prompt_groups(synonyms: int = SYNONYMS) -> list[list[str]]:
    """Per class, ``"a photo of a <lemma>"`` for its first ``synonyms`` lemmas (the ConSE head
    averages their embeddings: "tabby, tabby cat" says more than "tabby")."""
    out = []
    for _, lemmas in imagenet_classes():
        names = [x.strip() for x in lemmas.split(",") if x.strip()][:synonyms]
        out.append([f"a photo of a {x}" for x in names])
    return out


def embed_class_prompts(embed: Callable[[list[str]], np.ndarray], synonyms: int = SYNONYMS) -> np.ndarray:
    """(1000, d) unit rows: the mean of each class's prompt embeddings (``embed`` maps texts to rows)."""
    groups = class_prompt_groups(synonyms)
    flat = [p for g in groups for p in g]
    emb = np.asarray(embed(flat), dtype=np.float64)
    out, i = [], 0
    for g in groups:
        v = emb[i : i + len(g)].mean(axis=0)
        out.append(v / np.linalg.norm(v))
        i += len(g)
    return np.asarray(out, dtype=np.float32)

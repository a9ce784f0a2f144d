"""The 1,000 ImageNet-1k class names used by the ConSE zero-shot head (see data/NOTICE)."""

from __future__ import annotations

from importlib import resources

__all__ = ["class_prompts", "imagenet_classes"]


def imagenet_classes() -> list[tuple[str, str]]:
    """(synset, lemmas) for the 1,000 classes in class-index order."""
    text = resources.files("securecmr.encoders").joinpath("data/imagenet1k_lemmas.tsv").read_text("utf-8")
    rows = [tuple(line.split("\t", 1)) for line in text.splitlines() if line.strip()]
    return [(r[0], r[1]) for r in rows]


def class_prompts() -> list[str]:
    """The text embedded for each class: ``"a photo of a <first lemma>"``."""
    return [f"a photo of a {lemmas.split(',')[0].strip()}" for _, lemmas in imagenet_classes()]

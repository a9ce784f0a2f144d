"""Shared helpers for the store tests (generated codes; no models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import securecmr

PASS = "correct horse battery staple"
MODES = ("none", "salted", "encrypted", "salted+encrypted")


def items(n: int, bits: int = 64, seed: int = 0, multi: bool = True) -> list[securecmr.Item]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        codes = {"image": rng.integers(0, 256, bits // 8, dtype=np.uint8)}
        if multi and i % 3 == 0:
            codes["text"] = rng.integers(0, 256, bits // 8, dtype=np.uint8)
        out.append(
            securecmr.Item(
                f"patient-{i:05d}",
                labels=(f"label-{i % 4}xq",),
                attrs={"site": f"site-{i % 2}zz", "n": i},
                ref=f"ref-{i}.png",
                codes=codes,
            )
        )
    return out


def brute(items_: list[securecmr.Item], query: np.ndarray, k: int) -> list[tuple[str, int]]:
    """Reference ranking: min Hamming over an item's codes, ties by insertion order."""
    rows = []
    for pos, it in enumerate(items_):
        d = min(int(np.unpackbits(np.bitwise_xor(c, query)).sum()) for c in (it.codes or {}).values())
        rows.append((d, pos, str(it.id)))
    rows.sort()
    return [(i, d) for d, _, i in rows[:k]]


def new_store(tmp: Path, **kw: object) -> securecmr.Store:
    return securecmr.Store.create(tmp / "store", passphrase=PASS, **kw)  # type: ignore[arg-type]

"""Hamming-preserving salt: a keyed bit permutation plus an XOR mask (HKDF from the collection key).

``d(salt(a), salt(b)) == d(a, b)`` for every pair of codes, so search results are unchanged. This is
obfuscation against someone who reads stored codes without the key, not encryption: neighbour
structure survives and a few known (code, salted code) pairs reveal the mask (see
docs/security/limitations.md).
"""

from __future__ import annotations

import numpy as np

from ._crypto import hkdf

__all__ = ["Salt"]


class Salt:
    """Keyed bijection on packed ``bits``-wide codes that preserves Hamming distances."""

    def __init__(self, key: bytes, bits: int) -> None:
        self.bits = bits
        seed = int.from_bytes(hkdf(key, "securecmr/salt/perm", 32), "big")
        rng = np.random.default_rng(seed)
        self._perm = rng.permutation(bits)
        self._inv = np.argsort(self._perm)
        mask = np.frombuffer(hkdf(key, "securecmr/salt/mask", 255)[: bits // 8], dtype=np.uint8)
        self._mask = mask.copy()

    def __repr__(self) -> str:
        return f"Salt(bits={self.bits}, <key>)"

    def apply(self, codes: np.ndarray) -> np.ndarray:
        bits = np.unpackbits(codes, axis=1)[:, self._perm]
        return np.packbits(bits, axis=1) ^ self._mask

    def invert(self, codes: np.ndarray) -> np.ndarray:
        bits = np.unpackbits(codes ^ self._mask, axis=1)[:, self._inv]
        return np.packbits(bits, axis=1)

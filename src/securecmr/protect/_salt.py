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

_TABLE_MIN_ROWS = 64  # below this, unpacking the bits is as fast as the lookups
_TABLE_MAX_BYTES = 64  # the lookup table holds bytes * 256 * bytes entries


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
        self._table: np.ndarray | None = None
        self._int_table: list[list[int]] | None = None
        self._int_mask = 0

    def _lookup(self) -> np.ndarray | None:
        """Per input byte position and value, the permuted output bytes (one table row per byte
        value), so many codes are salted with ``bits / 8`` gathers instead of unpacking every bit."""
        nb = self.bits // 8
        if nb > _TABLE_MAX_BYTES or nb % 8:
            return None
        if self._table is None:
            probe = np.zeros((nb, 256, nb), dtype=np.uint8)
            probe[np.arange(nb)[:, None], np.arange(256)[None, :], np.arange(nb)[:, None]] = np.arange(
                256, dtype=np.uint8
            )[None, :]
            bits = np.unpackbits(probe.reshape(-1, nb), axis=1)[:, self._perm]
            packed = np.ascontiguousarray(np.packbits(bits, axis=1))
            self._table = packed.view(np.uint64).reshape(nb, 256, nb // 8)
        return self._table

    def __repr__(self) -> str:
        return f"Salt(bits={self.bits}, <key>)"

    def _apply_one(self, code: bytes, table: np.ndarray) -> np.ndarray:
        """One code through the same table, as Python integers (a query: no array overhead)."""
        if self._int_table is None:
            nb = self.bits // 8
            rows = table.reshape(nb, 256, -1).view(np.uint8).reshape(nb, 256, nb)
            self._int_table = [
                [int.from_bytes(rows[j, v].tobytes(), "little") for v in range(256)] for j in range(nb)
            ]
            self._int_mask = int.from_bytes(self._mask.tobytes(), "little")
        x = self._int_mask
        for part, b in zip(self._int_table, code, strict=True):
            x ^= part[b]
        return np.frombuffer(bytearray(x.to_bytes(len(code), "little")), dtype=np.uint8).reshape(1, -1)

    def apply(self, codes: np.ndarray) -> np.ndarray:
        if codes.shape[0] == 1:
            table = self._lookup()
            if table is not None:
                return self._apply_one(np.ascontiguousarray(codes, dtype=np.uint8).tobytes(), table)
        table = self._lookup() if codes.shape[0] >= _TABLE_MIN_ROWS else None
        if table is None:
            bits = np.unpackbits(codes, axis=1)[:, self._perm]
            return np.packbits(bits, axis=1) ^ self._mask
        out = table[0][codes[:, 0]]
        for j in range(1, codes.shape[1]):
            out ^= table[j][codes[:, j]]
        return out.view(np.uint8) ^ self._mask

    def invert(self, codes: np.ndarray) -> np.ndarray:
        bits = np.unpackbits(codes ^ self._mask, axis=1)[:, self._inv]
        return np.packbits(bits, axis=1)

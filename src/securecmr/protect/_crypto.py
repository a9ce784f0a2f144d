"""AEAD sealing, keyed HMACs and HKDF sub-keys (private primitives behind the store's recipes)."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable

from ..errors import DecryptionError

__all__ = ["HmacSha256", "Sealer", "hkdf", "keyed_hmac"]

_NONCE = 12


def hkdf(key: bytes, label: str, length: int = 32) -> bytes:
    """HKDF-SHA256 sub-key of ``key`` for the purpose ``label``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label.encode()).derive(key)


def keyed_hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


class HmacSha256:
    """HMAC-SHA256 under one fixed key, with the padded key blocks hashed once (RFC 2104), so each
    message costs two hash-state copies instead of a new HMAC object. Same output as ``hmac``."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def __repr__(self) -> str:
        return "HmacSha256(<key>)"

    def digest(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def hexdigest(self, data: bytes) -> str:
        return self.digest(data).hex()

    def digest_many(self, datas: Iterable[bytes]) -> list[bytes]:
        """``[self.digest(d) for d in datas]``, with the per-call overhead hoisted out of the loop."""
        new_inner, new_outer = self._inner.copy, self._outer.copy
        out: list[bytes] = []
        append = out.append
        for data in datas:
            inner = new_inner()
            inner.update(data)
            outer = new_outer()
            outer.update(inner.digest())
            append(outer.digest())
        return out


class Sealer:
    """AES-256-GCM with a random 96-bit nonce; ``open`` raises one opaque DecryptionError."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise ValueError("AES-256-GCM needs a 32-byte key")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "Sealer(<key>)"

    def seal(self, data: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, aad)

    def seal_many(self, datas: list[bytes], aads: list[bytes]) -> list[bytes]:
        nonces = os.urandom(_NONCE * len(datas))
        enc = self._aead.encrypt
        out = []
        for i, (d, a) in enumerate(zip(datas, aads, strict=True)):
            n = nonces[i * _NONCE : (i + 1) * _NONCE]
            out.append(n + enc(n, d, a))
        return out

    def open(self, blob: bytes | memoryview, aad: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            view = memoryview(blob)  # no copy of a large blob
            return self._aead.decrypt(view[:_NONCE], view[_NONCE:], aad)
        except (InvalidTag, ValueError):
            raise DecryptionError("data does not decrypt: wrong key or tampered data") from None

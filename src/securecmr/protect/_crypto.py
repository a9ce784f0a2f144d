"""The one sealing recipe: AES-256-GCM sealing, keyed HMAC-SHA256 tags checked in constant time,
and sub-keys, each in one place (every package that seals, tags or derives uses these)."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable

from ..errors import DecryptionError

__all__ = ["HmacSha256", "Sealer", "hkdf", "hmac_subkey", "keyed_hmac", "tags_equal"]

_NONCE = 12


def hkdf(key: bytes, label: str, length: int = 32) -> bytes:
    """HKDF-SHA256 sub-key of ``key`` for the purpose ``label``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label.encode()).derive(key)


def hmac_subkey(secret: bytes, label: str) -> bytes:
    """HMAC-SHA256(secret, label): the derivation of the sub-keys stores already in use were made
    with (access tokens, registry and audit keys; query-monitor keys). New sub-keys use :func:`hkdf`."""
    return hmac.new(secret, label.encode(), hashlib.sha256).digest()


def keyed_hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def tags_equal(a: bytes | str, b: bytes | str) -> bool:
    """Constant-time comparison of two tags, bytes or hex (every MAC check goes through this)."""
    if isinstance(a, str) and isinstance(b, str):
        return hmac.compare_digest(a.encode("ascii", "replace"), b.encode("ascii", "replace"))
    if isinstance(a, bytes) and isinstance(b, bytes):
        return hmac.compare_digest(a, b)
    return False


class HmacSha256:
    """HMAC-SHA256 under one fixed key: the keyed state is built once and copied per message
    (``hmac.HMAC.copy``), instead of a new HMAC object per message. Same output as ``hmac``."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes) -> None:
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return "HmacSha256(<key>)"

    def digest(self, data: bytes) -> bytes:
        h = self._base.copy()
        h.update(data)
        return h.digest()

    def hexdigest(self, data: bytes) -> str:
        return self.digest(data).hex()

    def verify(self, data: bytes, tag: bytes, length: int = 32) -> bool:
        """True when ``tag`` is the (first ``length`` bytes of the) tag of ``data`` (constant time)."""
        return hmac.compare_digest(self.digest(data)[:length], tag)

    def digest_many(self, datas: Iterable[bytes]) -> list[bytes]:
        """``[self.digest(d) for d in datas]``, with the per-call overhead hoisted out of the loop."""
        new = self._base.copy
        out: list[bytes] = []
        append = out.append
        for data in datas:
            h = new()
            h.update(data)
            append(h.digest())
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

"""The store keyring: a master key protected by a passphrase (scrypt) or a raw key from a
:class:`KeyProvider`, wrapping per-collection data keys and salt keys (envelope encryption).

File ``keyring.json`` (checksummed, replaced atomically)::

    {"format": 1, "store_id": ..., "kdf": {"name": "scrypt", "salt": ..., "n": .., "r": .., "p": ..}
     | {"name": "raw"}, "sealed": base64(AES-GCM(KEK, secrets-json, aad=store_id))}

The secrets are the master key and, under it, one entry per collection (``salt`` key and data keys by
version) plus the store secret from which access, audit and monitor keys are derived. Because the
collection keys are wrapped by the master key in one file, ``rotate`` replaces the file atomically:
an interrupted rotation leaves either the old or the new keyring, both complete.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigurationError, DecryptionError, IntegrityError, KeyringError
from ._atomic import read_checked, write_checked
from ._crypto import Sealer

__all__ = [
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyProvider",
    "Keyring",
    "PassphraseProvider",
    "RawKeyProvider",
]

_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
KEYRING_FILE = "keyring.json"
# bounds accepted on load: below them the passphrase is cheap to guess, above them opening the store
# would take minutes or more memory than an edge box has (scrypt needs 128 * n * r * p bytes)
_SCRYPT_N = (2**14, 2**22)
_SCRYPT_R = (1, 32)
_SCRYPT_P = (1, 16)
_SCRYPT_MAX_MEMORY = 2**31
_SALT_BYTES = (16, 64)


def check_kdf_params(params: object) -> dict[str, Any]:
    """The keyring's KDF parameters, checked (KeyringError naming the bad field otherwise)."""
    if not isinstance(params, dict):
        raise KeyringError(f"{KEYRING_FILE}: the kdf entry must be an object")
    name = params.get("name")
    if name == "raw":
        if set(params) != {"name"}:
            raise KeyringError(f"{KEYRING_FILE}: a raw-key kdf entry takes no parameters")
        return dict(params)
    if name != "scrypt":
        raise KeyringError(f"{KEYRING_FILE}: unknown kdf {name!r} (expected 'scrypt' or 'raw')")
    if set(params) != {"name", "salt", "n", "r", "p"}:
        raise KeyringError(f"{KEYRING_FILE}: the scrypt entry needs exactly salt, n, r and p")
    for key, (lo, hi) in (("n", _SCRYPT_N), ("r", _SCRYPT_R), ("p", _SCRYPT_P)):
        v = params[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise KeyringError(f"{KEYRING_FILE}: scrypt {key}={v!r} is outside [{lo}, {hi}]")
    n = params["n"]
    if n & (n - 1):
        raise KeyringError(f"{KEYRING_FILE}: scrypt n={n} is not a power of two")
    if 128 * n * params["r"] * params["p"] > _SCRYPT_MAX_MEMORY:
        raise KeyringError(f"{KEYRING_FILE}: scrypt n*r*p needs more than 2 GiB of memory")
    salt = params["salt"]
    try:
        raw = base64.b64decode(salt, validate=True) if isinstance(salt, str) else b""
    except ValueError:
        raw = b""
    if not _SALT_BYTES[0] <= len(raw) <= _SALT_BYTES[1]:
        raise KeyringError(
            f"{KEYRING_FILE}: the scrypt salt must be base64 of {_SALT_BYTES[0]}-{_SALT_BYTES[1]} bytes"
        )
    return dict(params)


@runtime_checkable
class KeyProvider(Protocol):
    """Supplies the 32-byte key-encryption key (plug in an HSM or KMS here).

    ``kdf_params()`` returns the JSON-able parameters stored in the keyring (may be ``{}``);
    ``derive(params)`` returns the key for those parameters.
    """

    def kdf_params(self) -> dict[str, Any]: ...

    def derive(self, params: dict[str, Any]) -> bytes: ...


class PassphraseProvider:
    """A passphrase stretched with scrypt (n=2**15, r=8, p=1, 16-byte random salt)."""

    def __init__(self, passphrase: str) -> None:
        if not isinstance(passphrase, str) or not passphrase:
            raise ConfigurationError("the passphrase must be a non-empty string")
        self._passphrase = passphrase

    def __repr__(self) -> str:
        return "PassphraseProvider(<secret>)"

    def kdf_params(self) -> dict[str, Any]:
        return {"name": "scrypt", "salt": base64.b64encode(os.urandom(16)).decode(), **_SCRYPT}

    def derive(self, params: dict[str, Any]) -> bytes:
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        if params.get("name") != "scrypt":
            raise KeyringError("this store is not protected by a passphrase; open it with its key provider")
        params = check_kdf_params(params)
        kdf = Scrypt(
            salt=base64.b64decode(params["salt"]),
            length=32,
            n=int(params["n"]),
            r=int(params["r"]),
            p=int(params["p"]),
        )
        return kdf.derive(self._passphrase.encode("utf-8"))


class RawKeyProvider:
    """A raw 32-byte key."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != 32:
            raise ConfigurationError("a raw store key must be exactly 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<secret>)"

    def kdf_params(self) -> dict[str, Any]:
        return {"name": "raw"}

    def derive(self, params: dict[str, Any]) -> bytes:
        if params.get("name") != "raw":
            raise KeyringError("this store is protected by a passphrase, not a raw key")
        return self._key


class FileKeyProvider(RawKeyProvider):
    """A raw key read from a file: 32 bytes, or 64 hex characters."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(_parse_key(Path(path).read_bytes().strip(), "key file"))


class EnvKeyProvider(RawKeyProvider):
    """A raw key from an environment variable holding 64 hex characters."""

    def __init__(self, var: str = "SECURECMR_KEY") -> None:
        value = os.environ.get(var)
        if not value:
            raise KeyringError(f"environment variable {var} is not set")
        super().__init__(_parse_key(value.strip().encode(), f"${var}"))


def _parse_key(raw: bytes, what: str) -> bytes:
    if len(raw) == 32:
        return raw
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != 32:
        raise KeyringError(f"the {what} must hold a 32-byte key (or 64 hex characters)")
    return key


def provider_for(passphrase: str | None, key_provider: KeyProvider | None) -> KeyProvider:
    if (passphrase is None) == (key_provider is None):
        raise ConfigurationError("give exactly one of passphrase= or key_provider=")
    return key_provider if key_provider is not None else PassphraseProvider(passphrase or "")


@dataclass
class CollectionKeys:
    salt: bytes
    data: dict[int, bytes]
    current: int


@dataclass
class Keyring:
    """The decrypted keyring of one store (kept in memory only)."""

    store_id: str
    master: bytes
    secret: bytes
    collections: dict[str, CollectionKeys] = field(default_factory=dict)
    kdf: dict[str, Any] = field(default_factory=dict)
    state: int = 0  # 1: the store keeps sealed state (roots, registry version, audit anchor)

    def __repr__(self) -> str:
        return f"Keyring(store_id={self.store_id!r}, collections={len(self.collections)})"

    @classmethod
    def new(cls, store_id: str) -> Keyring:
        return cls(store_id=store_id, master=os.urandom(32), secret=os.urandom(32), state=1)

    def add_collection(self, cid: str) -> CollectionKeys:
        keys = CollectionKeys(salt=os.urandom(32), data={1: os.urandom(32)}, current=1)
        self.collections[cid] = keys
        return keys

    # ------------------------------------------------------------------ file
    def _secrets(self) -> bytes:
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        master = Sealer(self.master)
        cols = {}
        for cid, ck in self.collections.items():
            inner = json.dumps(
                {
                    "salt": b64(ck.salt),
                    "data": {str(v): b64(k) for v, k in ck.data.items()},
                    "current": ck.current,
                }
            ).encode()
            cols[cid] = b64(master.seal(inner, f"{self.store_id}/collection/{cid}".encode()))
        return json.dumps(
            {"master": b64(self.master), "secret": b64(self.secret), "collections": cols, "state": self.state}
        ).encode()

    def save(self, directory: Path, provider: KeyProvider, *, fresh_kdf: bool = True) -> None:
        params = provider.kdf_params() if fresh_kdf or not self.kdf else self.kdf
        kek = provider.derive(params)
        sealed = Sealer(kek).seal(self._secrets(), f"securecmr-keyring/{self.store_id}".encode())
        doc = {
            "format": 1,
            "store_id": self.store_id,
            "kdf": params,
            "sealed": base64.b64encode(sealed).decode(),
        }
        write_checked(directory / KEYRING_FILE, json.dumps(doc, sort_keys=True).encode())
        self.kdf = params

    @classmethod
    def load(cls, directory: Path, provider: KeyProvider) -> Keyring:
        path = directory / KEYRING_FILE
        if not path.exists():
            raise KeyringError(f"{KEYRING_FILE} is missing; restore it from a snapshot")
        try:
            doc = json.loads(read_checked(path))
            store_id, params = str(doc["store_id"]), doc["kdf"]
            sealed = base64.b64decode(doc["sealed"])
        except IntegrityError:
            raise
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(f"{KEYRING_FILE}: unreadable keyring") from None
        params = check_kdf_params(params)
        kek = provider.derive(params)
        try:
            body = json.loads(Sealer(kek).open(sealed, f"securecmr-keyring/{store_id}".encode()))
        except DecryptionError:
            raise DecryptionError("wrong passphrase or key for this store (nothing was changed)") from None
        b = base64.b64decode
        ring = cls(
            store_id=store_id,
            master=b(body["master"]),
            secret=b(body["secret"]),
            kdf=params,
            state=int(body.get("state", 0)),
        )
        master = Sealer(ring.master)
        for cid, blob in body["collections"].items():
            inner = json.loads(master.open(b(blob), f"{store_id}/collection/{cid}".encode()))
            ring.collections[cid] = CollectionKeys(
                salt=b(inner["salt"]),
                data={int(v): b(k) for v, k in inner["data"].items()},
                current=int(inner["current"]),
            )
        return ring

    def rotate_master(self) -> None:
        self.master = os.urandom(32)

    def new_data_keys(self) -> None:
        for ck in self.collections.values():
            ck.current = max(ck.data) + 1
            ck.data[ck.current] = os.urandom(32)

    def drop_old_data_keys(self) -> None:
        for ck in self.collections.values():
            ck.data = {ck.current: ck.data[ck.current]}

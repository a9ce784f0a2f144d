"""Protection of stored codes and payloads: keyring, AEAD sealing, Hamming-preserving salt.

The store's recipes are built from this package's pieces, each defined once: the key providers
and keyring, AES-GCM sealing (:class:`Sealer`), keyed tags (:class:`HmacSha256`,
:func:`tags_equal`), sub-keys (:func:`hkdf`), and the one atomic file writer (:func:`atomic_write`:
temp file, fsync, rename, directory fsync; 0600 files in 0700 directories).
"""

from __future__ import annotations

from ._atomic import (
    DIR_MODE,
    FILE_MODE,
    atomic_write,
    ensure_dir,
    open_append,
    read_checked,
    read_checked_view,
    write_checked,
)
from ._crypto import HmacSha256, Sealer, hkdf, hmac_subkey, tags_equal
from ._keyring import (
    KEYRING_FILE,
    CollectionKeys,
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    Keyring,
    PassphraseProvider,
    RawKeyProvider,
    provider_for,
)
from ._salt import Salt

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "KEYRING_FILE",
    "CollectionKeys",
    "EnvKeyProvider",
    "FileKeyProvider",
    "HmacSha256",
    "KeyProvider",
    "Keyring",
    "PassphraseProvider",
    "RawKeyProvider",
    "Salt",
    "Sealer",
    "atomic_write",
    "ensure_dir",
    "hkdf",
    "hmac_subkey",
    "open_append",
    "provider_for",
    "read_checked",
    "read_checked_view",
    "tags_equal",
    "write_checked",
]

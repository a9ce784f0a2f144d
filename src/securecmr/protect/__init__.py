"""Protection of stored codes and payloads: keyring, AEAD sealing, Hamming-preserving salt.

Safe recipes live on :class:`securecmr.Store`; this package exposes the pluggable key providers.
"""

from __future__ import annotations

from ._keyring import EnvKeyProvider, FileKeyProvider, KeyProvider, PassphraseProvider, RawKeyProvider
from ._salt import Salt

__all__ = ["EnvKeyProvider", "FileKeyProvider", "KeyProvider", "PassphraseProvider", "RawKeyProvider", "Salt"]

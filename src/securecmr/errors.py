"""The securecmr exception tree.

Every error raised on purpose by securecmr derives from :class:`SecureCMRError`, and each
subclass also inherits the builtin that matches its meaning, so ``except ValueError`` or
``except PermissionError`` in caller code keeps working::

    SecureCMRError
    ├── ConfigurationError (ValueError)            bad parameters, bad config files
    ├── MissingDependencyError (ImportError)       an optional extra is not installed
    ├── InputError (ValueError)                    bad data handed to the SDK
    │   ├── EmptyInputError                        empty batch, empty text
    │   ├── ShapeError                             wrong array shape, width or dtype; NaN/inf
    │   ├── ImageDecodeError                       corrupt, truncated, zero-size or unsupported image
    │   ├── VideoDecodeError                       unreadable video or no decodable frame
    │   ├── DocumentError                          unreadable PDF, subtitle, DICOM, report
    │   └── ManifestError                          a bad line in an ingest manifest (names the line)
    ├── ModelError                                 encoders and their files
    │   ├── ModelNotFoundError (FileNotFoundError) models not exported / file missing
    │   └── ModelIntegrityError                    a model file does not match its manifest
    ├── NotFittedError (ValueError, AttributeError) estimator used before ``fit``
    ├── SerializationError (ValueError)            a saved file is corrupt or of an unknown version
    ├── StoreError                                 the embedded store
    │   ├── StoreNotFoundError (FileNotFoundError) the directory is not a securecmr store
    │   ├── StoreExistsError (FileExistsError)     ``Store.create`` on an existing store
    │   ├── StoreClosedError                       a call on a closed store or its sessions
    │   ├── StoreLockedError (BlockingIOError)     another process holds the writer lock
    │   ├── CollectionNotFoundError (LookupError)  unknown collection (or not visible to you)
    │   ├── CollectionExistsError (ValueError)     duplicate collection name
    │   ├── ItemNotFoundError (LookupError)        unknown item id
    │   ├── DuplicateItemError (ValueError)        an id that is already stored
    │   ├── LegalHoldError (PermissionError)       erasing an item under legal hold
    │   ├── IntegrityError (ValueError)            a file was altered or corrupted (names the file)
    │   │   └── AuditIntegrityError                the audit chain does not verify (names the record)
    │   └── IndexUnavailableError (ConnectionError) the external index (Milvus) cannot be reached
    ├── CryptoError                                keys and sealing
    │   ├── DecryptionError (ValueError)           wrong key/passphrase or tampered data: one opaque error
    │   └── KeyringError (ValueError)              keyring missing, locked or inconsistent
    ├── UserExistsError (ValueError)               creating a user that exists (no silent replacement)
    ├── UserNotFoundError (LookupError)            no such user
    ├── AuthenticationError (PermissionError)      forged, expired, revoked or malformed token
    ├── PermissionDeniedError (PermissionError)    the principal lacks the permission
    │   ├── ThrottledError                         the guard slowed this principal down
    │   └── BlockedError                           the guard blocked this principal
    ├── PolicyError (ValueError)                   a record-level policy expression does not parse
    ├── WorkerError (RuntimeError)                 a batch-ingest encoding worker died or failed
    └── MonitorError (ValueError)                  anomaly detector misuse (too little history, other store)

Messages never contain secrets, keys, tokens, raw queries or raw item ids of protected
collections.
"""

from __future__ import annotations

__all__ = [
    "AuditIntegrityError",
    "AuthenticationError",
    "BlockedError",
    "CollectionExistsError",
    "CollectionNotFoundError",
    "ConfigurationError",
    "CryptoError",
    "DecryptionError",
    "DocumentError",
    "DuplicateItemError",
    "EmptyInputError",
    "ImageDecodeError",
    "IndexUnavailableError",
    "InputError",
    "IntegrityError",
    "ItemNotFoundError",
    "KeyringError",
    "LegalHoldError",
    "ManifestError",
    "MissingDependencyError",
    "ModelError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "MonitorError",
    "NotFittedError",
    "PermissionDeniedError",
    "PolicyError",
    "SecureCMRError",
    "SerializationError",
    "ShapeError",
    "StoreClosedError",
    "StoreError",
    "StoreExistsError",
    "StoreLockedError",
    "StoreNotFoundError",
    "ThrottledError",
    "UserExistsError",
    "UserNotFoundError",
    "VideoDecodeError",
    "WorkerError",
]


class SecureCMRError(Exception):
    """Root of every error securecmr raises on purpose."""


class ConfigurationError(SecureCMRError, ValueError):
    """Invalid parameters or configuration."""


class MissingDependencyError(SecureCMRError, ImportError):
    """An optional dependency is missing; the message names the package and the extra."""


class InputError(SecureCMRError, ValueError):
    """Bad data handed to the SDK."""


class EmptyInputError(InputError):
    """An empty batch, an empty string or an input with nothing in it."""


class ShapeError(InputError):
    """An array of the wrong shape, width or dtype, or with NaN/inf values."""


class ImageDecodeError(InputError):
    """An image that cannot be decoded: corrupt, truncated, zero-size or unsupported."""


class VideoDecodeError(InputError):
    """A video that cannot be opened or has no decodable frame."""


class DocumentError(InputError):
    """A document (PDF, subtitles, DICOM, report) that cannot be read."""


class ManifestError(InputError):
    """A bad entry in an ingest manifest; ``line`` is its 1-based line number."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line


class ModelError(SecureCMRError):
    """A problem with an encoder model."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """The model files are missing (run ``securecmr models export``)."""


class ModelIntegrityError(ModelError):
    """A model file does not match the sha256 recorded in its manifest."""


class NotFittedError(SecureCMRError, ValueError, AttributeError):
    """An estimator was used before ``fit``."""


class SerializationError(SecureCMRError, ValueError):
    """A saved file is corrupt, truncated or of an unsupported version."""


class StoreError(SecureCMRError):
    """A problem with the embedded store."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The directory does not hold a securecmr store."""


class StoreExistsError(StoreError, FileExistsError):
    """A store already exists at that path."""


class StoreClosedError(StoreError):
    """The store (or a session or collection of it) was closed; open it again."""


class StoreLockedError(StoreError, BlockingIOError):
    """Another process holds the store's writer lock."""


class CollectionNotFoundError(StoreError, LookupError):
    """No such collection (or none visible to this principal)."""


class CollectionExistsError(StoreError, ValueError):
    """A collection with that name already exists."""


class ItemNotFoundError(StoreError, LookupError):
    """No item with that id."""


class DuplicateItemError(StoreError, ValueError):
    """An item with that id is already stored."""


class LegalHoldError(StoreError, PermissionError):
    """The item is under legal hold and cannot be erased."""


class IntegrityError(StoreError, ValueError):
    """A file was altered or corrupted; the message names the file."""


class IndexUnavailableError(StoreError, ConnectionError):
    """The external index (a Milvus server or Milvus Lite file) cannot be reached or rebuilt."""


class AuditIntegrityError(IntegrityError):
    """The audit chain does not verify; the message names the first bad record."""


class CryptoError(SecureCMRError):
    """A problem with keys or sealing."""


class DecryptionError(CryptoError, ValueError):
    """Wrong key or passphrase, or tampered ciphertext. Deliberately says no more."""


class KeyringError(CryptoError, ValueError):
    """The keyring is missing, locked or inconsistent."""


class UserExistsError(SecureCMRError, ValueError):
    """A user of that name exists; it is never silently replaced."""


class UserNotFoundError(SecureCMRError, LookupError):
    """No user of that name."""


class AuthenticationError(SecureCMRError, PermissionError):
    """The token is forged, expired, revoked or malformed."""


class PermissionDeniedError(SecureCMRError, PermissionError):
    """The principal is not allowed to do this."""


class ThrottledError(PermissionDeniedError):
    """The query guard is throttling this principal; retry later."""


class BlockedError(PermissionDeniedError):
    """The query guard blocked this principal; an admin must unblock it."""


class PolicyError(SecureCMRError, ValueError):
    """A record-level policy expression does not parse or names unknown fields."""


class WorkerError(SecureCMRError, RuntimeError):
    """An encoding worker of a batch ingest died or failed; the job can be resumed."""


class MonitorError(SecureCMRError, ValueError):
    """Misuse of the query anomaly detector (too little history, wrong store, ...)."""

"""Snapshot files: a whole store in one sealed file (a backup, not just the data).

Layout (format 2)::

    b"SCMRSNAP2\\n" | u32 header length | header JSON | keyring file | sealed archive

The header (``format``, ``store_id``, ``created``, keyring length) and the keyring are in clear
(the keyring is itself sealed under the passphrase); the archive is AES-GCM sealed under a key
derived from the store secret, with the header and keyring bound in as associated data, so a
changed byte anywhere fails the whole snapshot. The archive is::

    u32 index length | index JSON [{"path", "size", "sha256"}, ...] | the files' bytes, in order

and holds ``store.db`` (a consistent ``VACUUM INTO`` copy) and every file under ``access/``
(users, token hashes, roles, the audit log and its checkpoints) and ``monitor/`` (query log,
fitted detector, guard state). Index segments are caches and are rebuilt on open. Format-1
snapshots (database only) are still read.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import IntegrityError
from ..protect._crypto import Sealer, hkdf
from ..protect._keyring import KEYRING_FILE, KeyProvider, Keyring

__all__ = ["MAGIC_V1", "MAGIC_V2", "SNAPSHOT_DIRS", "Snapshot", "pack", "unpack"]

MAGIC_V1 = b"SCMRSNAP1\n"
MAGIC_V2 = b"SCMRSNAP2\n"
SNAPSHOT_DIRS = ("access", "monitor")  # what besides the database a backup carries
_SKIP_SUFFIXES = (".tmp", ".lock")


@dataclass(frozen=True)
class Snapshot:
    """A verified, decrypted snapshot held in memory (nothing written yet)."""

    store_id: str
    created: float | None
    keyring: bytes
    files: dict[str, bytes]  # relative POSIX path -> bytes ("store.db" included)
    ring: Keyring
    format: int


def store_files(root: Path) -> Iterable[tuple[str, Path]]:
    """(relative path, file) of every file a snapshot carries besides the database."""
    for top in SNAPSHOT_DIRS:
        base = root / top
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*")):
            if p.is_file() and not p.is_symlink() and not p.name.endswith(_SKIP_SUFFIXES):
                yield p.relative_to(root).as_posix(), p


def _aad(store_id: str, header: bytes, ring: bytes) -> bytes:
    bound = hashlib.sha256(header + ring).hexdigest()
    return f"securecmr/snapshot/2|{store_id}|{bound}".encode()


def pack(secret: bytes, store_id: str, created: float, keyring: bytes, files: dict[str, bytes]) -> bytes:
    """The bytes of a format-2 snapshot of ``files`` (relative path -> bytes)."""
    index = [
        {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in files.items()
    ]
    idx = json.dumps(index, sort_keys=True).encode()
    archive = len(idx).to_bytes(4, "big") + idx + b"".join(files.values())
    header = json.dumps(
        {"format": 2, "store_id": store_id, "created": created, "keyring": len(keyring)}, sort_keys=True
    ).encode()
    sealed = Sealer(hkdf(secret, "securecmr/snapshot")).seal(archive, _aad(store_id, header, keyring))
    return MAGIC_V2 + len(header).to_bytes(4, "big") + header + keyring + sealed


def _safe(name: object) -> str:
    """A relative path inside the store that a snapshot may write (no escape, known places only)."""
    if not isinstance(name, str):
        raise ValueError("bad path")
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError("bad path")
    if name != "store.db" and p.parts[0] not in SNAPSHOT_DIRS:
        raise ValueError("bad path")
    return name


def unpack(data: bytes, provider: KeyProvider, label: str) -> Snapshot:
    """Parse, authenticate and decrypt a snapshot in memory; IntegrityError (naming ``label``) for
    anything that does not verify, DecryptionError for a wrong passphrase. Writes nothing."""
    bad = IntegrityError(f"{label}: the snapshot is damaged or was altered (nothing was restored)")
    if data.startswith(MAGIC_V2):
        fmt, off = 2, len(MAGIC_V2)
    elif data.startswith(MAGIC_V1):
        fmt, off = 1, len(MAGIC_V1)
    else:
        raise IntegrityError(f"{label}: not a securecmr snapshot")
    try:
        hlen = int.from_bytes(data[off : off + 4], "big")
        header_bytes = data[off + 4 : off + 4 + hlen]
        header = json.loads(header_bytes)
        klen = int(header["keyring"])
        store_id = str(header["store_id"])
    except (ValueError, KeyError, TypeError):
        raise bad from None
    ring_start = off + 4 + hlen
    ring_bytes = data[ring_start : ring_start + klen]
    sealed = data[ring_start + klen :]
    if len(ring_bytes) != klen or not sealed:
        raise bad
    with tempfile.TemporaryDirectory(prefix="scmr-snap-") as tmp:
        (Path(tmp) / KEYRING_FILE).write_bytes(ring_bytes)
        ring = Keyring.load(Path(tmp), provider)  # wrong passphrase: DecryptionError
    if ring.store_id != store_id:
        raise bad
    opener = Sealer(hkdf(ring.secret, "securecmr/snapshot"))
    try:
        if fmt == 1:
            db = opener.open(sealed, f"securecmr/snapshot|{store_id}".encode())
            return Snapshot(store_id, None, ring_bytes, {"store.db": db}, ring, 1)
        archive = opener.open(sealed, _aad(store_id, header_bytes, ring_bytes))
    except Exception:
        raise bad from None
    files: dict[str, bytes] = {}
    try:
        ilen = int.from_bytes(archive[:4], "big")
        index = json.loads(archive[4 : 4 + ilen])
        pos = 4 + ilen
        for entry in index:
            name, size = _safe(entry["path"]), int(entry["size"])
            blob = archive[pos : pos + size]
            pos += size
            if len(blob) != size or hashlib.sha256(blob).hexdigest() != entry["sha256"] or name in files:
                raise ValueError("entry")
            files[name] = blob
        if pos != len(archive) or "store.db" not in files:
            raise ValueError("archive")
    except (ValueError, KeyError, TypeError):
        raise bad from None
    created = header.get("created")
    return Snapshot(store_id, None if created is None else float(created), ring_bytes, files, ring, 2)

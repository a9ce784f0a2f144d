"""The one file writer: every persisted file is replaced atomically (unique temp file, fsync,
rename, directory fsync) with mode 0600, in directories made 0700, whatever the umask; plus
checksummed framing for caches."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from ..errors import IntegrityError

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "atomic_write",
    "ensure_dir",
    "open_append",
    "read_checked",
    "read_checked_view",
    "write_checked",
]

_MAGIC = b"SCMR1\n"
FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents, each with mode 0700; an existing directory is left
    as is."""
    path = Path(path)
    if not path.is_dir():
        if not path.parent.is_dir():
            ensure_dir(path.parent)
        path.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def open_append(path: Path) -> BinaryIO:
    """Open ``path`` for appending, created with mode 0600 whatever the umask (append-only logs)."""
    path = Path(path)
    ensure_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file. Threads and
    processes writing the same file each use their own temp file; the last rename wins whole."""
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_checked(path: Path, body: bytes) -> None:
    """Write ``body`` framed with a magic line and a SHA-256 checksum, atomically."""
    atomic_write(path, _MAGIC + hashlib.sha256(body).digest() + body)


def read_checked(path: Path) -> bytes:
    """The body of a file written by :func:`write_checked`; IntegrityError naming the file otherwise."""
    return bytes(read_checked_view(path))


def read_checked_view(path: Path) -> memoryview:
    """:func:`read_checked` without copying the body out of the file's bytes (for large files)."""
    data = path.read_bytes()
    if len(data) < len(_MAGIC) + 32 or not data.startswith(_MAGIC):
        raise IntegrityError(f"{path.name}: not a securecmr file or truncated; restore it from a snapshot")
    view = memoryview(data)
    digest, body = data[len(_MAGIC) : len(_MAGIC) + 32], view[len(_MAGIC) + 32 :]
    if hashlib.sha256(body).digest() != digest:
        raise IntegrityError(f"{path.name}: checksum mismatch (the file was altered or corrupted)")
    return body

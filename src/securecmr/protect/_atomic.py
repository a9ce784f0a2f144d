"""Checksummed files replaced atomically (write temp, fsync, rename, fsync dir)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import IntegrityError

__all__ = ["atomic_write", "read_checked", "read_checked_view", "write_checked"]

_MAGIC = b"SCMR1\n"


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
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

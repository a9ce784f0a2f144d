"""Sealed row blocks: the durable record of a collection's items (store format 2).

Each ``add`` writes its items in blocks of up to :data:`BLOCK_ROWS` rows, one SQLite row per block::

    blocks(cid, bid, span, n, kv, expires, core, body)

* ``bid`` is the sequence number of the block's first item; its ``n`` live items have sequence
  numbers in ``[bid, bid + span)`` (deleting items rewrites the block without them).
* ``core`` = header | sequence numbers (int64) | modality masks (uint8) | codes (salted in salted
  modes, packed): sealed with AES-256-GCM in encrypted modes, otherwise clear with a 16-byte
  HMAC-SHA256 tag.
* ``body`` (always sealed) = header | sequence numbers | id HMACs (32 bytes each) | raw ids (a JSON
  list) | payloads (labels, attrs, ref, optional text: a JSON list).
* The associated data of both blobs names the store, the collection, ``bid``, ``span``, ``n``, the
  key version, the expiry and the field, so a block cannot be moved to another row, collection or
  store, nor its expiry, size or key version edited, without failing authentication.

Format 1 (one sealed row per item in table ``items``) is still read; a writer converts a
collection's format-1 rows into blocks, in one transaction, before its first write.
"""

from __future__ import annotations

import sqlite3
import struct

import numpy as np

__all__ = [
    "BLOCK_ROWS",
    "block_aad",
    "code_rows",
    "ensure_schema",
    "has_expired",
    "pack_body",
    "pack_core",
    "unpack_body",
    "unpack_core",
]

BLOCK_ROWS = 64  # rows per block: small enough that reading one hit's payload decrypts little
_CORE = struct.Struct("<4sII")  # magic, rows, codes
_BODY = struct.Struct("<4sII")  # magic, rows, length of the ids JSON
_CORE_MAGIC = b"SCC2"
_BODY_MAGIC = b"SCB2"
_I8 = np.dtype("<i8")
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    cid TEXT NOT NULL, bid INTEGER NOT NULL, span INTEGER NOT NULL, n INTEGER NOT NULL,
    kv INTEGER NOT NULL, expires REAL, core BLOB NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (cid, bid));
CREATE TABLE IF NOT EXISTS holds (cid TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (cid, seq));
"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the format-2 tables in a store made before they existed (a no-op otherwise)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='holds'").fetchone()
    if row is None:
        conn.executescript(_SCHEMA)


def block_aad(
    store_id: str, cid: str, bid: int, span: int, n: int, kv: int, expires: float | None, field: str
) -> bytes:
    exp = "-" if expires is None else repr(float(expires))
    return f"securecmr/v2|{store_id}|{cid}|block|{bid}|{span}|{n}|{kv}|{exp}|{field}".encode()


def pack_core(seqs: np.ndarray, masks: np.ndarray, codes: np.ndarray) -> bytes:
    if codes.ndim != 2:
        raise ValueError("codes must be a 2-D array (one packed code per row)")
    return b"".join(
        (
            _CORE.pack(_CORE_MAGIC, seqs.shape[0], codes.shape[0]),
            seqs.astype(_I8, copy=False).tobytes(),
            masks.astype(np.uint8, copy=False).tobytes(),
            np.ascontiguousarray(codes, dtype=np.uint8).tobytes(),
        )
    )


def unpack_core(plain: bytes, nb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sequence numbers, masks, codes (m, nb)); ValueError when malformed."""
    magic, n, m = _CORE.unpack_from(plain)
    if magic != _CORE_MAGIC or len(plain) != _CORE.size + 9 * n + m * nb:
        raise ValueError("malformed block")
    off = _CORE.size
    seqs = np.frombuffer(plain, _I8, n, off).astype(np.int64)
    masks = np.frombuffer(plain, np.uint8, n, off + 8 * n)
    codes = np.frombuffer(plain, np.uint8, m * nb, off + 9 * n).reshape(m, nb)
    if int(_POPCOUNT[masks].sum()) != m:
        raise ValueError("malformed block")
    return seqs, masks, codes


def pack_body(seqs: np.ndarray, hmacs: bytes, ids_json: bytes, metas_json: bytes) -> bytes:
    return b"".join(
        (
            _BODY.pack(_BODY_MAGIC, seqs.shape[0], len(ids_json)),
            seqs.astype(_I8, copy=False).tobytes(),
            hmacs,
            ids_json,
            metas_json,
        )
    )


def unpack_body(plain: bytes) -> tuple[np.ndarray, bytes, bytes, bytes]:
    """(sequence numbers, id HMACs (32 bytes each), ids JSON, payloads JSON); ValueError when malformed."""
    magic, n, li = _BODY.unpack_from(plain)
    off = _BODY.size
    if magic != _BODY_MAGIC or len(plain) < off + 40 * n + li:
        raise ValueError("malformed block")
    seqs = np.frombuffer(plain, _I8, n, off).astype(np.int64)
    off += 8 * n
    hmacs = plain[off : off + 32 * n]
    off += 32 * n
    return seqs, hmacs, plain[off : off + li], plain[off + li :]


def code_rows(seqs: np.ndarray, masks: np.ndarray, n_modalities: int) -> tuple[np.ndarray, np.ndarray]:
    """Per stored code, in (item, modality) order: its item's sequence number and its modality."""
    bits = (masks[:, None].astype(np.int64) >> np.arange(n_modalities)) & 1
    item, mod = np.nonzero(bits)
    return seqs[item], mod.astype(np.int8)


def popcount(masks: np.ndarray) -> np.ndarray:
    return _POPCOUNT[masks]


def has_expired(conn: sqlite3.Connection, cid: str, now: float) -> bool:
    """Whether collection ``cid`` holds an item past its expiry and not under legal hold."""
    legacy = conn.execute(
        "SELECT 1 FROM items WHERE cid=? AND hold=0 AND expires IS NOT NULL AND expires <= ? LIMIT 1",
        (cid, now),
    ).fetchone()
    if legacy is not None:
        return True
    row = conn.execute(
        "SELECT 1 FROM blocks b WHERE b.cid=? AND b.expires IS NOT NULL AND b.expires <= ? AND b.n > "
        "(SELECT COUNT(*) FROM holds h WHERE h.cid=b.cid AND h.seq >= b.bid AND h.seq < b.bid + b.span) "
        "LIMIT 1",
        (cid, now),
    ).fetchone()
    return row is not None

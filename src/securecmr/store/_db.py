"""SQLite (WAL) durable record: collections and sealed item rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import IntegrityError
from ._blocks import ensure_schema

__all__ = ["DB_FILE", "connect"]

DB_FILE = "store.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    cid TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, config BLOB NOT NULL, next_seq INTEGER NOT NULL,
    gen INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS items (
    cid TEXT NOT NULL, seq INTEGER NOT NULL, id_hmac BLOB NOT NULL, rid BLOB NOT NULL,
    core BLOB NOT NULL, meta BLOB NOT NULL, kv INTEGER NOT NULL, expires REAL,
    hold INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (cid, seq), UNIQUE (cid, id_hmac));
CREATE TABLE IF NOT EXISTS erased (cid TEXT NOT NULL, id_hmac BLOB NOT NULL, at REAL NOT NULL, by TEXT);
"""


def connect(directory: Path, *, create: bool = False) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(directory / DB_FILE, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        if create:
            conn.executescript(_SCHEMA)
        else:
            row = conn.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise IntegrityError(f"{DB_FILE}: the database fails its integrity check; restore a snapshot")
        ensure_schema(conn)
        from ._features import ensure_feature_schema  # (imports DB_FILE from here)

        ensure_feature_schema(conn)
    except sqlite3.DatabaseError:
        raise IntegrityError(f"{DB_FILE}: the database file is corrupted; restore a snapshot") from None
    return conn

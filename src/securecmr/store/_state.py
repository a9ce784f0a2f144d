"""Sealed store state that only moves forward, kept in ``store.db``'s ``meta`` table.

Each entry is one row ``meta(key, value)`` whose value is AES-GCM sealed under a key derived from
the store secret, with the store id and the entry name as associated data, so a row cannot be
edited, swapped for another entry's, or moved from another store. Entries:

* ``state/audit``: the newest audit checkpoint ``(n, head)`` (the audit log's anchor);
* ``state/registry``: the version of ``access/users.sealed`` last written.

Writes go through a connection of their own (so they never mix with an engine transaction) and
refuse to move an entry backwards.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..errors import IntegrityError
from ..protect._crypto import Sealer
from ._db import DB_FILE

__all__ = ["AuditAnchorRow", "StoreState"]


class StoreState:
    def __init__(
        self, directory: Path, key: bytes, store_id: str, *, readonly: bool = False, required: bool = False
    ) -> None:
        self._sealer = Sealer(key)
        self.required = required  # a missing entry is an error (the store has kept sealed state)
        self._store_id = store_id
        self._readonly = readonly
        self._mutex = threading.Lock()
        self._conn = sqlite3.connect(directory / DB_FILE, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.execute("PRAGMA synchronous=FULL")

    def __repr__(self) -> str:
        return "StoreState(<sealed>)"

    def close(self) -> None:
        with self._mutex:
            self._conn.close()

    def _aad(self, name: str) -> bytes:
        return f"securecmr/state|{self._store_id}|{name}".encode()

    def get(self, name: str) -> dict[str, Any] | None:
        with self._mutex:
            row = self._conn.execute("SELECT value FROM meta WHERE key=?", (f"state/{name}",)).fetchone()
        if row is None and self.required:
            raise IntegrityError(
                f"{DB_FILE}: the sealed store state {name!r} is missing (deleted); restore a snapshot"
            )
        return None if row is None else self._open(name, row[0])

    def _open(self, name: str, value: str) -> dict[str, Any]:
        try:
            out = json.loads(self._sealer.open(base64.b64decode(value), self._aad(name)))
        except Exception:
            raise IntegrityError(
                f"{DB_FILE}: the sealed store state {name!r} does not authenticate (altered or swapped)"
            ) from None
        if not isinstance(out, dict):
            raise IntegrityError(f"{DB_FILE}: the sealed store state {name!r} is malformed")
        return out

    def seed(self, conn: sqlite3.Connection, name: str, value: dict[str, Any]) -> None:
        """Write an entry through ``conn`` (a new store's first values, in its creating transaction)."""
        blob = base64.b64encode(self._sealer.seal(json.dumps(value).encode(), self._aad(name))).decode()
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"state/{name}", blob))

    def advance(self, name: str, value: dict[str, Any], order: str, *, patient: bool = True) -> bool:
        """Store ``value`` unless the stored entry's ``order`` field is already higher (returns
        False then: the state never moves backwards). One transaction. ``patient=False`` gives up
        at once (False) when the database is busy, e.g. inside this process's own write."""
        if self._readonly:
            return False
        blob = base64.b64encode(self._sealer.seal(json.dumps(value).encode(), self._aad(name))).decode()
        with self._mutex:
            if not patient:
                self._conn.execute("PRAGMA busy_timeout=20")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return False
            finally:
                if not patient:
                    self._conn.execute("PRAGMA busy_timeout=10000")
            try:
                row = self._conn.execute("SELECT value FROM meta WHERE key=?", (f"state/{name}",)).fetchone()
                if row is not None and int(self._open(name, row[0]).get(order, 0)) > int(value[order]):
                    self._conn.execute("ROLLBACK")
                    return False
                self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"state/{name}", blob))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return True


class AuditAnchorRow:
    """The audit log's anchor (:class:`securecmr.audit.AuditAnchor`) kept in the store state."""

    def __init__(self, state: StoreState) -> None:
        self._state = state
        self._pending: tuple[int, str] | None = None

    def save(self, n: int, head: str) -> None:
        """Advance the anchor; when the database is busy (a checkpoint written inside a write's own
        transaction) it is kept and stored with the next checkpoint or at close, whichever first."""
        if self._state.advance("audit", {"n": int(n), "head": str(head)}, "n", patient=False):
            self._pending = None
        else:
            self._pending = (int(n), str(head))

    def flush(self) -> None:
        if self._pending is not None:
            n, head = self._pending
            self._state.advance("audit", {"n": n, "head": head}, "n")
            self._pending = None

    def load(self) -> tuple[int, str] | None:
        got = self._state.get("audit")
        return None if got is None else (int(got["n"]), str(got["head"]))

"""Authenticated collection state: one sealed state root per collection, kept in ``store.db``.

Everything that changes a result is bound by the root of its collection: the set of block rows
and each row's ``(bid, span, n, kv, expires)`` (the block's blobs are sealed with exactly these
values as associated data, so they pin its content too), the ``gen`` and ``next_seq`` counters,
the sealed configuration (name, protection, TTL, policy, hasher), the legal holds and the number
of format-1 rows. The block and hold sets enter as sums of keyed HMACs (so a write updates the
root in time proportional to the rows it touches, and no order or duplicate goes unnoticed: each
term names its row). The roots of all collections live in one sealed row ``meta('state/collections')``
written in the same transaction as the change it describes.

On open (and whenever another process changed a collection) the root is recomputed from the rows
and compared: a deleted, duplicated, edited or rolled-back row gives IntegrityError naming what
differs. Inside every write the stored root must equal the one this process expects, so an edit
made while the store is open is caught at the next write too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..errors import IntegrityError
from ..protect._crypto import HmacSha256, Sealer, hkdf
from ._db import DB_FILE

__all__ = ["MOD", "ROOTS_KEY", "RootKeeper", "compare"]

ROOTS_KEY = "state/collections"
MOD = 1 << 256


class RootKeeper:
    """Computes, seals and checks the state roots of a store's collections."""

    def __init__(self, secret: bytes, store_id: str, directory: Path) -> None:
        self._term = HmacSha256(hkdf(secret, "securecmr/state-roots/terms"))
        self._sealer = Sealer(hkdf(secret, "securecmr/state-roots/seal"))
        self._aad = f"securecmr/state-roots|{store_id}".encode()
        self._mutex = threading.Lock()
        # a connection of its own: a snapshot read never mixes with another thread's statements
        self._conn = sqlite3.connect(directory / DB_FILE, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=10000")

    def __repr__(self) -> str:
        return "RootKeeper(<key>)"

    def close(self) -> None:
        with self._mutex:
            self._conn.close()

    def snapshot(
        self, cid: str, conn: sqlite3.Connection | None = None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(sealed root, root measured from the rows) of ``cid``, read in one transaction (the
        caller's on ``conn``, or one of our own)."""
        if conn is not None:
            roots, now = self.load(conn), self.measure(conn, cid)
        else:
            with self._mutex:
                self._conn.execute("BEGIN")
                try:
                    roots = self.load(self._conn)
                    now = self.measure(self._conn, cid)
                finally:
                    self._conn.execute("COMMIT")
        if roots is None:
            raise IntegrityError(f"{DB_FILE}: the sealed collection state is missing; restore a snapshot")
        return roots.get(cid), now

    def check_collections(self, *, full: bool = False) -> None:
        """Every collection row has a root and every root a row (a deleted row is named);
        ``full=True`` also compares every collection's rows with its root (on open)."""
        with self._mutex:
            self._conn.execute("BEGIN")
            try:
                roots = self.load(self._conn)
                cids = {r[0] for r in self._conn.execute("SELECT cid FROM collections")}
                measured = {cid: self.measure(self._conn, cid) for cid in cids} if full else {}
            finally:
                self._conn.execute("COMMIT")
        if roots is None:
            raise IntegrityError(f"{DB_FILE}: the sealed collection state is missing; restore a snapshot")
        for cid, entry in sorted(roots.items()):
            if cid not in cids:
                raise IntegrityError(
                    f"{DB_FILE}: collection {entry.get('name', cid)!r} is missing (its row was deleted); "
                    "restore a snapshot"
                )
        extra = sorted(cids - set(roots))
        if extra:
            raise IntegrityError(
                f"{DB_FILE}: {len(extra)} collection row(s) have no sealed state root (added or copied in); "
                "restore a snapshot"
            )
        for cid, now in sorted(measured.items()):
            if now is not None:
                compare(str(roots[cid].get("name", cid)), roots[cid], now)

    # ------------------------------------------------------------------ terms
    def block_term(self, cid: str, bid: int, span: int, n: int, kv: int, expires: float | None) -> int:
        exp = "-" if expires is None else repr(float(expires))
        d = self._term.digest(f"block|{cid}|{int(bid)}|{int(span)}|{int(n)}|{int(kv)}|{exp}".encode())
        return int.from_bytes(d, "big")

    def hold_term(self, cid: str, seq: int) -> int:
        return int.from_bytes(self._term.digest(f"hold|{cid}|{int(seq)}".encode()), "big")

    @staticmethod
    def config_hash(blob: bytes) -> str:
        return hashlib.sha256(bytes(blob)).hexdigest()

    # ------------------------------------------------------------------ from the rows
    def measure(self, conn: sqlite3.Connection, cid: str) -> dict[str, Any] | None:
        """The root of collection ``cid`` as its rows are now (None when it has no row)."""
        row = conn.execute("SELECT config, next_seq, gen FROM collections WHERE cid=?", (cid,)).fetchone()
        if row is None:
            return None
        blocks = holds = nblocks = nholds = 0
        for bid, span, n, kv, expires in conn.execute(
            "SELECT bid, span, n, kv, expires FROM blocks WHERE cid=?", (cid,)
        ):
            blocks = (blocks + self.block_term(cid, bid, span, n, kv, expires)) % MOD
            nblocks += 1
        for (seq,) in conn.execute("SELECT seq FROM holds WHERE cid=?", (cid,)):
            holds = (holds + self.hold_term(cid, seq)) % MOD
            nholds += 1
        (legacy,) = conn.execute("SELECT COUNT(*) FROM items WHERE cid=?", (cid,)).fetchone()
        return {
            "config": self.config_hash(row[0]),
            "next_seq": int(row[1]),
            "gen": int(row[2]),
            "blocks": blocks,
            "nblocks": nblocks,
            "holds": holds,
            "nholds": nholds,
            "legacy": int(legacy),
        }

    # ------------------------------------------------------------------ the sealed row
    def _read(self, conn: sqlite3.Connection) -> dict[str, Any] | None:
        row = conn.execute("SELECT value FROM meta WHERE key=?", (ROOTS_KEY,)).fetchone()
        if row is None:
            return None
        try:
            data = json.loads(self._sealer.open(base64.b64decode(row[0]), self._aad))
            data["roots"] = {
                cid: dict(e, blocks=int(e["blocks"], 16), holds=int(e["holds"], 16))
                for cid, e in data["roots"].items()
            }
            data["epoch"] = int(data.get("epoch", 0))
        except Exception:
            raise IntegrityError(
                f"{DB_FILE}: the sealed collection state does not authenticate (altered or swapped)"
            ) from None
        return data

    def load(self, conn: sqlite3.Connection) -> dict[str, dict[str, Any]] | None:
        data = self._read(conn)
        return None if data is None else dict(data["roots"])

    def epoch(self) -> int:
        """The state epoch (one more per committed change of any collection): audit checkpoints
        record it, so a ``store.db`` rolled back behind the audit log is caught."""
        with self._mutex:
            data = self._read(self._conn)
        return 0 if data is None else int(data["epoch"])

    def save(self, conn: sqlite3.Connection, roots: dict[str, dict[str, Any]]) -> None:
        """Write every root, with the epoch moved one on (inside the caller's transaction)."""
        old = self._read(conn)
        data = {
            "epoch": (0 if old is None else int(old["epoch"])) + 1,
            "roots": {
                cid: dict(e, blocks=format(e["blocks"], "x"), holds=format(e["holds"], "x"))
                for cid, e in sorted(roots.items())
            }
        }
        blob = base64.b64encode(self._sealer.seal(json.dumps(data).encode(), self._aad)).decode()
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (ROOTS_KEY, blob))


def compare(name: str, sealed: dict[str, Any] | None, now: dict[str, Any]) -> None:
    """IntegrityError naming what differs between a collection's sealed root and its rows."""
    if sealed is None:
        raise IntegrityError(
            f"{DB_FILE}: collection {name!r} has no sealed state root (a row was added or copied in, "
            "or the state was removed); restore a snapshot"
        )
    what = []
    if sealed.get("config") != now["config"]:  # names, protection, TTL, policy and hasher live there
        what.append("its configuration row was replaced")
    if sealed.get("gen") != now["gen"]:
        what.append(
            f"its generation counter reads {now['gen']}, sealed {sealed.get('gen')} (edited or rolled back)"
        )
    if sealed.get("next_seq") != now["next_seq"]:
        what.append(
            f"its sequence counter reads {now['next_seq']}, sealed {sealed.get('next_seq')} "
            "(edited or rolled back)"
        )
    if sealed.get("nblocks") != now["nblocks"]:
        what.append(
            f"it has {now['nblocks']} block rows, sealed {sealed.get('nblocks')} (rows deleted or duplicated)"
        )
    elif sealed.get("blocks") != now["blocks"]:
        what.append("a block row was edited, swapped or rolled back to an older version")
    if sealed.get("nholds") != now["nholds"] or sealed.get("holds") != now["holds"]:
        what.append("its legal holds were edited")
    if sealed.get("legacy") != now["legacy"]:
        what.append("its format-1 rows were deleted or added")
    if what:
        raise IntegrityError(f"{DB_FILE}: collection {name!r}: " + "; ".join(what) + "; restore a snapshot")

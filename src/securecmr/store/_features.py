"""Kept encoder features: what a collection needs to learn and re-code its hasher in place.

A collection created with ``keep_features=True`` keeps, for every item it encodes, the encoder
features each hasher family needs: the 384-d text embedding, the image encoder's 384-d zero-shot
vector *and* its 1280-d penultimate features (so both the zero-shot default and a learned hasher can
re-code the item), or the vectors an item was given. One SQLite row per row block (same ``bid``)::

    features(cid, bid, kv, blob)

``blob`` is always sealed with AES-256-GCM (in every protection mode: embeddings are invertible
enough to leak content, like payloads), under a key derived from the collection's data key version
``kv``; the associated data names the store, the collection, ``bid`` and ``kv``, so a blob cannot be
moved to another block, collection or store. Inside: a JSON header, the block's sequence numbers and,
per *kind* (``"<modality>:<dim>"``), a presence mask and the present rows as float16.

Deleting an item rewrites (or drops) its feature block in the same transaction that rewrites its
row block, so its features are erased with it; ``store.compact()`` then scrubs the freed pages.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..errors import DecryptionError, IntegrityError
from ..protect._crypto import Sealer, hkdf
from ..protect._keyring import CollectionKeys
from ._blocks import BLOCK_ROWS
from ._db import DB_FILE

__all__ = ["FeatureVault", "Kept", "ensure_feature_schema", "kind_for"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS features (
    cid TEXT NOT NULL, bid INTEGER NOT NULL, kv INTEGER NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (cid, bid));
CREATE TABLE IF NOT EXISTS recode (
    cid TEXT NOT NULL, bid INTEGER NOT NULL, digest BLOB NOT NULL, core BLOB NOT NULL,
    PRIMARY KEY (cid, bid));
"""

# kind -> (item positions in the batch, (len, dim) float rows)
Kept = dict[str, tuple[np.ndarray, np.ndarray]]


def ensure_feature_schema(conn: sqlite3.Connection) -> None:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='recode'").fetchone()
    if row is None:
        conn.executescript(_SCHEMA)


def kind_for(modality: str, dim: int) -> str:
    return f"{modality}:{int(dim)}"


def _pack(seqs: np.ndarray, kinds: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """``kinds``: kind -> (presence mask (n,) bool, rows (present, dim))."""
    header = {k: [int(m.sum()), int(r.shape[1])] for k, (m, r) in sorted(kinds.items())}
    head = json.dumps({"n": int(seqs.size), "kinds": header}, separators=(",", ":")).encode()
    parts = [len(head).to_bytes(4, "big"), head, seqs.astype("<i8").tobytes()]
    for k in sorted(kinds):
        mask, rows = kinds[k]
        parts += [mask.astype(np.uint8).tobytes(), np.ascontiguousarray(rows, dtype="<f2").tobytes()]
    return b"".join(parts)


def _unpack(plain: bytes) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    hl = int.from_bytes(plain[:4], "big")
    header = json.loads(plain[4 : 4 + hl])
    n = int(header["n"])
    off = 4 + hl
    seqs = np.frombuffer(plain, "<i8", n, off).astype(np.int64)
    off += 8 * n
    kinds = {}
    for k, (count, dim) in header["kinds"].items():
        mask = np.frombuffer(plain, np.uint8, n, off).astype(bool)
        off += n
        rows = np.frombuffer(plain, "<f2", count * dim, off).reshape(count, dim)
        off += 2 * count * dim
        if int(mask.sum()) != count:
            raise ValueError("malformed feature block")
        kinds[k] = (mask, rows)
    if off != len(plain):
        raise ValueError("malformed feature block")
    return seqs, kinds


class FeatureVault:
    """Sealed feature blocks of one collection (the engine calls it inside its transactions)."""

    def __init__(self, conn: sqlite3.Connection, store_id: str, cid: str, name: str, keys: CollectionKeys):
        self.conn, self.store_id, self.cid, self.name, self.keys = conn, store_id, cid, name, keys
        self._sealers: dict[tuple[int, bytes], Sealer] = {}

    def _sealer(self, kv: int) -> Sealer:
        key = self.keys.data.get(kv)
        if key is None:
            raise IntegrityError(f"{DB_FILE}: kept features of {self.name!r} name an unknown key version")
        cached = self._sealers.get((kv, key))
        if cached is None:
            cached = self._sealers[(kv, key)] = Sealer(hkdf(key, "securecmr/features"))
        return cached

    def _aad(self, bid: int, kv: int) -> bytes:
        return f"securecmr/features|{self.store_id}|{self.cid}|{bid}|{kv}".encode()

    def seal(self, bid: int, kv: int, seqs: np.ndarray, kinds: Mapping[str, Any]) -> bytes:
        return self._sealer(kv).seal(_pack(seqs, kinds), self._aad(bid, kv))

    def open(
        self, bid: int, kv: int, blob: bytes
    ) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
        try:
            return _unpack(self._sealer(kv).open(bytes(blob), self._aad(bid, kv)))
        except (DecryptionError, ValueError, KeyError, json.JSONDecodeError):
            raise IntegrityError(
                f"{DB_FILE}: kept features of collection {self.name!r} do not authenticate (altered or "
                "swapped); restore a snapshot"
            ) from None

    # ------------------------------------------------------------------ inside the engine's transactions
    def rows_for_add(self, start: int, seqs: np.ndarray, kept: Kept, kv: int) -> list[tuple[Any, ...]]:
        """INSERT rows for a batch whose items got ``seqs`` (row blocks of BLOCK_ROWS from ``start``)."""
        n = seqs.size
        out = []
        for a in range(0, n, BLOCK_ROWS):
            e = min(n, a + BLOCK_ROWS)
            kinds = {}
            for kind, (pos, rows) in kept.items():
                sel = (pos >= a) & (pos < e)
                if not sel.any():
                    continue
                mask = np.zeros(e - a, dtype=bool)
                p = pos[sel] - a
                order = np.argsort(p, kind="stable")
                mask[p] = True
                kinds[kind] = (mask, np.asarray(rows)[sel][order])
            if kinds:
                bid = start + a
                out.append((self.cid, bid, kv, self.seal(bid, kv, seqs[a:e], kinds)))
        return out

    def erase(
        self, gone: np.ndarray, bids: np.ndarray, kv: int
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """(UPDATE rows, DELETE rows) that drop the features of ``gone`` from blocks ``bids``."""
        updates, removals = [], []
        for bid, fkv, blob in self.fetch(np.unique(bids).tolist()):
            seqs, kinds = self.open(bid, fkv, blob)
            keep = ~np.isin(seqs, gone)
            if keep.all():
                continue
            new_kinds = {}
            for kind, (mask, rows) in kinds.items():
                row_keep = keep[mask]
                if row_keep.any():
                    new_kinds[kind] = (mask[keep], rows[row_keep])
            if not new_kinds or not keep.any():
                removals.append((self.cid, bid))
            else:
                updates.append((kv, self.seal(bid, kv, seqs[keep], new_kinds), self.cid, bid))
        return updates, removals

    def fetch(self, bids: list[int]) -> list[tuple[int, int, bytes]]:
        out: list[tuple[int, int, bytes]] = []
        for i in range(0, len(bids), 500):
            chunk = bids[i : i + 500]
            q = f"SELECT bid, kv, blob FROM features WHERE cid=? AND bid IN ({','.join('?' * len(chunk))})"
            out += self.conn.execute(q, (self.cid, *chunk)).fetchall()
        return out

    def reseal_rows(self, new_kv: int) -> list[tuple[Any, ...]]:
        out = []
        for bid, kv, blob in self.conn.execute(
            "SELECT bid, kv, blob FROM features WHERE cid=?", (self.cid,)
        ).fetchall():
            seqs, kinds = self.open(bid, kv, blob)
            out.append((new_kv, self.seal(bid, new_kv, seqs, kinds), self.cid, bid))
        return out

    # ------------------------------------------------------------------ reading
    def blocks(
        self, conn: sqlite3.Connection | None = None
    ) -> Iterator[tuple[int, np.ndarray, dict[str, Any]]]:
        """Every feature block: (bid, seqs, {kind: (mask, rows float32)})."""
        c = conn or self.conn
        for bid, kv, blob in c.execute(
            "SELECT bid, kv, blob FROM features WHERE cid=? ORDER BY bid", (self.cid,)
        ):
            seqs, kinds = self.open(bid, kv, blob)
            yield bid, seqs, kinds

    def gather(self, kinds: tuple[str, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
        """(seqs, one float32 matrix per kind) of the items that have every kind in ``kinds``."""
        seq_parts: list[np.ndarray] = []
        parts: list[list[np.ndarray]] = [[] for _ in kinds]
        for _bid, seqs, got in self.blocks():
            if not all(k in got for k in kinds):
                continue
            have = np.logical_and.reduce([got[k][0] for k in kinds])
            if not have.any():
                continue
            seq_parts.append(seqs[have])
            for j, k in enumerate(kinds):
                mask, rows = got[k]
                # rows of the items that have this kind, restricted to the items that have all kinds
                parts[j].append(rows[have[mask]].astype(np.float32))
        if not seq_parts:
            return np.zeros(0, dtype=np.int64), [np.zeros((0, 0), dtype=np.float32) for _ in kinds]
        return np.concatenate(seq_parts), [np.concatenate(p) for p in parts]

    def count(self) -> dict[str, int]:
        """Items per kept kind."""
        out: dict[str, int] = {}
        for _bid, _seqs, got in self.blocks():
            for k, (mask, _rows) in got.items():
                out[k] = out.get(k, 0) + int(mask.sum())
        return out

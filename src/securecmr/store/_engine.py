"""One collection's engine: sealed rows in SQLite, codes in an in-memory exact index rebuilt from
the durable record on open. Search ranks items by the minimum Hamming distance over their codes,
ties broken by insertion order."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    DecryptionError,
    DuplicateItemError,
    EmptyInputError,
    IntegrityError,
    ItemNotFoundError,
    LegalHoldError,
    ShapeError,
    StoreError,
)
from ..index import make_index
from ..index._milvus import row_keys
from ..protect._atomic import read_checked, write_checked
from ..protect._crypto import Sealer, hkdf, keyed_hmac
from ..protect._keyring import CollectionKeys
from ..protect._salt import Salt
from ._db import DB_FILE
from ._types import MODALITIES, Hit

__all__ = ["CollectionEngine"]

_TAG = 16


class CollectionEngine:
    """All state and I/O of one collection (the facade and access layers sit above)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        store_id: str,
        cid: str,
        name: str,
        config: dict[str, Any],
        keys: CollectionKeys,
        *,
        backend: str = "faiss",
        directory: Path | None = None,
        index_options: dict[str, Any] | None = None,
    ) -> None:
        self.directory = directory
        self.conn, self.store_id, self.cid, self.name, self.config = conn, store_id, cid, name, config
        self.bits = int(config["bits"])
        self.protection = str(config["protection"])
        self.encrypted = "encrypted" in self.protection
        self.keys = keys
        self._hmac_key = hkdf(keys.salt, "securecmr/id-hmac")
        self.salt = Salt(keys.salt, self.bits) if "salted" in self.protection else None
        self.index = make_index(backend, self.bits, **(index_options or {}))
        self.code_seq = np.zeros(0, dtype=np.int64)
        self.code_mod = np.zeros(0, dtype=np.int8)
        self.id_of: dict[int, Any] = {}
        self.seq_of: dict[bytes, int] = {}
        self.max_codes = 1
        self.version = 0  # bumped on every add/delete: access caches policy masks by it
        self._meta_cache: dict[int, dict[str, Any]] = {}
        self.gen = 0
        self.segment_gen = -1
        self._sealers: dict[tuple[int, bytes], Sealer] = {}
        self._tags: dict[tuple[int, bytes], bytes] = {}
        self._load()

    def __repr__(self) -> str:
        return f"CollectionEngine({self.name!r}, bits={self.bits}, protection={self.protection!r})"

    def __len__(self) -> int:
        return len(self.id_of)

    # ------------------------------------------------------------------ keys and sealing
    def _aad(self, seq: int, field: str, kv: int) -> bytes:
        return f"securecmr/v1|{self.store_id}|{self.cid}|{seq}|{field}|{kv}".encode()

    def _sealer(self, kv: int) -> Sealer:
        key = self.keys.data.get(kv)
        if key is None:
            raise IntegrityError(f"{DB_FILE}: a row of collection {self.name!r} names an unknown key version")
        cached = self._sealers.get((kv, key))
        if cached is None:
            cached = self._sealers[(kv, key)] = Sealer(hkdf(key, "securecmr/rows"))
        return cached

    def _tag_key(self, kv: int) -> bytes:
        key = self.keys.data[kv]
        cached = self._tags.get((kv, key))
        if cached is None:
            cached = self._tags[(kv, key)] = hkdf(key, "securecmr/tags")
        return cached

    def id_hmac(self, item_id: Any) -> bytes:
        """The keyed HMAC under which an external id is stored."""
        return keyed_hmac(self._hmac_key, _id_bytes(item_id))

    def _seal_rows(
        self, kv: int, rows: list[tuple[int, Any, bytes, np.ndarray, bytes, dict[str, Any]]]
    ) -> list[tuple[bytes, bytes, bytes]]:
        sealer = self._sealer(kv)
        tagk = self._tag_key(kv)
        rids = sealer.seal_many(
            [_id_bytes(r[1]) for r in rows], [self._aad(r[0], "rid", kv) + r[2] for r in rows]
        )
        metas = sealer.seal_many(
            [json.dumps(r[5], separators=(",", ":")).encode() for r in rows],
            [self._aad(r[0], "meta", kv) for r in rows],
        )
        cores_plain = [r[4] + r[3].tobytes() for r in rows]
        if self.encrypted:
            cores = sealer.seal_many(cores_plain, [self._aad(r[0], "core", kv) for r in rows])
        else:
            cores = [
                c + keyed_hmac(tagk, self._aad(r[0], "core", kv) + c)[:_TAG]
                for r, c in zip(rows, cores_plain, strict=True)
            ]
        return list(zip(rids, cores, metas, strict=True))

    def _open_core(self, seq: int, kv: int, blob: bytes) -> bytes:
        if self.encrypted:
            return self._sealer(kv).open(blob, self._aad(seq, "core", kv))
        body, tag = bytes(blob[:-_TAG]), bytes(blob[-_TAG:])
        if keyed_hmac(self._tag_key(kv), self._aad(seq, "core", kv) + body)[:_TAG] != tag:
            raise DecryptionError("tag mismatch")
        return body

    # ------------------------------------------------------------------ load
    # ------------------------------------------------------------------ segment cache
    def _segment_path(self) -> Path:
        if self.directory is None:
            raise StoreError("this engine has no directory for index segments")
        return self.directory / "index" / f"{self.cid}.seg"

    def _segment_aad(self, gen: int, kv: int) -> bytes:
        return f"securecmr/segment|{self.store_id}|{self.cid}|{gen}|{kv}".encode()

    def save_segment(self) -> None:
        """Write the sealed index segment (codes, ids, HMACs) for the current generation."""
        if self.segment_gen == self.gen or self.directory is None:
            return
        seqs = np.asarray(sorted(self.id_of), dtype=np.int64)
        inv = {q: h for h, q in self.seq_of.items()}
        header = json.dumps(
            {
                "gen": self.gen,
                "n": int(seqs.size),
                "m": int(self.code_seq.size),
                "max_codes": self.max_codes,
                "ids": [self.id_of[int(q)] for q in seqs],
            }
        ).encode()
        body = b"".join(
            [
                len(header).to_bytes(8, "big"),
                header,
                seqs.tobytes(),
                b"".join(inv[int(q)] for q in seqs),
                self.code_seq.tobytes(),
                self.code_mod.tobytes(),
                np.ascontiguousarray(self.index.codes()).tobytes(),
            ]
        )
        kv = self.keys.current
        sealed = kv.to_bytes(4, "big") + Sealer(hkdf(self.keys.data[kv], "securecmr/segment")).seal(
            body, self._segment_aad(self.gen, kv)
        )
        self._segment_path().parent.mkdir(exist_ok=True)
        write_checked(self._segment_path(), sealed)
        self.segment_gen = self.gen

    def _load_segment(self) -> bool:
        if self.directory is None:
            return False
        path = self._segment_path()
        if not path.exists():
            return False
        try:
            data = read_checked(path)
            kv = int.from_bytes(data[:4], "big")
            key = self.keys.data.get(kv)
            if key is None:
                return False
            body = Sealer(hkdf(key, "securecmr/segment")).open(data[4:], self._segment_aad(self.gen, kv))
        except (IntegrityError, DecryptionError):
            return False  # stale, tampered or from another generation: rebuild from the durable record
        hl = int.from_bytes(body[:8], "big")
        header = json.loads(body[8 : 8 + hl])
        n, m, nb = int(header["n"]), int(header["m"]), self.bits // 8
        off = 8 + hl
        seqs = np.frombuffer(body, np.int64, n, off)
        off += 8 * n
        hm = body[off : off + 32 * n]
        off += 32 * n
        self.code_seq = np.frombuffer(body, np.int64, m, off).copy()
        off += 8 * m
        self.code_mod = np.frombuffer(body, np.int8, m, off).copy()
        off += m
        codes = np.frombuffer(body, np.uint8, m * nb, off).reshape(m, nb)
        self.id_of = dict(zip(seqs.tolist(), header["ids"], strict=True))
        self.seq_of = {hm[i * 32 : (i + 1) * 32]: int(seqs[i]) for i in range(n)}
        self.max_codes = int(header["max_codes"])
        self._fill_index(codes)
        self.segment_gen = self.gen
        return True

    def _load(self) -> None:
        (self.gen,) = self.conn.execute("SELECT gen FROM collections WHERE cid=?", (self.cid,)).fetchone()
        self.segment_gen = -1
        if self._load_segment():
            return
        nb = self.bits // 8
        seqs: list[int] = []
        mods: list[int] = []
        codes: list[bytes] = []
        cur = self.conn.execute(
            "SELECT seq, id_hmac, rid, core, kv FROM items WHERE cid=? ORDER BY seq", (self.cid,)
        )
        sealers: dict[int, Sealer] = {}
        try:
            for seq, hm, rid, core, kv in cur:
                sealer = sealers.get(kv) or sealers.setdefault(kv, self._sealer(kv))
                raw = sealer.open(rid, self._aad(seq, "rid", kv) + bytes(hm))
                body = self._open_core(seq, kv, core)
                item_id = json.loads(raw)
                self.id_of[seq] = item_id
                self.seq_of[bytes(hm)] = seq
                mask, payload = body[0], body[1:]
                m = 0
                for j in range(len(MODALITIES)):
                    if mask & (1 << j):
                        seqs.append(seq)
                        mods.append(j)
                        codes.append(payload[m * nb : (m + 1) * nb])
                        m += 1
                self.max_codes = max(self.max_codes, m)
        except (DecryptionError, json.JSONDecodeError, UnicodeDecodeError):
            raise IntegrityError(
                f"{DB_FILE}: a row of collection {self.name!r} does not authenticate (altered or swapped); "
                "restore a snapshot"
            ) from None
        except sqlite3.DatabaseError:
            raise IntegrityError(f"{DB_FILE}: the database file is corrupted; restore a snapshot") from None
        self.code_seq = np.asarray(seqs, dtype=np.int64)
        self.code_mod = np.asarray(mods, dtype=np.int8)
        self._fill_index(np.frombuffer(b"".join(codes), dtype=np.uint8).reshape(-1, nb))

    # ------------------------------------------------------------------ index hooks
    def _fill_index(self, codes: np.ndarray) -> None:
        """Put every code of the durable record in the index; a persistent backend (Milvus) checks
        what it already holds and rebuilds only when that is stale."""
        sync = getattr(self.index, "sync", None)
        if sync is not None:
            sync(codes, row_keys(self.code_seq, self.code_mod), self.gen)
        elif codes.shape[0]:
            self.index.add(codes)

    def _index_add(self, codes: np.ndarray, seqs: list[int], mods: list[int]) -> None:
        if getattr(self.index, "persistent", False):
            self.index.add(codes, row_keys(seqs, mods))  # type: ignore[call-arg]
        else:
            self.index.add(codes)

    def _index_commit(self) -> None:
        commit = getattr(self.index, "commit", None)
        if commit is not None:
            commit(self.gen)

    # ------------------------------------------------------------------ write
    def add(
        self,
        prepared: Sequence[tuple[Any, dict[str, np.ndarray], dict[str, Any]]],
        *,
        now: float,
        ttl_hours: float | None,
    ) -> int:
        """Insert items (id, {modality: raw code}, meta) in one transaction; all or nothing."""
        if not prepared:
            raise EmptyInputError("empty batch: give at least one item")
        nb = self.bits // 8
        hmacs = [self.id_hmac(p[0]) for p in prepared]
        if len(set(hmacs)) != len(hmacs):
            raise DuplicateItemError("the batch repeats an id; nothing was added")
        if any(h in self.seq_of for h in hmacs):
            raise DuplicateItemError("an id in the batch is already stored; nothing was added")
        kv = self.keys.current
        (start,) = self.conn.execute("SELECT next_seq FROM collections WHERE cid=?", (self.cid,)).fetchone()
        rows = []
        new_seq, new_mod, new_codes = [], [], []
        salted_all: list[dict[str, np.ndarray]] = [{} for _ in prepared]
        for mname in MODALITIES:
            idx = [i for i, p in enumerate(prepared) if p[1].get(mname) is not None]
            if idx:
                mat = np.stack([prepared[i][1][mname] for i in idx]).astype(np.uint8, copy=False)
                if self.salt is not None:
                    mat = self.salt.apply(mat)
                for i, row in zip(idx, mat, strict=True):
                    salted_all[i][mname] = row
        for i, ((item_id, _codes, meta), hm) in enumerate(zip(prepared, hmacs, strict=True)):
            seq = start + i
            mask = 0
            parts = []
            for j, mname in enumerate(MODALITIES):
                salted = salted_all[i].get(mname)
                if salted is None:
                    continue
                mask |= 1 << j
                parts.append(salted)
                new_seq.append(seq)
                new_mod.append(j)
                new_codes.append(salted)
            if not parts:
                raise EmptyInputError(
                    "an item has no text, image, video, vectors or codes; nothing was added"
                )
            rows.append((seq, item_id, hm, np.concatenate(parts), bytes([mask]), meta))
        sealed = self._seal_rows(kv, rows)
        expires = None if ttl_hours is None else now + float(ttl_hours) * 3600.0
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(
                "INSERT INTO items (cid, seq, id_hmac, rid, core, meta, kv, expires) "
                "VALUES (?,?,?,?,?,?,?,?)",
                [
                    (self.cid, r[0], r[2], s[0], s[1], s[2], kv, expires)
                    for r, s in zip(rows, sealed, strict=True)
                ],
            )
            self.conn.execute(
                "UPDATE collections SET next_seq=?, gen=gen+1 WHERE cid=?", (start + len(rows), self.cid)
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        for r in rows:
            self.id_of[r[0]] = r[1]
            self.seq_of[r[2]] = r[0]
            self.max_codes = max(self.max_codes, bin(r[4][0]).count("1"))
        self._index_add(np.asarray(new_codes, dtype=np.uint8).reshape(-1, nb), new_seq, new_mod)
        self.code_seq = np.concatenate([self.code_seq, np.asarray(new_seq, dtype=np.int64)])
        self.code_mod = np.concatenate([self.code_mod, np.asarray(new_mod, dtype=np.int8)])
        self.version += 1
        self.gen += 1
        self._index_commit()
        return len(rows)

    def delete_seqs(self, seqs: Iterable[int], *, now: float, by: str | None, force: bool = False) -> int:
        seqs = sorted(set(seqs))
        if not seqs:
            return 0
        holds = self._held(seqs)
        if holds and not force:
            raise LegalHoldError(
                f"{len(holds)} item(s) are under legal hold; release them first (nothing deleted)"
            )
        inv = {s: h for h, s in self.seq_of.items()}
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany("DELETE FROM items WHERE cid=? AND seq=?", [(self.cid, s) for s in seqs])
            self.conn.execute("UPDATE collections SET gen=gen+1 WHERE cid=?", (self.cid,))
            self.conn.executemany(
                "INSERT INTO erased (cid, id_hmac, at, by) VALUES (?,?,?,?)",
                [(self.cid, inv[s], now, by) for s in seqs],
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        rows = np.flatnonzero(np.isin(self.code_seq, np.asarray(seqs, dtype=np.int64)))
        self.index.remove(rows)
        self.code_seq = np.delete(self.code_seq, rows)
        self.code_mod = np.delete(self.code_mod, rows)
        for s in seqs:
            del self.seq_of[inv[s]]
            self.id_of.pop(s, None)
            self._meta_cache.pop(s, None)
        self.version += 1
        self.gen += 1
        self._index_commit()
        return len(seqs)

    def seqs_for_ids(self, ids: Iterable[Any]) -> list[int]:
        out = []
        for item_id in ids:
            seq = self.seq_of.get(self.id_hmac(item_id))
            if seq is None:
                raise ItemNotFoundError("no such item in this collection; check the id (nothing was changed)")
            out.append(seq)
        return out

    def _held(self, seqs: list[int]) -> list[int]:
        held = []
        for i in range(0, len(seqs), 500):
            chunk = seqs[i : i + 500]
            q = f"SELECT seq FROM items WHERE cid=? AND hold=1 AND seq IN ({','.join('?' * len(chunk))})"
            held += [r[0] for r in self.conn.execute(q, (self.cid, *chunk))]
        return held

    def set_hold(self, seqs: list[int], hold: bool) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(
            "UPDATE items SET hold=? WHERE cid=? AND seq=?", [(int(hold), self.cid, s) for s in seqs]
        )
        self.conn.execute("COMMIT")

    def expired(self, now: float) -> list[int]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT seq FROM items WHERE cid=? AND hold=0 AND expires IS NOT NULL AND expires <= ?",
                (self.cid, now),
            )
        ]

    # ------------------------------------------------------------------ read
    def metas(self, seqs: Iterable[int]) -> dict[int, dict[str, Any]]:
        want = [s for s in seqs if s not in self._meta_cache]
        for i in range(0, len(want), 500):
            chunk = want[i : i + 500]
            q = f"SELECT seq, meta, kv FROM items WHERE cid=? AND seq IN ({','.join('?' * len(chunk))})"
            for seq, blob, kv in self.conn.execute(q, (self.cid, *chunk)):
                try:
                    self._meta_cache[seq] = json.loads(
                        self._sealer(kv).open(blob, self._aad(seq, "meta", kv))
                    )
                except DecryptionError:
                    raise IntegrityError(
                        f"{DB_FILE}: a payload of collection {self.name!r} does not authenticate; "
                        "restore a snapshot"
                    ) from None
        return {s: self._meta_cache[s] for s in seqs if s in self._meta_cache}

    def all_seqs(self) -> list[int]:
        return sorted(self.id_of)

    def prepare_queries(self, codes: np.ndarray) -> np.ndarray:
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[1] != self.bits // 8:
            raise ShapeError(
                f"query codes must be packed uint8 of shape (n, {self.bits // 8}) for {self.bits} bits"
            )
        return self.salt.apply(codes) if self.salt is not None else codes

    def search_codes(
        self, salted: np.ndarray, k: int, *, allowed: np.ndarray | None = None, modality: int | None = None
    ) -> list[list[tuple[int, int, int]]]:
        """Per query: [(seq, distance, modality)] for the top ``k`` items."""
        n_codes = len(self.index)
        out: list[list[tuple[int, int, int]]] = []
        if k <= 0 or n_codes == 0:
            return [[] for _ in range(salted.shape[0])]
        filtered = allowed is not None or modality is not None
        pushdown = filtered and hasattr(self.index, "search_filtered")  # Milvus filters server-side
        over = filtered and not pushdown
        fetch = min(n_codes, k * self.max_codes if not over else max(4 * k * self.max_codes, 64))
        while True:
            if pushdown:
                dist, rows = self.index.search_filtered(  # type: ignore[attr-defined]
                    salted, fetch, seqs=allowed, modality=modality
                )
            else:
                dist, rows = self.index.search(salted, fetch)
            out = []
            short = False
            for q in range(salted.shape[0]):
                r = rows[q]
                valid = r >= 0
                r, d = r[valid], dist[q][valid]
                seqs = self.code_seq[r]
                keep = np.ones(seqs.shape[0], dtype=bool)
                if modality is not None:
                    keep &= self.code_mod[r] == modality
                if allowed is not None:
                    keep &= np.isin(seqs, allowed)
                idx = np.flatnonzero(keep)
                _, first = np.unique(seqs[idx], return_index=True)
                first = idx[np.sort(first)][:k]
                out.append([(int(seqs[i]), int(d[i]), int(self.code_mod[r[i]])) for i in first])
                if len(first) < k and fetch < n_codes:
                    short = True
            if not short or pushdown:  # a pushed-down filter already gave the exact top rows
                return out
            fetch = min(n_codes, fetch * 4)

    def hits(self, results: list[tuple[int, int, int]]) -> list[Hit]:
        metas = self.metas([s for s, _, _ in results])
        bits = self.bits
        out = []
        for seq, d, m in results:
            meta = metas.get(seq, {})
            out.append(
                Hit(
                    id=self.id_of[seq],
                    score=1.0 - d / bits,
                    distance=d,
                    modality=MODALITIES[m],
                    labels=tuple(meta.get("labels", ())),
                    attrs=dict(meta.get("attrs", {})),
                    ref=meta.get("ref"),
                )
            )
        return out

    # ------------------------------------------------------------------ rotation
    def reseal(self, new_kv: int) -> None:
        """Re-encrypt every row under data key ``new_kv`` (one transaction)."""
        self.segment_gen = -1
        cur = self.conn.execute(
            "SELECT seq, id_hmac, rid, core, meta, kv FROM items WHERE cid=?", (self.cid,)
        )
        updates = []
        for seq, hm, rid, core, meta, kv in cur.fetchall():
            s_old, s_new = self._sealer(kv), self._sealer(new_kv)
            raw_rid = s_old.open(rid, self._aad(seq, "rid", kv) + bytes(hm))
            raw_meta = s_old.open(meta, self._aad(seq, "meta", kv))
            body = self._open_core(seq, kv, core)
            if self.encrypted:
                ncore = s_new.seal(body, self._aad(seq, "core", new_kv))
            else:
                ncore = body + keyed_hmac(self._tag_key(new_kv), self._aad(seq, "core", new_kv) + body)[:_TAG]
            updates.append(
                (
                    s_new.seal(raw_rid, self._aad(seq, "rid", new_kv) + bytes(hm)),
                    ncore,
                    s_new.seal(raw_meta, self._aad(seq, "meta", new_kv)),
                    new_kv,
                    self.cid,
                    seq,
                )
            )
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(
                "UPDATE items SET rid=?, core=?, meta=?, kv=? WHERE cid=? AND seq=?", updates
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise


def _id_bytes(item_id: Any) -> bytes:
    if isinstance(item_id, bool) or not isinstance(item_id, str | int):
        raise ShapeError("item ids must be strings or integers")
    return json.dumps(item_id).encode()

"""Collections that learn: fit a hasher on a collection's own pairs, re-code in place, switch, switch back.

``fit_collection`` gathers the items that kept features of two modalities (text + image), holds a
fraction of them apart, fits the new hasher on the rest and reports the current and the new
hasher's MAP on the held-apart pairs in both directions (relevant = same label when the items carry
labels or ``labels_from`` names an attribute, else only the item's own partner). It switches only
when the new hasher is better on average (or ``force=True``).

Switching re-codes every item from its kept features in two phases:

1. *staging* (short transactions of a few blocks each; searches keep answering from the old codes,
   adds and deletes go on): for every row block, the block's core re-sealed with the new codes goes
   into table ``recode`` beside the SHA-256 of the core it replaces. A crash leaves staged rows that
   the next run reuses (resume): a staged core whose digest still matches its block is not redone.
2. *the switch*, one SQLite transaction: every block's core is replaced by its staged twin (blocks
   added or changed since staging are re-coded right there), the collection's configuration names the
   new hasher as current and keeps the previous one, the generation moves on, staging is cleared.
   A crash before the commit leaves the old hasher and codes whole; after it, the new ones.

The previous hasher stays in the configuration: :func:`switch_back` re-codes to it the same way.
Fit, switch and switch back are audited (``collection.fit``, ``collection.switch``,
``collection.switch_back``).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._progress import progress
from .._types import MODALITIES
from ..errors import ConfigurationError, InputError
from ._blocks import pack_core
from ._encode import Encoders, default_hasher, hasher_from_bytes, hasher_to_bytes

if TYPE_CHECKING:
    from ._collection import Collection

__all__ = ["FitReport", "fit_collection", "resume_switch", "switch_back"]

_STAGE_BLOCKS = 64  # row blocks re-coded per staging transaction
_CANDIDATE_BID = -1  # the staged hasher's row in ``recode``


@dataclass
class FitReport:
    """What :meth:`Collection.fit` did. MAPs are on the held-apart pairs (both directions)."""

    method: str
    bits: int
    pairs: int
    held_apart: int
    relevance: str
    current: dict[str, float]
    new: dict[str, float]
    switched: bool
    forced: bool
    reason: str
    fit_seconds: float
    recode_seconds: float = 0.0
    recoded_items: int = 0
    version: int = 1
    chosen: dict[str, Any] = field(default_factory=dict)

    @property
    def recode_items_per_s(self) -> float:
        return self.recoded_items / self.recode_seconds if self.recode_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["recode_items_per_s"] = self.recode_items_per_s
        return out

    def __str__(self) -> str:
        c, n = self.current, self.new
        lines = [
            f"fit {self.method} ({self.bits} bits) on {self.pairs - self.held_apart} pairs, "
            f"{self.held_apart} held apart (relevant = {self.relevance}), {self.fit_seconds:.1f} s",
            f"  current hasher: MAP text->image {c['map_t2i']:.4f}  image->text {c['map_i2t']:.4f}",
            f"  new hasher:     MAP text->image {n['map_t2i']:.4f}  image->text {n['map_i2t']:.4f}",
        ]
        if self.switched:
            lines.append(
                f"  switched to version {self.version}{' (forced)' if self.forced else ''}: "
                f"{self.recoded_items} items re-coded in {self.recode_seconds:.2f} s "
                f"({self.recode_items_per_s:,.0f} items/s)"
            )
        else:
            lines.append(f"  kept the current hasher: {self.reason}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------- fit
def _labels(coll: Collection, seqs: np.ndarray, labels_from: str | None) -> tuple[np.ndarray, list[str]]:
    """Class ids (-1 = none) per item from its first label, or from attribute ``labels_from``."""
    with coll._ops.lock.read():
        metas = coll._engine.metas(seqs.tolist())
    vocab: dict[str, int] = {}
    out = np.full(seqs.size, -1, dtype=np.int64)
    for i, s in enumerate(seqs.tolist()):
        meta = metas.get(s, {})
        if labels_from is None:
            labels = meta.get("labels") or []
            value = labels[0] if labels else None
        else:
            value = (meta.get("attrs") or {}).get(labels_from)
        if value is not None and str(value) != "":
            out[i] = vocab.setdefault(str(value), len(vocab))
    return out, sorted(vocab, key=vocab.__getitem__)


def _image_kind(counts: dict[str, int], dim: int | None = None) -> str | None:
    kinds = [k for k in counts if k.startswith("image:") and counts[k] >= 2]
    if dim is not None:
        return f"image:{dim}" if f"image:{dim}" in kinds else None
    return max(kinds, key=lambda k: int(k.split(":")[1]), default=None)


def _maps(hasher: Any, x: np.ndarray, t: np.ndarray, rel: np.ndarray) -> dict[str, float]:
    from ..eval._metrics import mean_average_precision

    ci, ct = hasher.encode_image(x), hasher.encode_text(t)
    return {
        "map_t2i": float(mean_average_precision(ct, ci, rel, rel)),
        "map_i2t": float(mean_average_precision(ci, ct, rel, rel)),
    }


def fit_collection(
    coll: Collection,
    *,
    method: str = "unsupervised",
    bits: int | None = None,
    labels_from: str | None = None,
    holdout: float = 0.2,
    force: bool = False,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    show_progress: bool | None = None,
) -> FitReport:
    """Learn a ``method`` hasher (``unsupervised``: pairs only; ``supervised``: with the items' first
    label or attribute ``labels_from``; ``cca``, ``cca-itq``) from the collection's items that kept
    text and image features, compare it with the current hasher on ``holdout`` of the pairs (held
    apart from the fit) and switch to it when its mean MAP is higher, or when ``force``."""
    from .. import hashing

    store, engine = coll._store, coll._engine
    store._check_writable()
    bits = coll.bits if bits is None else int(bits)
    if bits != coll.bits:
        raise ConfigurationError(
            f"the collection's codes have {coll.bits} bits; fit a {coll.bits}-bit hasher (or create "
            "another collection for another length)"
        )
    if not 0.0 < float(holdout) < 1.0:
        raise ConfigurationError("holdout must be a fraction between 0 and 1")
    with coll._ops.lock.read():
        counts = engine.vault.count()
    cur = coll._encoders.hasher
    text_kind = f"text:{int(cur.text_dim_)}"
    cur_image = _image_kind(counts, int(cur.image_dim_))
    new_image = _image_kind(counts, 384 if method == "zero-shot" else None)
    if counts.get(text_kind, 0) < 2 or new_image is None or cur_image is None:
        raise InputError(
            f"collection {coll.name!r} has too few items with kept text and image features to fit "
            "(create it with keep_features=True, or turn keep_features on and re-add the items)"
        )
    kinds = tuple(dict.fromkeys((text_kind, new_image, cur_image)))
    with coll._ops.lock.read():
        seqs, mats = engine.vault.gather(kinds)
    feats = dict(zip(kinds, mats, strict=True))
    n = seqs.size
    n_held = max(round(n * float(holdout)), 2)
    if n - n_held < 8:
        raise InputError(f"only {n} items carry both text and image features; a fit needs at least 10")
    labels, classes = _labels(coll, seqs, labels_from)
    supervised = method == "supervised"
    if supervised and int((labels >= 0).sum()) < 2:
        what = "labels" if labels_from is None else f"attribute {labels_from!r}"
        raise InputError(f"the supervised fit needs items with {what}; none of the pairs has any")
    order = np.random.default_rng(seed).permutation(n)
    held, train = order[:n_held], order[n_held:]
    if (labels[held] >= 0).all():
        rel, relevance = labels[held], "same label" if labels_from is None else f"same {labels_from}"
    else:
        rel, relevance = np.arange(n_held), "own partner only"
    new = hashing.create(method, bits=bits, **(params or {}))
    t0 = time.perf_counter()
    x_tr, t_tr = feats[new_image][train], feats[text_kind][train]
    if method == "zero-shot":
        new.fit(x_tr, t_tr)
    else:
        new.fit(x_tr, t_tr, labels[train] if supervised else None)
    fit_s = time.perf_counter() - t0
    cur_maps = _maps(cur, feats[cur_image][held], feats[text_kind][held], rel)
    new_maps = _maps(new, feats[new_image][held], feats[text_kind][held], rel)
    better = np.mean(list(new_maps.values())) > np.mean(list(cur_maps.values()))
    report = FitReport(
        method=method,
        bits=bits,
        pairs=n,
        held_apart=n_held,
        relevance=relevance,
        current=cur_maps,
        new=new_maps,
        switched=False,
        forced=bool(force and not better),
        fit_seconds=fit_s,
        reason="" if better else "the new hasher is not better on the held-apart pairs",
        version=coll.hasher_version,
        chosen={k: getattr(new, k) for k in ("head_image_", "head_text_", "code_") if hasattr(new, k)},
    )
    if supervised:
        report.chosen["classes"] = len(classes)
    store._audit_op(
        "collection.fit",
        collection=coll.name,
        detail={
            "method": method,
            "bits": bits,
            "pairs": n,
            "held_apart": n_held,
            "current": cur_maps,
            "new": new_maps,
            "labels_from": labels_from,
        },
    )
    if better or force:
        # refit on every pair before switching: the held-apart pairs served their purpose
        full_x, full_t = feats[new_image], feats[text_kind]
        final = hashing.create(method, bits=bits, **(params or {}))
        if method == "zero-shot":
            final.fit(full_x, full_t)
        else:
            final.fit(full_x, full_t, labels if supervised else None)
        done, secs = _switch(
            coll,
            final,
            action="collection.switch",
            show_progress=show_progress,
            detail={"method": method, "forced": report.forced},
        )
        report.switched, report.recoded_items, report.recode_seconds = True, done, secs
        report.version = coll.hasher_version
    return report


# ---------------------------------------------------------------------------------------- re-coding
def _config_hasher(config: dict[str, Any], key: str) -> Any:
    blob = config.get(key)
    return hasher_from_bytes(base64.b64decode(blob)) if blob else default_hasher(int(config["bits"]))


def switch_back(coll: Collection, *, show_progress: bool | None = None) -> dict[str, Any]:
    """Re-code to the previous hasher version and make it current (the current one becomes the
    previous one). Returns ``{"version", "recoded_items", "seconds"}``."""
    coll._store._check_writable()
    config = coll._engine.config
    if "previous_version" not in config:
        raise ConfigurationError(f"collection {coll.name!r} has no previous hasher version to switch back to")
    prev = _config_hasher(config, "previous_hasher")
    done, secs = _switch(
        coll,
        prev,
        action="collection.switch_back",
        show_progress=show_progress,
        detail={"to_version_of": int(config["previous_version"])},
    )
    return {"version": coll.hasher_version, "recoded_items": done, "seconds": secs}


def resume_switch(coll: Collection, *, show_progress: bool | None = None) -> dict[str, Any] | None:
    """Finish a switch that a crash interrupted while staging (None when nothing is staged)."""
    engine = coll._engine
    with coll._ops.lock.read():
        row = engine.conn.execute(
            "SELECT core FROM recode WHERE cid=? AND bid=?", (engine.cid, _CANDIDATE_BID)
        ).fetchone()
    if row is None:
        return None
    blob = engine.vault._sealer(engine.keys.current).open(bytes(row[0]), _candidate_aad(engine))
    done, secs = _switch(
        coll,
        hasher_from_bytes(blob),
        action="collection.switch",
        show_progress=show_progress,
        detail={"resumed": True},
    )
    return {"version": coll.hasher_version, "recoded_items": done, "seconds": secs}


def _candidate_aad(engine: Any) -> bytes:
    return f"securecmr/recode-hasher|{engine.store_id}|{engine.cid}".encode()


class _Recoder:
    """Re-codes sealed row-block cores from kept features with one hasher."""

    def __init__(self, engine: Any, hasher: Any) -> None:
        self.engine = engine
        self.enc = Encoders(hasher, engine.bits)
        self.kinds = {m: self.enc.feature_kind(m) for m in MODALITIES}

    def recode(self, rows: list[tuple[Any, ...]]) -> list[tuple[int, bytes, bytes]]:
        """(bid, digest of the old core, new sealed core) for block rows (bid, span, n, kv, expires, core)."""
        eng = self.engine
        feats = {bid: (fkv, blob) for bid, fkv, blob in eng.vault.fetch([r[0] for r in rows])}
        opened = []
        need: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}
        for bid, span, n, kv, expires, core in rows:
            seqs, masks, _codes = eng._open_block_core(bid, span, n, kv, expires, core)
            kinds = eng.vault.open(bid, *feats[bid])[1] if bid in feats else {}
            per_mod: list[int | None] = []
            for j, m in enumerate(MODALITIES):
                has = (masks >> j) & 1 == 1
                if not has.any():
                    per_mod.append(None)
                    continue
                got = kinds.get(self.kinds[m])
                if got is None or not bool(got[0][has].all()):
                    raise InputError(
                        f"collection {eng.name!r} holds {m} codes without kept {self.kinds[m]} features "
                        "(added before keep_features, from codes, or video); re-add or delete those items "
                        "before switching hashers"
                    )
                mask, frows = got
                rows_for = frows[np.cumsum(mask)[has] - 1]  # the kept rows of the items with a code
                per_mod.append(len(need[m]))
                need[m].append(rows_for.astype(np.float32))
            opened.append((bid, span, n, kv, expires, core, seqs, masks, per_mod))
        codes: dict[str, list[np.ndarray]] = {}
        for m, parts in need.items():
            if parts:
                allc = self.enc.encode_kept(m, np.concatenate(parts))
                splits = np.cumsum([p.shape[0] for p in parts])[:-1]
                codes[m] = np.split(allc, splits)
        out = []
        for bid, span, n, kv, expires, core, seqs, masks, per_mod in opened:
            cols = []  # per modality: (item index, code)
            for j, m in enumerate(MODALITIES):
                k = per_mod[j]
                if k is None:
                    continue
                items = np.flatnonzero((masks >> j) & 1)
                cols.append((items, np.full(items.size, j), codes[m][k]))
            item = np.concatenate([c[0] for c in cols])
            mod = np.concatenate([c[1] for c in cols])
            mat = np.concatenate([c[2] for c in cols])
            order = np.lexsort((mod, item))  # (item, modality) order, as the core stores them
            mat = np.ascontiguousarray(mat[order])
            if eng.salt is not None:
                mat = eng.salt.apply(mat)
            plain = pack_core(seqs, masks, mat)
            aad = eng._block_aad(bid, span, n, kv, expires, "core")
            if eng.encrypted:
                sealed = eng._sealer(kv).seal(plain, aad)
            else:
                sealed = plain + eng._tagger(kv).digest(aad + plain)[:16]
            out.append((bid, hashlib.sha256(bytes(core)).digest(), sealed))
        return out


def _switch(
    coll: Collection,
    hasher: Any,
    *,
    action: str,
    show_progress: bool | None,
    detail: dict[str, Any],
    stop_after: Callable[[int], bool] | None = None,
) -> tuple[int, float]:
    """Stage the new codes (resumably), then switch in one transaction. Returns (items, seconds)."""
    store, engine, lock = coll._store, coll._engine, coll._ops.lock
    conn, cid = engine.conn, engine.cid
    blob = hasher_to_bytes(hasher)
    digest = hashlib.sha256(blob).digest()
    recoder = _Recoder(engine, hasher)
    t0 = time.perf_counter()
    with lock.write():
        cand = conn.execute(
            "SELECT digest FROM recode WHERE cid=? AND bid=?", (cid, _CANDIDATE_BID)
        ).fetchone()
        if cand is None or bytes(cand[0]) != digest:  # another candidate was staged: start over
            sealed = engine.vault._sealer(engine.keys.current).seal(blob, _candidate_aad(engine))
            _transaction(
                conn,
                [
                    ("DELETE FROM recode WHERE cid=?", [(cid,)]),
                    ("INSERT INTO recode VALUES (?,?,?,?)", [(cid, _CANDIDATE_BID, digest, sealed)]),
                ],
            )
        staged = {
            int(b): bytes(d)
            for b, d in conn.execute("SELECT bid, digest FROM recode WHERE cid=? AND bid>=0", (cid,))
        }
        blocks = conn.execute(
            "SELECT bid, span, n, kv, expires, core FROM blocks WHERE cid=? ORDER BY bid", (cid,)
        ).fetchall()
    todo = [r for r in blocks if staged.get(int(r[0])) != hashlib.sha256(bytes(r[5])).digest()]
    chunks = [todo[i : i + _STAGE_BLOCKS] for i in range(0, len(todo), _STAGE_BLOCKS)]
    bar = progress(chunks, total=len(chunks), description="re-coding", show=show_progress, min_total=8)
    for done_chunks, chunk in enumerate(bar, start=1):
        with lock.read():  # searches go on; a block changed meanwhile is redone at the switch
            rows = recoder.recode(chunk)
        with lock.write():
            _transaction(
                conn,
                [("INSERT OR REPLACE INTO recode VALUES (?,?,?,?)", [(cid, b, d, c) for b, d, c in rows])],
            )
        if stop_after is not None and stop_after(done_chunks):  # tests: a crash point
            return 0, 0.0
    # the switch: one transaction, under the write lock
    with lock.write():
        config = dict(engine.config)
        version = int(config.get("hasher_version", 1)) + 1
        items = len(engine)
        conn.execute("BEGIN IMMEDIATE")
        try:
            staged_cores = {
                int(b): (bytes(d), bytes(c))
                for b, d, c in conn.execute(
                    "SELECT bid, digest, core FROM recode WHERE cid=? AND bid>=0", (cid,)
                )
            }
            current = conn.execute(
                "SELECT bid, span, n, kv, expires, core FROM blocks WHERE cid=? ORDER BY bid", (cid,)
            ).fetchall()
            late = [
                r
                for r in current
                if staged_cores.get(int(r[0]), (b"",))[0] != hashlib.sha256(bytes(r[5])).digest()
            ]
            fresh = {b: c for b, _d, c in recoder.recode(late)} if late else {}
            updates = [
                (fresh[int(r[0])] if int(r[0]) in fresh else staged_cores[int(r[0])][1], cid, int(r[0]))
                for r in current
            ]
            conn.executemany("UPDATE blocks SET core=? WHERE cid=? AND bid=?", updates)
            new_config = dict(config)
            new_config["previous_hasher"] = config.get("hasher")
            new_config["previous_version"] = int(config.get("hasher_version", 1))
            new_config["hasher"] = base64.b64encode(blob).decode()
            new_config["hasher_version"] = version
            store._write_config(cid, new_config)
            conn.execute("UPDATE collections SET gen=gen+1 WHERE cid=?", (cid,))
            engine.restate_root()  # the sealed state root follows the new configuration
            conn.execute("DELETE FROM recode WHERE cid=?", (cid,))
            # audited inside the transaction: no switch without its record
            store._audit_op(
                action, collection=coll.name, detail={**detail, "version": version, "items": items}
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        store._reload_collection(coll)
    return items, time.perf_counter() - t0


def _transaction(conn: Any, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in statements:
            conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise

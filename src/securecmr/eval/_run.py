"""Running one hashing method on a dataset at several code lengths (what ``securecmr eval`` does)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ._datasets import CrossModalData
from ._metrics import (
    float_mean_average_precision,
    mean_average_precision,
    precision_at_k,
    precision_recall_curve,
    recall_at_k,
)

__all__ = ["PROTOCOLS", "evaluate"]

PROTOCOLS = ("out-of-sample", "learned-db")


def _float_reference(data: CrossModalData) -> dict[str, float]:
    """MAP of cosine ranking in the real-valued CCA space (the classic float baseline): every canonical
    direction (up to 128), inputs as the ``cca`` hasher sees them (no square root)."""
    from ..hashing._linalg import cca

    tr, db, q = data.train, data.db, data.query
    mx, mt = tr.image.mean(axis=0), tr.text.mean(axis=0)
    k = min(tr.image.shape[1], tr.text.shape[1], 128)
    px, pt, _ = cca(tr.image - mx, tr.text - mt, k, 1e-3)
    qi, qt = (q.image - mx) @ px, (q.text - mt) @ pt
    di, dt = (db.image - mx) @ px, (db.text - mt) @ pt
    return {
        "map_i2t": float_mean_average_precision(qi, dt, q.labels, db.labels),
        "map_t2i": float_mean_average_precision(qt, di, q.labels, db.labels),
    }


# what ``evaluate`` tries on a dataset's dev split for the kernel hashers (unless params fix them)
DEV_GRID: tuple[dict[str, float], ...] = tuple(
    {"reg": r, "gamma": g, "confidence": c} for r in (1e-4, 1e-3) for g in (1.0, 2.0) for c in (0.0, 0.5)
)


def tune_on_dev(data: CrossModalData, method: str, bits: int, params: dict[str, Any]) -> dict[str, Any]:
    """Pick ``reg`` / ``gamma`` / ``confidence`` of the supervised hasher on ``data.dev`` (labels; the
    unsupervised hasher tunes itself on held-out pairs without labels): fit on
    ``data.train`` with each setting of :data:`DEV_GRID` (keys already in ``params`` stay fixed) and
    keep the best mean MAP of the dev queries against the training rows in both directions (codes
    from the hash functions). Returns the params to use."""
    from ..hashing import create

    dev, tr = data.dev, data.train
    if dev is None or len(dev) == 0 or method != "supervised":
        return params
    grid = [{k: v for k, v in cand.items() if k not in params} for cand in DEV_GRID]
    grid = [dict(t) for t in {tuple(sorted(c.items())) for c in grid}]
    if len(grid) <= 1:
        return {**params, **(grid[0] if grid else {})}
    best, best_score = grid[0], -1.0
    for cand in sorted(grid, key=lambda c: sorted(c.items())):
        h = create(method, bits=bits, **params, **cand).fit(tr.image, tr.text, tr.labels)
        di, dt = h.encode_image(tr.image), h.encode_text(tr.text)
        score = 0.5 * (
            mean_average_precision(h.encode_image(dev.image), dt, dev.labels, tr.labels)
            + mean_average_precision(h.encode_text(dev.text), di, dev.labels, tr.labels)
        )
        if score > best_score:
            best, best_score = cand, score
    return {**params, **best}


def evaluate(
    data: CrossModalData,
    method: str,
    bits_list: list[int],
    *,
    protocol: str = "out-of-sample",
    params: dict[str, Any] | None = None,
    curves: bool = False,
    tune: bool = True,
) -> dict[str, Any]:
    """Fit ``method`` on ``data.train`` at each length in ``bits_list`` and report MAP, precision@100,
    paired recall@1/10 (query images vs their own captions) and ``float_map_*``: the MAP of the
    real-valued space the codes are quantised from (``embed_image`` / ``embed_text``: class scores for
    ``supervised`` / ``unsupervised``, projections otherwise) ranked by cosine, query and database both
    through the functions. For ``protocol``:

    * ``out-of-sample``: database codes come from the hash functions (deployment);
    * ``learned-db``: database codes are the codes the method learned for its training pairs
      (``train_codes_``); the hasher is fitted on the database rows, so when the database differs from
      the training split (MedPix: train + dev) it is fitted on the whole database.

    With ``tune`` and a dev split (MedPix, manifests with splits), ``supervised`` first picks ``reg``
    / ``gamma`` / ``confidence`` on dev (:func:`tune_on_dev`, at the longest length); the params used
    are reported as ``params`` in each row.
    """
    from ..hashing import create

    if protocol not in PROTOCOLS:
        raise ConfigurationError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    params = dict(params or {})
    if tune and bits_list:
        params = tune_on_dev(data, method, max(bits_list), params)
    train = data.train if protocol == "out-of-sample" else data.db
    db, q = data.db, data.query
    results = []
    for bits in bits_list:
        hasher = create(method, bits=bits, **params)
        start = time.perf_counter()
        if method == "zero-shot":
            hasher.fit(train.image, train.text)
        else:
            hasher.fit(train.image, train.text, train.labels)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        qi, qt = hasher.encode_image(q.image), hasher.encode_text(q.text)
        enc_s = (time.perf_counter() - start) / max(2 * len(q), 1)
        if protocol == "learned-db":
            if not hasattr(hasher, "train_codes_"):
                raise ConfigurationError(
                    f"method {method!r} learns no database codes; use --protocol out-of-sample"
                )
            d_img = d_txt = np.asarray(hasher.train_codes_)
        else:
            d_img, d_txt = hasher.encode_image(db.image), hasher.encode_text(db.text)
        row: dict[str, Any] = {
            "bits": bits,
            "map_i2t": mean_average_precision(qi, d_txt, q.labels, db.labels),
            "map_t2i": mean_average_precision(qt, d_img, q.labels, db.labels),
            "p_at_100_i2t": precision_at_k(qi, d_txt, q.labels, db.labels, 100),
            "p_at_100_t2i": precision_at_k(qt, d_img, q.labels, db.labels, 100),
            "recall_at_1_i2t": recall_at_k(qi, qt, 1),
            "recall_at_10_i2t": recall_at_k(qi, qt, 10),
            "recall_at_10_t2i": recall_at_k(qt, qi, 10),
            "fit_seconds": fit_s,
            "params": dict(params),
            "encode_ms_per_item": enc_s * 1000,
        }
        fqi, fqt = hasher.embed_image(q.image), hasher.embed_text(q.text)
        fdi, fdt = hasher.embed_image(db.image), hasher.embed_text(db.text)
        row["float_map_i2t"] = float_mean_average_precision(fqi, fdt, q.labels, db.labels)
        row["float_map_t2i"] = float_mean_average_precision(fqt, fdi, q.labels, db.labels)
        if curves:
            p1, r1 = precision_recall_curve(qi, d_txt, q.labels, db.labels)
            p2, r2 = precision_recall_curve(qt, d_img, q.labels, db.labels)
            row["pr_i2t"] = {"precision": p1.tolist(), "recall": r1.tolist()}
            row["pr_t2i"] = {"precision": p2.tolist(), "recall": r2.tolist()}
        results.append(row)
    return {
        "dataset": data.name,
        "method": method,
        "protocol": protocol,
        "n_train": len(train),
        "n_query": len(q),
        "n_database": len(db),
        "results": results,
        "float_reference": _float_reference(data),
    }

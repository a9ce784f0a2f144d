"""Retrieval metrics on packed codes against brute-force references written from the definitions."""

from __future__ import annotations

import numpy as np
import pytest

from securecmr.errors import ShapeError
from securecmr.eval import (
    float_mean_average_precision,
    hamming_distance,
    mean_average_precision,
    precision_at_k,
    precision_recall_curve,
    recall_at_k,
    relevance,
)
from securecmr.hashing import pack_signs


def _random_codes(rng: np.random.Generator, n: int, bits: int) -> np.ndarray:
    return np.packbits(rng.integers(0, 2, size=(n, bits)).astype(bool), axis=1)


def _bits(codes: np.ndarray) -> list[list[int]]:
    return [[int(b) for b in np.unpackbits(row)] for row in codes]


def _ref_hamming(q: np.ndarray, d: np.ndarray) -> list[list[int]]:
    qb, db = _bits(q), _bits(d)
    return [[sum(a != b for a, b in zip(x, y, strict=True)) for y in db] for x in qb]


def _ref_relevant(ql: object, dl: object) -> list[list[bool]]:
    def as_sets(labels: object) -> list[set[int]]:
        arr = np.asarray(labels)
        if arr.ndim == 1:
            return [{int(v)} for v in arr]
        return [{j for j in range(arr.shape[1]) if arr[i, j]} for i in range(arr.shape[0])]

    qs, ds = as_sets(ql), as_sets(dl)
    return [[bool(a & b) for b in ds] for a in qs]


def _ref_ranking(dist_row: list[int]) -> list[int]:
    # ties broken by database order
    return sorted(range(len(dist_row)), key=lambda j: (dist_row[j], j))


def _ref_map(q: np.ndarray, d: np.ndarray, ql: object, dl: object, top_k: int | None = None) -> float:
    dist, rel = _ref_hamming(q, d), _ref_relevant(ql, dl)
    aps = []
    for i in range(len(dist)):
        order = _ref_ranking(dist[i])
        if top_k is not None:
            order = order[:top_k]
        found, precisions = 0, []
        for rank, j in enumerate(order, start=1):
            if rel[i][j]:
                found += 1
                precisions.append(found / rank)
        aps.append(sum(precisions) / len(precisions) if precisions else 0.0)
    return sum(aps) / len(aps)


def _ref_precision_at_k(q: np.ndarray, d: np.ndarray, ql: object, dl: object, k: int) -> float:
    dist, rel = _ref_hamming(q, d), _ref_relevant(ql, dl)
    vals = []
    for i in range(len(dist)):
        top = _ref_ranking(dist[i])[:k]
        vals.append(sum(rel[i][j] for j in top) / len(top))
    return sum(vals) / len(vals)


def _label_cases(rng: np.random.Generator, nq: int, nd: int) -> list[tuple[np.ndarray, np.ndarray]]:
    single = (rng.integers(0, 4, nq), rng.integers(0, 4, nd))
    multi = (
        (rng.random((nq, 5)) < 0.3).astype(np.int64),
        (rng.random((nd, 5)) < 0.3).astype(np.int64),
    )
    return [single, multi]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bits", [8, 16])
def test_map_matches_brute_force_with_ties(seed: int, bits: int) -> None:
    rng = np.random.default_rng(seed)
    # few bits and many items: lots of equal distances, so the tie rule matters
    q, d = _random_codes(rng, 12, bits), _random_codes(rng, 40, bits)
    for ql, dl in _label_cases(rng, 12, 40):
        assert mean_average_precision(q, d, ql, dl) == pytest.approx(_ref_map(q, d, ql, dl), abs=1e-12)
        for k in (1, 5, 40, 100):
            assert mean_average_precision(q, d, ql, dl, top_k=k) == pytest.approx(
                _ref_map(q, d, ql, dl, top_k=k), abs=1e-12
            )


def test_map_tie_rule_is_database_order() -> None:
    # every database code is identical: the ranking is the database order
    q = np.zeros((1, 1), dtype=np.uint8)
    d = np.zeros((4, 1), dtype=np.uint8)
    assert mean_average_precision(q, d, [1], [0, 1, 0, 1]) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert mean_average_precision(q, d, [1], [1, 1, 0, 0]) == pytest.approx(1.0)
    # a closer irrelevant item goes first whatever its position
    d2 = np.array([[0], [0], [0], [255]], dtype=np.uint8)
    q2 = np.array([[255]], dtype=np.uint8)
    assert mean_average_precision(q2, d2, [0], [0, 1, 1, 1]) == pytest.approx(1 / 2)


def test_map_perfect_and_no_relevant() -> None:
    labels = np.arange(30) % 3
    table = np.array(
        [[1, 1, 1, 1, -1, -1, -1, -1], [1, -1, 1, -1, 1, -1, 1, -1], [1, 1, -1, -1, 1, 1, -1, -1]]
    )
    codes = pack_signs(table[labels].astype(np.float64))  # one distinct code per class
    assert mean_average_precision(codes, codes, labels, labels) == pytest.approx(1.0)
    assert precision_at_k(codes, codes, labels, labels, 10) == pytest.approx(1.0)
    # queries whose label no database item has score 0
    assert mean_average_precision(codes[:2], codes, [7, 7], labels) == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_precision_at_k_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q, d = _random_codes(rng, 10, 16), _random_codes(rng, 50, 16)
    for ql, dl in _label_cases(rng, 10, 50):
        for k in (1, 7, 50, 200):
            assert precision_at_k(q, d, ql, dl, k) == pytest.approx(
                _ref_precision_at_k(q, d, ql, dl, min(k, 50)), abs=1e-12
            )


@pytest.mark.parametrize("seed", range(3))
def test_precision_recall_curve_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q, d = _random_codes(rng, 9, 16), _random_codes(rng, 30, 16)
    for ql, dl in _label_cases(rng, 9, 30):
        precision, recall = precision_recall_curve(q, d, ql, dl)
        assert precision.shape == recall.shape == (17,)
        dist, rel = _ref_hamming(q, d), _ref_relevant(ql, dl)
        for r in range(17):
            ps, rs = [], []
            for i in range(len(dist)):
                got = [j for j in range(30) if dist[i][j] <= r]
                good = sum(rel[i][j] for j in got)
                if got:
                    ps.append(good / len(got))
                if sum(rel[i]):
                    rs.append(good / sum(rel[i]))
            assert precision[r] == pytest.approx(sum(ps) / len(ps) if ps else 0.0, abs=1e-12)
            assert recall[r] == pytest.approx(sum(rs) / len(rs) if rs else 0.0, abs=1e-12)
        assert recall[-1] == pytest.approx(1.0) or not any(any(row) for row in rel)
        assert np.all(np.diff(recall) >= -1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_recall_at_k_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q, d = _random_codes(rng, 25, 8), _random_codes(rng, 25, 8)
    dist = _ref_hamming(q, d)
    for k in (1, 3, 10, 25):
        expected = sum(i in _ref_ranking(dist[i])[:k] for i in range(25)) / 25
        assert recall_at_k(q, d, k) == pytest.approx(expected, abs=1e-12)
    assert recall_at_k(q, q, 1) >= recall_at_k(q, d, 1)


def test_hamming_and_relevance() -> None:
    rng = np.random.default_rng(5)
    q, d = _random_codes(rng, 6, 24), _random_codes(rng, 9, 24)
    assert hamming_distance(q, d).tolist() == _ref_hamming(q, d)
    ml_q = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    ml_d = np.array([[0, 0, 1], [1, 1, 0]])
    assert relevance(ml_q, ml_d).tolist() == [[False, True], [True, True], [False, False]]
    assert relevance([1, 2], [2, 2, 1]).tolist() == [[False, False, True], [True, True, False]]


def test_float_map_matches_brute_force() -> None:
    rng = np.random.default_rng(2)
    q, d = rng.normal(size=(8, 5)), rng.normal(size=(30, 5))
    ql, dl = rng.integers(0, 3, 8), rng.integers(0, 3, 30)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    sims = qn @ dn.T
    aps = []
    for i in range(8):
        order = sorted(range(30), key=lambda j: (-sims[i, j], j))
        found, acc = 0, 0.0
        for rank, j in enumerate(order, start=1):
            if ql[i] == dl[j]:
                found += 1
                acc += found / rank
        aps.append(acc / found if found else 0.0)
    assert float_mean_average_precision(q, d, ql, dl) == pytest.approx(float(np.mean(aps)), abs=1e-9)


def test_metric_input_errors() -> None:
    rng = np.random.default_rng(0)
    q, d = _random_codes(rng, 3, 16), _random_codes(rng, 5, 16)
    with pytest.raises(ShapeError, match="packed uint8"):
        mean_average_precision(q.astype(np.int64), d, [0] * 3, [0] * 5)
    with pytest.raises(ShapeError, match="bits"):
        mean_average_precision(q, _random_codes(rng, 5, 8), [0] * 3, [0] * 5)
    with pytest.raises(ShapeError, match="query_labels"):
        mean_average_precision(q, d, [0] * 2, [0] * 5)
    with pytest.raises(ShapeError, match="db_labels"):
        precision_at_k(q, d, [0] * 3, [0] * 4)
    with pytest.raises(ShapeError, match="top_k"):
        mean_average_precision(q, d, [0] * 3, [0] * 5, top_k=0)
    with pytest.raises(ShapeError, match="both be ids or both multi-hot"):
        mean_average_precision(q, d, [0] * 3, np.zeros((5, 2)))
    with pytest.raises(ShapeError, match="as many queries"):
        recall_at_k(q, d)

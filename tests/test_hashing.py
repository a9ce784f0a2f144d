"""Cross-modal hashers: fitting on generated data, code shapes, persistence without torch, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import securecmr.hashing as hashing
from securecmr.errors import (
    ConfigurationError,
    InputError,
    NotFittedError,
    SerializationError,
    ShapeError,
)
from securecmr.eval import mean_average_precision

# tiny training budgets keep the module fast; the learnable task below is easy
FAST: dict[str, dict[str, object]] = {
    "cca": {},
    "cca-itq": {},
    "supervised": {"anchors": 64, "max_iter": 25, "reg": 1e-4, "gamma": 1.0},
    "unsupervised": {"anchors": 64, "max_iter": 25, "reg": 1e-4, "gamma": 1.0},
    "zero-shot": {"dim": None},
}
TRAINED = ("cca", "cca-itq", "supervised", "unsupervised")


def make_pairs(
    n: int, *, classes: int = 4, di: int = 24, dt: int = 12, seed: int = 0, noise: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image and text features that both depend on a shared class (a learnable task)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    mi = np.random.default_rng(100).normal(size=(classes, di)) * 2.0
    mt = np.random.default_rng(101).normal(size=(classes, dt)) * 2.0
    x = mi[y] + noise * rng.normal(size=(n, di))
    t = mt[y] + noise * rng.normal(size=(n, dt))
    return x, t, y


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    x, t, y = make_pairs(240, seed=0)
    qx, qt, qy = make_pairs(60, seed=1)
    return {"x": x, "t": t, "y": y, "qx": qx, "qt": qt, "qy": qy}


@pytest.fixture(scope="module")
def fitted(data: dict[str, np.ndarray]) -> dict[str, object]:
    out: dict[str, object] = {}
    for method in (*TRAINED, "zero-shot"):
        h = hashing.create(method, bits=32, **FAST[method])
        if method == "zero-shot":
            h.fit(data["x"][:, :12], data["t"])
        else:
            h.fit(data["x"], data["t"], data["y"])
        out[method] = h
    return out


@pytest.mark.parametrize("method", TRAINED)
def test_beats_chance_out_of_sample(
    method: str, fitted: dict[str, object], data: dict[str, np.ndarray]
) -> None:
    h = fitted[method]
    qi, qt = h.encode_image(data["qx"]), h.encode_text(data["qt"])  # type: ignore[attr-defined]
    di, dt = h.encode_image(data["x"]), h.encode_text(data["t"])  # type: ignore[attr-defined]
    chance = max(np.mean(data["y"] == c) for c in range(4))
    i2t = mean_average_precision(qi, dt, data["qy"], data["y"])
    t2i = mean_average_precision(qt, di, data["qy"], data["y"])
    floor = {"supervised": 0.85, "unsupervised": 0.5}.get(method, 0.4)
    assert i2t > max(floor, chance + 0.15), (method, i2t)
    assert t2i > max(floor, chance + 0.15), (method, t2i)


@pytest.mark.parametrize("method", ["supervised", "unsupervised"])
def test_learned_db_codes(method: str, fitted: dict[str, object], data: dict[str, np.ndarray]) -> None:
    h = fitted[method]
    codes = h.train_codes_  # type: ignore[attr-defined]
    assert codes.dtype == np.uint8 and codes.shape == (240, 4)
    qi = h.encode_image(data["qx"])  # type: ignore[attr-defined]
    assert mean_average_precision(qi, codes, data["qy"], data["y"]) > 0.5


def test_zero_shot_data_independent_keeps_angles() -> None:
    h = hashing.create("zero-shot", bits=128, dim=40, seed=3).fit()
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 40))
    near = v + 0.05 * rng.normal(size=v.shape)
    far = rng.normal(size=v.shape)
    c, cn, cf = h.encode(v), h.encode(near), h.encode(far)
    dn = np.unpackbits(c ^ cn, axis=1).sum(1)
    df = np.unpackbits(c ^ cf, axis=1).sum(1)
    assert dn.mean() < 10 < 50 < df.mean()
    # deterministic given the seed, and the same function for both modalities
    h2 = hashing.create("zero-shot", bits=128, dim=40, seed=3).fit()
    assert np.array_equal(h2.encode_image(v), c)
    assert not np.array_equal(hashing.create("zero-shot", bits=128, dim=40, seed=4).fit().encode(v), c)


def test_zero_shot_fitted_on_text_beats_chance(data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ShapeError, match="shared space"):
        hashing.create("zero-shot", bits=16, dim=None).fit(data["x"], data["t"])
    with pytest.raises(ShapeError, match="columns"):
        hashing.create("zero-shot", bits=16, dim=384).fit(None, data["t"])
    h = hashing.create("zero-shot", bits=16, dim=None).fit(None, data["t"])
    q, d = h.encode_text(data["qt"]), h.encode_text(data["t"])
    assert mean_average_precision(q, d, data["qy"], data["y"]) > 0.6


@pytest.mark.parametrize("bits", [16, 32, 64, 128])
@pytest.mark.parametrize("method", [*TRAINED, "zero-shot"])
def test_code_shapes_and_dtypes(method: str, bits: int) -> None:
    x, t, y = make_pairs(80, seed=2)
    h = hashing.create(method, bits=bits, **FAST[method])
    if method == "zero-shot":
        h.fit(x[:, :12], t)
        x = x[:, :12]
    else:
        h.fit(x, t, y)
    for codes in (h.encode_image(x[:7]), h.encode_text(t[:7])):
        assert codes.dtype == np.uint8
        assert codes.shape == (7, bits // 8)
    if hasattr(h, "train_codes_"):
        assert h.train_codes_.shape == (80, bits // 8)
    assert h.project_image(x[:3]).shape == (3, bits)
    emb = h.embed_text(t[:3])
    assert emb.shape[0] == 3 and np.isfinite(emb).all()
    if method == "supervised":  # class scores
        assert emb.shape == (3, 4) and np.allclose(emb.sum(axis=1), 1.0, atol=1e-5)
    # bit j of the packed code is projection j > 0 (numpy.packbits order)
    p = h.project_text(t[:5])
    assert np.array_equal(np.unpackbits(h.encode_text(t[:5]), axis=1).astype(bool), p > 0)


def test_rank_and_centre_codes(data: dict[str, np.ndarray]) -> None:
    x, t, y = data["x"], data["t"], data["y"]
    rank = hashing.create("supervised", bits=16, code="rank", **FAST["supervised"]).fit(x, t, y)
    assert rank.code_ == "rank"
    # the code's distance to each class's learned code falls with the class's rank in the scores
    scores = rank.embed_image(data["qx"])
    q = rank.encode_image(data["qx"])
    class_codes = {c: rank.train_codes_[np.nonzero(y == c)[0][0]] for c in range(4)}
    for i in range(len(q)):
        dist = [int(np.unpackbits(q[i] ^ class_codes[c]).sum()) for c in range(4)]
        order = np.argsort(-scores[i], kind="stable")
        assert all(dist[order[k]] <= dist[order[k + 1]] for k in range(3))
        assert dist[order[0]] < dist[order[1]] < dist[order[2]]  # 16 bits = 4 levels of 4 classes
    # confidence bits: learned codes keep one code per class, hash-function codes gain score thresholds
    conf = hashing.create("supervised", bits=32, confidence=0.5, **FAST["supervised"]).fit(x, t, y)
    assert conf.conf_classes_.shape == (16,) and conf.rank_classes_.shape == (16,)
    assert len({bytes(c) for c in conf.train_codes_}) == 4
    p = conf.project_text(data["qt"])
    scores = conf.embed_text(data["qt"])
    assert np.allclose(p[:, 16:], scores[:, conf.conf_classes_] - conf.conf_thresholds_, atol=1e-5)
    qi, dt = conf.encode_image(data["qx"]), conf.encode_text(data["t"])
    assert mean_average_precision(qi, dt, data["qy"], y) > 0.85
    with pytest.raises(ConfigurationError, match="confidence"):
        hashing.create("supervised", bits=16, confidence=1.5).fit(x, t, y)
    centres = hashing.create("supervised", bits=16, code="centres", **FAST["supervised"]).fit(x, t, y)
    assert centres.code_ == "centres" and centres.centres_.shape == (4, 16)
    qi, dt = centres.encode_image(data["qx"]), centres.encode_text(data["t"])
    assert mean_average_precision(qi, dt, data["qy"], y) > 0.85
    with pytest.raises(ConfigurationError, match="at least one bit per class"):
        hashing.create("supervised", bits=8, code="rank", **FAST["supervised"]).fit(
            x, t, np.arange(len(y)) % 12
        )
    with pytest.raises(ConfigurationError, match="code must be"):
        hashing.create("supervised", bits=16, code="nope").fit(x, t, y)
    with pytest.raises(ConfigurationError, match="gamma"):
        hashing.create("supervised", bits=16, gamma=-1.0).fit(x, t, y)


def test_multilabel_supervised() -> None:
    rng = np.random.default_rng(7)
    x, t, y = make_pairs(240, classes=4, seed=7)
    extra = rng.integers(0, 4, 240)
    multi = np.zeros((240, 4), dtype=np.int64)
    multi[np.arange(240), y] = 1
    both = rng.random(240) < 0.3
    multi[np.nonzero(both)[0], extra[both]] = 1
    h = hashing.create("supervised", bits=32, **FAST["supervised"]).fit(x, t, multi)
    qx, qt, qy = make_pairs(60, classes=4, seed=8)
    q_multi = np.eye(4, dtype=np.int64)[qy]
    i2t = mean_average_precision(h.encode_image(qx), h.encode_text(t), q_multi, multi)
    t2i = mean_average_precision(h.encode_text(qt), h.encode_image(x), q_multi, multi)
    assert i2t > 0.8 and t2i > 0.8
    assert h.train_codes_.shape == (240, 4)


def test_semi_supervised_with_unlabelled_rows(data: dict[str, np.ndarray]) -> None:
    y = data["y"].copy()
    y[::3] = -1  # a third of the rows carry no label
    h = hashing.create("supervised", bits=32, **FAST["supervised"]).fit(data["x"], data["t"], y)
    assert h.train_codes_.shape == (240, 4)
    # the unlabelled rows' learned codes still land near their (hidden) class
    rows = np.arange(0, 240, 3)
    unl = h.train_codes_[rows]
    lab = np.delete(h.train_codes_, rows, axis=0)
    assert mean_average_precision(unl, lab, data["y"][rows], np.delete(data["y"], rows)) > 0.8
    qi, dt = h.encode_image(data["qx"]), h.encode_text(data["t"])
    assert mean_average_precision(qi, dt, data["qy"], data["y"]) > 0.85
    # multi-hot labels: an all-zero row is unlabelled
    multi = np.eye(4, dtype=np.int64)[data["y"]]
    multi[::3] = 0
    h2 = hashing.create("supervised", bits=32, **FAST["supervised"]).fit(data["x"], data["t"], multi)
    assert h2.train_codes_.shape == (240, 4)


@pytest.mark.parametrize("method", [*TRAINED, "zero-shot"])
def test_save_load_round_trip_without_torch(
    method: str, fitted: dict[str, object], data: dict[str, np.ndarray], tmp_path: Path
) -> None:
    h = fitted[method]
    path = h.save(tmp_path / f"{method}.npz")  # type: ignore[attr-defined]
    qx = data["qx"][:, :12] if method == "zero-shot" else data["qx"]
    np.save(tmp_path / "qx.npy", qx)
    np.save(tmp_path / "qt.npy", data["qt"])
    expected_i = h.encode_image(qx)  # type: ignore[attr-defined]
    expected_t = h.encode_text(data["qt"])  # type: ignore[attr-defined]
    script = f"""
import sys, numpy as np
import securecmr.hashing as hashing
h = hashing.load({str(path)!r})
qi = h.encode_image(np.load({str(tmp_path / "qx.npy")!r}))
qt = h.encode_text(np.load({str(tmp_path / "qt.npy")!r}))
np.save({str(tmp_path / "qi.npy")!r}, qi)
np.save({str(tmp_path / "qt_codes.npy")!r}, qt)
assert "torch" not in sys.modules, "torch was imported"
print(type(h).__name__, h.get_params())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert np.array_equal(np.load(tmp_path / "qi.npy"), expected_i)
    assert np.array_equal(np.load(tmp_path / "qt_codes.npy"), expected_t)
    loaded = hashing.load(path)
    assert type(loaded) is type(h)
    assert loaded.get_params() == h.get_params()  # type: ignore[attr-defined]
    if hasattr(h, "train_codes_"):
        assert np.array_equal(loaded.train_codes_, h.train_codes_)  # type: ignore[attr-defined]


def _rewrite(path: Path, mutate: object) -> None:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: np.asarray(f[k]) for k in f.files}
    header = json.loads(arrays["header"].tobytes().decode())
    mutate(header, arrays)  # type: ignore[operator]
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)  # type: ignore[arg-type]


def test_load_refuses_newer_tampered_and_corrupt_files(fitted: dict[str, object], tmp_path: Path) -> None:
    h = fitted["supervised"]
    good = h.save(tmp_path / "h.npz")  # type: ignore[attr-defined]
    original = good.read_bytes()

    newer = tmp_path / "newer.npz"
    newer.write_bytes(original)
    _rewrite(newer, lambda hd, a: hd.update(version=hashing.FORMAT_VERSION + 1))
    with pytest.raises(SerializationError, match="newer"):
        hashing.load(newer)

    weights = tmp_path / "weights.npz"
    weights.write_bytes(original)

    def flip(hd: dict[str, object], a: dict[str, np.ndarray]) -> None:
        a["image_onnx"] = a["image_onnx"].copy()
        a["image_onnx"][-5] ^= 1

    _rewrite(weights, flip)
    with pytest.raises(SerializationError, match="checksum"):
        hashing.load(weights)

    params = tmp_path / "params.npz"
    params.write_bytes(original)
    _rewrite(params, lambda hd, a: hd["params"].update(bits=128))
    with pytest.raises(SerializationError, match="checksum"):
        hashing.load(params)

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(original[: len(original) // 2])
    with pytest.raises(SerializationError):
        hashing.load(truncated)

    other = tmp_path / "other.npz"
    np.savez(other, header=np.frombuffer(b'{"format": "something-else"}', dtype=np.uint8))
    with pytest.raises(SerializationError, match="not a securecmr hasher"):
        hashing.load(other)

    with zipfile.ZipFile(tmp_path / "nohdr.npz", "w") as z:
        z.writestr("x.npy", b"garbage")
    with pytest.raises(SerializationError):
        hashing.load(tmp_path / "nohdr.npz")

    with pytest.raises(FileNotFoundError):
        hashing.load(tmp_path / "missing.npz")
    # the good file is untouched and still loads
    assert good.read_bytes() == original
    assert hashing.load(good).bits == 32


def test_bad_input(data: dict[str, np.ndarray], fitted: dict[str, object]) -> None:
    x, t, y = data["x"], data["t"], data["y"]
    for bad_bits in (12, 0, -8, 7.5, "64", True):
        with pytest.raises(ConfigurationError, match="multiple of 8"):
            hashing.create("cca", bits=bad_bits)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown hashing method"):
        hashing.create("nope")
    with pytest.raises(ConfigurationError, match="bad parameters"):
        hashing.create("cca", bits=16, not_a_param=1)
    for method in TRAINED:
        h = hashing.create(method, bits=16, **FAST[method])
        with pytest.raises(NotFittedError):
            h.encode_image(x)
        with pytest.raises(NotFittedError):
            h.encode_text(t)
        with pytest.raises(NotFittedError):
            h.save("unused.npz")
        with pytest.raises(ShapeError, match="rows"):
            h.fit(x, t[:-1], y)
        xn = x.copy()
        xn[3, 2] = np.nan
        with pytest.raises(ShapeError, match="NaN or inf"):
            h.fit(xn, t, y)
        tn = t.copy()
        tn[0, 0] = np.inf
        with pytest.raises(ShapeError, match="NaN or inf"):
            h.fit(x, tn, y)
        with pytest.raises(ShapeError, match="2-D"):
            h.fit(x[:, 0], t, y)
    sup = hashing.create("supervised", bits=16, **FAST["supervised"])
    with pytest.raises(ShapeError, match="labels has"):
        sup.fit(x, t, y[:-1])
    with pytest.raises(ShapeError, match="labels has"):
        sup.fit(x, t, np.eye(4)[y][:-2])
    with pytest.raises(ShapeError, match="labels must be"):
        sup.fit(x, t, y.reshape(-1, 1, 1))
    with pytest.raises(ShapeError, match="only 0 and 1"):
        sup.fit(x, t, np.eye(4)[y] * 2)
    with pytest.raises(ShapeError, match="integer class ids"):
        sup.fit(x, t, y + 0.5)
    with pytest.raises(InputError, match="at least two classes"):
        sup.fit(x, t, np.zeros_like(y))
    with pytest.raises(InputError, match="at least two classes"):
        sup.fit(x, t, np.full_like(y, -1))
    with pytest.raises(InputError, match="needs labels"):
        sup.fit(x, t)
    with pytest.raises(NotFittedError):
        sup.encode_image(x)
    # a fitted hasher refuses features of another width or with NaN at encode time
    h = fitted["supervised"]
    with pytest.raises(ShapeError, match="columns"):
        h.encode_image(x[:, :5])  # type: ignore[attr-defined]
    with pytest.raises(ShapeError, match="NaN or inf"):
        h.encode_text(np.full((2, t.shape[1]), np.nan))  # type: ignore[attr-defined]
    # a failed fit leaves a fitted hasher as it was
    before = h.encode_image(x[:5])  # type: ignore[attr-defined]
    with pytest.raises(ShapeError):
        h.fit(x, t[:-1], y)  # type: ignore[attr-defined]
    assert np.array_equal(h.encode_image(x[:5]), before)  # type: ignore[attr-defined]


def test_params_follow_sklearn_conventions() -> None:
    h = hashing.create("supervised", bits=32, anchors=50)
    assert h.get_params()["anchors"] == 50 and h.get_params()["bits"] == 32
    assert not any(k.endswith("_") for k in vars(h))
    h.set_params(anchors=60)
    assert h.anchors == 60
    with pytest.raises(ValueError):
        h.set_params(nope=1)
    assert "SupervisedHasher(bits=32" in repr(h)
    assert sorted(hashing.METHODS) == ["cca", "cca-itq", "supervised", "unsupervised", "zero-shot"]

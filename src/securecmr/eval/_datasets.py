"""Dataset loaders for evaluation: Wikipedia, MIRFlickr / NUS-WIDE style ``.mat``, MedPix 2.0 and a
generic JSONL manifest. Each returns :class:`CrossModalData` (train / query / database splits of
aligned image features, text features and labels)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ManifestError

__all__ = ["CrossModalData", "Split", "load_manifest", "load_mat", "load_medpix", "load_wikipedia"]


@dataclass
class Split:
    """Aligned rows: ``image`` (n, di), ``text`` (n, dt), ``labels`` (n,) ids or (n, L) multi-hot."""

    image: np.ndarray
    text: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.image.shape[0])

    @staticmethod
    def concat(*splits: Split) -> Split:
        return Split(
            np.vstack([s.image for s in splits]),
            np.vstack([s.text for s in splits]),
            np.concatenate([s.labels for s in splits]),
        )


@dataclass
class CrossModalData:
    """``train`` fits the hasher, ``query`` is searched against ``database`` (``None`` = the training
    set, as in the Wikipedia protocol); ``dev`` is an optional tuning split."""

    name: str
    train: Split
    query: Split
    database: Split | None = None
    dev: Split | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> Split:
        return self.train if self.database is None else self.database


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found at {path}; pass --data pointing at the dataset folder")
    return path


def load_wikipedia(path: str | Path) -> CrossModalData:
    """Wikipedia (Rasiwasia et al., ACM MM 2010): 128-d SIFT BoW images, 10-d LDA texts, 10 classes.
    The 693 test pairs query the 2,173 training pairs (which also train the hasher)."""
    import scipy.io

    root = Path(path)
    mat = scipy.io.loadmat(str(_need(root / "raw_features.mat", "raw_features.mat")))

    def classes(name: str) -> np.ndarray:
        lines = _need(root / name, name).read_text().split("\n")
        return np.array([int(line.split()[-1]) for line in lines if line.strip()], dtype=np.int64)

    train = Split(
        mat["I_tr"].astype(np.float64), mat["T_tr"].astype(np.float64), classes("trainset_txt_img_cat.list")
    )
    query = Split(
        mat["I_te"].astype(np.float64), mat["T_te"].astype(np.float64), classes("testset_txt_img_cat.list")
    )
    if len(train.labels) != len(train) or len(query.labels) != len(query):
        raise InputError("the Wikipedia lists and raw_features.mat disagree on the number of rows")
    return CrossModalData("wikipedia", train, query)


def _read_mat(path: Path) -> dict[str, Any]:
    import scipy.io

    try:
        return dict(scipy.io.loadmat(str(path)))
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5)
        raise InputError(f"{path.name} is a MATLAB v7.3 (HDF5) file; re-save it with -v7 to load it") from exc


def load_mat(
    path: str | Path,
    *,
    image_key: str = "IAll",
    text_keys: tuple[str, ...] = ("TAll", "YAll"),
    label_key: str = "LAll",
    n_query: int = 2000,
    n_train: int = 10000,
    seed: int = 0,
    image_features: np.ndarray | None = None,
) -> CrossModalData:
    """MIRFlickr / NUS-WIDE style ``.mat`` data: a file or a folder of ``.mat`` files holding
    ``IAll`` (images), ``TAll`` or ``YAll`` (text / tags) and ``LAll`` (multi-hot labels). Random
    (seeded) ``n_query`` queries; the rest is the database, of which ``n_train`` train the hasher.
    Data without image features (e.g. mirflickr25k here) needs ``image_features``."""
    root = Path(path)
    files = sorted(root.glob("*.mat")) if root.is_dir() else [_need(root, "the .mat file")]
    if not files:
        raise FileNotFoundError(f"no .mat files in {root}")
    arrays: dict[str, Any] = {}
    for f in files:
        arrays.update({k: v for k, v in _read_mat(f).items() if not k.startswith("__")})
    text_key = next((k for k in text_keys if k in arrays), None)
    if label_key not in arrays or text_key is None:
        raise InputError(f"{root.name} needs {label_key!r} and one of {text_keys} arrays")
    images = image_features if image_features is not None else arrays.get(image_key)
    if images is None:
        raise InputError(
            f"{root.name} has no image features ({image_key!r}); "
            "pass image_features computed with an image encoder"
        )
    x = np.asarray(images, dtype=np.float64)
    t = np.asarray(arrays[text_key], dtype=np.float64)
    y = np.asarray(arrays[label_key]).astype(np.int64)
    if y.shape[0] != x.shape[0] and y.shape[1] == x.shape[0]:
        y = y.T
    if t.shape[0] != x.shape[0] and t.shape[1] == x.shape[0]:
        t = t.T
    if not (x.shape[0] == t.shape[0] == y.shape[0]):
        raise InputError("image, text and label arrays have different numbers of rows")
    order = np.random.default_rng(seed).permutation(x.shape[0])
    q, db = order[:n_query], order[n_query:]
    tr = db[:n_train]
    pick = lambda idx: Split(x[idx], t[idx], y[idx])  # noqa: E731
    return CrossModalData(root.stem, pick(tr), pick(q), pick(db))


def _cache_key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ManifestError(f"{path.name}: not valid JSON", line=i) from exc
        if not isinstance(row, dict):
            raise ManifestError(f"{path.name}: each line must be a JSON object", line=i)
        rows.append(row)
    return rows


def _encode(
    image_paths: list[Path],
    texts: list[str],
    cache: Path | None,
    key: str,
    image_encoder: Any,
    text_encoder: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Image features (``output="features"``) and text embeddings, cached as ``.npz``."""
    file = None if cache is None else cache / f"features-{key}.npz"
    if file is not None and file.exists():
        with np.load(file, allow_pickle=False) as data:
            if data["image"].shape[0] == len(image_paths) == data["text"].shape[0]:
                return np.asarray(data["image"]), np.asarray(data["text"])
    if image_encoder is None:
        from ..encoders import load_image_encoder

        image_encoder = load_image_encoder()
    if text_encoder is None:
        from ..encoders import load_text_encoder

        text_encoder = load_text_encoder()
    img = np.asarray(image_encoder.encode([str(p) for p in image_paths], output="features"), dtype=np.float32)
    txt = np.asarray(text_encoder.encode(texts), dtype=np.float32)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(file, image=img, text=txt)
    return img.astype(np.float64), txt.astype(np.float64)


MEDPIX_LOCATIONS = ("Abdomen", "Head", "Reproductive and Urinary System", "Spine and Muscles", "Thorax")


def load_medpix(
    path: str | Path,
    *,
    label_set: str = "location",
    cache_dir: str | Path | None = None,
    image_encoder: Any = None,
    text_encoder: Any = None,
) -> CrossModalData:
    """MedPix 2.0: image features from the shipped image encoder (``output="features"``, the 1280-d
    EfficientNet-Lite0 penultimate layer), caption embeddings from the MiniLM text encoder. Labels:
    ``label_set="location"`` (``Location Category``, 5 body regions) or ``"modality"`` (CT / MR).
    Train on ``train``, ``dev`` for tuning, ``test`` queries the database ``train + dev``.
    Features are cached as ``.npz`` in ``cache_dir`` (default ``$SECURECMR_HOME/cache/medpix``)."""
    root = Path(path)
    if label_set not in ("location", "modality"):
        raise InputError("label_set must be 'location' or 'modality'")
    if cache_dir is None:
        from .._home import home_dir

        cache_dir = Path(home_dir()) / "cache" / "medpix"
    splits: dict[str, Split] = {}
    vocab: dict[str, int] = {}
    all_rows: dict[str, list[dict[str, Any]]] = {}
    for name in ("train", "dev", "test"):
        all_rows[name] = _read_jsonl(
            _need(root / "splits" / f"descriptions_{name}.jsonl", f"descriptions_{name}.jsonl")
        )
    for name in ("train", "dev", "test"):
        rows = all_rows[name]
        paths = [_need(root / "images" / f"{r['image']}.jpg", f"image {r['image']}.jpg") for r in rows]
        texts = [str((r.get("Description") or {}).get("Caption") or "").strip() or "no caption" for r in rows]
        enc_name = getattr(image_encoder, "name", "default") if image_encoder is not None else "default"
        key = _cache_key(name, enc_name, *[r["image"] for r in rows])
        img, txt = _encode(paths, texts, Path(cache_dir), key, image_encoder, text_encoder)
        field_name = "Location Category" if label_set == "location" else "Type"
        ids = []
        for r in rows:
            value = str(r.get(field_name))
            ids.append(vocab.setdefault(value, len(vocab)))
        splits[name] = Split(img, txt, np.array(ids, dtype=np.int64))
    return CrossModalData(
        "medpix",
        splits["train"],
        splits["test"],
        Split.concat(splits["train"], splits["dev"]),
        dev=splits["dev"],
        info={"label_set": label_set, "classes": sorted(vocab, key=vocab.__getitem__)},
    )


def load_manifest(
    path: str | Path,
    *,
    query_fraction: float = 0.2,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    image_encoder: Any = None,
    text_encoder: Any = None,
) -> CrossModalData:
    """A generic dataset: either a JSONL manifest, one ``{"id", "image", "text", "labels"}`` object a
    line (``image`` relative to the manifest's folder, ``labels`` a list of names or ids, optional
    ``"split"``: ``train`` / ``dev`` / ``test``), or a ``.npz`` of precomputed features with arrays
    ``image``, ``text``, ``labels`` (and optional ``split`` strings). Without splits a seeded
    ``query_fraction`` of rows query the rest (which trains the hasher)."""
    p = Path(path)
    _need(p, "the manifest")
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as data:
            for k in ("image", "text", "labels"):
                if k not in data.files:
                    raise InputError(f"{p.name} needs arrays 'image', 'text' and 'labels' (missing {k!r})")
            x = np.asarray(data["image"], dtype=np.float64)
            t = np.asarray(data["text"], dtype=np.float64)
            y = np.asarray(data["labels"])
            split = np.asarray(data["split"]).astype(str) if "split" in data.files else None
    else:
        rows = _read_jsonl(p)
        if not rows:
            raise InputError(f"{p.name} has no entries")
        vocab: dict[str, int] = {}
        label_lists: list[list[int]] = []
        paths, texts = [], []
        for i, r in enumerate(rows, start=1):
            if not r.get("image") or not isinstance(r.get("text"), str) or not r["text"].strip():
                raise ManifestError("each entry needs a non-empty 'image' and 'text'", line=i)
            labels = r.get("labels", [])
            labels = labels if isinstance(labels, list) else [labels]
            label_lists.append([vocab.setdefault(str(v), len(vocab)) for v in labels])
            img_path = (p.parent / str(r["image"])).resolve()
            if not img_path.exists():
                raise ManifestError(f"image file {r['image']!r} not found", line=i)
            paths.append(img_path)
            texts.append(r["text"])
        y = np.zeros((len(rows), max(len(vocab), 1)), dtype=np.int64)
        for i, ids in enumerate(label_lists):
            y[i, ids] = 1
        key = _cache_key(str(p.resolve()), *[str(q) for q in paths], *texts)
        cache = Path(cache_dir) if cache_dir is not None else p.parent / ".securecmr-cache"
        x, t = _encode(paths, texts, cache, key, image_encoder, text_encoder)
        split = np.array([str(r.get("split", "")) for r in rows]) if any("split" in r for r in rows) else None
    if not (x.shape[0] == t.shape[0] == y.shape[0]):
        raise InputError("image, text and labels have different numbers of rows")
    pick = lambda idx: Split(x[idx], t[idx], y[idx])  # noqa: E731
    if split is not None:
        tr, dev, te = (np.nonzero(split == s)[0] for s in ("train", "dev", "test"))
        if len(tr) == 0 or len(te) == 0:
            raise InputError("a manifest with splits needs 'train' and 'test' rows")
        db = np.concatenate([tr, dev])
        return CrossModalData(p.stem, pick(tr), pick(te), pick(db), dev=pick(dev) if len(dev) else None)
    order = np.random.default_rng(seed).permutation(x.shape[0])
    n_q = max(1, round(query_fraction * x.shape[0]))
    return CrossModalData(p.stem, pick(order[n_q:]), pick(order[:n_q]))

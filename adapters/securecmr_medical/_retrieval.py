"""Cross-modal retrieval of de-identified medical records on a protected securecmr collection.

:class:`MedicalRetriever` encodes records with securecmr's encoders (image: the 1280-d
EfficientNet-Lite0 features; text: the 384-d MiniLM embedding), trains a hasher from
:mod:`securecmr.hashing` on them (default ``supervised``, with one class per body region x
modality pair), and stores only packed codes, labels and non-identifying attributes in a
collection (``protection="salted+encrypted"`` by default). Queries are de-identified before they
are encoded. Directions: report -> image, image -> report, report -> reports, image -> images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from securecmr.errors import ConfigurationError, EmptyInputError, InputError, NotFittedError

from ._records import MedicalRecord
from ._text import TextDeidentifier

__all__ = ["MedicalFeatures", "MedicalRetriever", "class_labels"]

TARGETS = ("image", "text")


def class_labels(
    records: Sequence[MedicalRecord], classes: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """One class id per record: its ``region:`` and ``modality:`` labels joined (``-1`` when it has
    none, or when ``classes`` is given and the class is not in it)."""
    names = []
    for r in records:
        parts = sorted(lab for lab in r.labels if lab.startswith(("region:", "modality:")))
        names.append("|".join(parts))
    known = sorted({n for n in names if n}) if classes is None else list(classes)
    index = {c: i for i, c in enumerate(known)}
    return np.array([index.get(n, -1) for n in names], dtype=np.int64), known


@dataclass(frozen=True)
class MedicalFeatures:
    """Encoder outputs for a list of records (rows align with the records)."""

    image: np.ndarray  # (n, feature_dim) float32; zero rows where a record has no image
    text: np.ndarray  # (n, text_dim) float32; zero rows where a record has no text
    has_image: np.ndarray  # (n,) bool
    has_text: np.ndarray  # (n,) bool

    def subset(self, idx: np.ndarray | Sequence[int]) -> MedicalFeatures:
        i = np.asarray(idx)
        return MedicalFeatures(self.image[i], self.text[i], self.has_image[i], self.has_text[i])


class MedicalRetriever:
    """Report/image retrieval over de-identified records (scikit-learn style: params in ``__init__``).

    Parameters
    ----------
    bits: code length. method: a :func:`securecmr.hashing.create` method. hasher_params: extra
    parameters for it. model_dir / int8: where and which encoders to load (``None`` = the default
    ``$SECURECMR_HOME/models``). batch_size: encoder batch size. num_threads: encoder threads.

    Fitted attributes: ``hasher_``, ``classes_``.
    """

    def __init__(
        self,
        *,
        bits: int = 64,
        method: str = "supervised",
        hasher_params: dict[str, Any] | None = None,
        model_dir: str | Path | None = None,
        int8: bool = False,
        batch_size: int = 32,
        num_threads: int | None = 1,
    ) -> None:
        self.bits = bits
        self.method = method
        self.hasher_params = hasher_params
        self.model_dir = model_dir
        self.int8 = int8
        self.batch_size = batch_size
        self.num_threads = num_threads

    def __repr__(self) -> str:
        return f"MedicalRetriever(bits={self.bits}, method={self.method!r}, int8={self.int8})"

    # -- encoders --------------------------------------------------------------------------
    def _encoders(self) -> tuple[Any, Any]:
        cache = self.__dict__.get("_enc")
        if cache is None:
            import securecmr

            cache = (
                securecmr.load_image_encoder(self.model_dir, int8=self.int8, num_threads=self.num_threads),
                securecmr.load_text_encoder(self.model_dir, int8=self.int8, num_threads=self.num_threads),
            )
            self.__dict__["_enc"] = cache
        return cache

    def encode(
        self, records: Sequence[MedicalRecord], *, show_progress: bool | None = None
    ) -> MedicalFeatures:
        """Encode the records' images (features) and de-identified texts."""
        if not records:
            raise EmptyInputError("no records to encode")
        image_enc, text_enc = self._encoders()
        n = len(records)
        has_image = np.array([r.image is not None for r in records])
        has_text = np.array([bool(r.text and r.text.strip()) for r in records])
        img = np.zeros((n, int(image_enc.feature_dim)), dtype=np.float32)
        txt = np.zeros((n, int(text_enc.dim)), dtype=np.float32)
        if has_image.any():
            img[has_image] = image_enc.encode(
                [r.image for r in records if r.image is not None],
                output="features",
                batch_size=self.batch_size,
                show_progress=show_progress,
            )
        if has_text.any():
            txt[has_text] = text_enc.encode(
                [r.text for r in records if r.text and r.text.strip()],
                batch_size=self.batch_size,
                show_progress=show_progress,
            )
        return MedicalFeatures(img, txt, has_image, has_text)

    # -- training --------------------------------------------------------------------------
    def fit(
        self, records: Sequence[MedicalRecord], features: MedicalFeatures | None = None
    ) -> MedicalRetriever:
        """Train the hasher on records that have an image, text and region/modality labels."""
        import securecmr.hashing

        if self.method == "zero-shot":
            raise ConfigurationError(
                "method='zero-shot' hashes the shared 384-d space, not encoder features; use 'supervised', "
                "'cca', 'cca-itq' or 'unsupervised'"
            )
        feats = features if features is not None else self.encode(records)
        if len(feats.image) != len(records):
            raise InputError(f"features have {len(feats.image)} rows but there are {len(records)} records")
        y, classes = class_labels(records)
        use = feats.has_image & feats.has_text & (y >= 0)
        if use.sum() < 2 or len(classes) < 2:
            raise InputError(
                "fit needs at least two records with image, text and region/modality labels in two classes"
            )
        hasher = securecmr.hashing.create(self.method, bits=self.bits, **(self.hasher_params or {}))
        if self.method in ("supervised",):
            hasher.fit(feats.image[use], feats.text[use], y[use])
        else:
            hasher.fit(feats.image[use], feats.text[use])
        self.hasher_ = hasher
        self.classes_ = classes
        return self

    def _check_fitted(self) -> Any:
        hasher = self.__dict__.get("hasher_")
        if hasher is None:
            raise NotFittedError("MedicalRetriever is not fitted; call fit(records) first")
        return hasher

    def codes(self, features: MedicalFeatures) -> dict[str, np.ndarray]:
        """Packed codes per modality (rows without that modality are still computed; use the
        ``has_*`` masks)."""
        hasher = self._check_fitted()
        return {"image": hasher.encode_image(features.image), "text": hasher.encode_text(features.text)}

    # -- the protected collection ----------------------------------------------------------
    def create_collection(
        self, store: Any, name: str, *, protection: str = "salted+encrypted", ttl_hours: float | None = None
    ) -> Any:
        """Create a collection with this retriever's hasher attached."""
        hasher = self._check_fitted()
        return store.create_collection(
            name, bits=self.bits, protection=protection, hasher=hasher, ttl_hours=ttl_hours
        )

    def add(
        self,
        collection: Any,
        records: Sequence[MedicalRecord],
        features: MedicalFeatures | None = None,
        *,
        store_text: bool = False,
    ) -> int:
        """Add records as items holding codes, labels, non-identifying attrs and the image path as
        ``ref``; never the pixels, and the (de-identified) text only with ``store_text=True`` (as
        ``attrs["text"]``, for display of hits). Returns the number added."""
        import securecmr

        feats = features if features is not None else self.encode(records)
        codes = self.codes(feats)
        items = []
        for i, r in enumerate(records):
            per: dict[str, np.ndarray] = {}
            if feats.has_image[i]:
                per["image"] = codes["image"][i]
            if feats.has_text[i]:
                per["text"] = codes["text"][i]
            if not per:
                continue
            ref = r.image if isinstance(r.image, str) else None
            attrs = dict(r.attrs)
            if store_text and r.text:
                attrs["text"] = r.text
            item = securecmr.Item(r.id, labels=tuple(r.labels), attrs=attrs, ref=ref, codes=per)
            items.append(item)
        if items:
            collection.add(items)
        return len(items)

    def query_code(
        self, *, text: str | None = None, image: Any = None, deidentifier: TextDeidentifier | None = None
    ) -> np.ndarray:
        """The packed code of one query (text is de-identified first), shape ``(bits // 8,)``."""
        hasher = self._check_fitted()
        if (text is None) == (image is None):
            raise ConfigurationError("pass exactly one of text= or image=")
        image_enc, text_enc = self._encoders()
        if text is not None:
            clean = (deidentifier or TextDeidentifier()).deidentify(text, item="query").text
            return np.asarray(hasher.encode_text(text_enc.encode([clean])))[0]
        return np.asarray(hasher.encode_image(image_enc.encode([image], output="features")))[0]

    def search(
        self,
        collection: Any,
        *,
        text: str | None = None,
        image: Any = None,
        target: str = "image",
        k: int = 10,
        deidentifier: TextDeidentifier | None = None,
    ) -> list[Any]:
        """Search ``collection`` with report text or an image for items of modality ``target``
        (``"image"`` or ``"text"``). Query text is de-identified before it is encoded."""
        if target not in TARGETS:
            raise ConfigurationError(f"target must be one of {TARGETS}, not {target!r}")
        code = self.query_code(text=text, image=image, deidentifier=deidentifier)
        return list(collection.search(code=code, k=k, modality=target))

"""The JSON wire format shared by ``securecmr serve`` and :class:`securecmr.client.Client`.

Packed codes travel as base64 strings (a list of byte values is accepted too), float vectors as
lists of numbers, hits as objects with the :class:`~securecmr.Hit` fields. No third-party imports:
the client needs only the standard library and numpy.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np

from .errors import InputError, ShapeError
from .store import Hit, Item

__all__ = [
    "code_from_wire",
    "code_to_wire",
    "hit_from_wire",
    "hit_to_wire",
    "item_from_wire",
    "item_to_wire",
    "vector_from_wire",
]

_ITEM_KEYS = {"id", "text", "labels", "attrs", "ref", "vectors", "codes"}


def code_to_wire(code: Any) -> str:
    arr = np.asarray(code)
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise ShapeError("a packed code is a 1-d uint8 array")
    return base64.b64encode(arr.tobytes()).decode("ascii")


def code_from_wire(value: Any, what: str = "code") -> np.ndarray:
    """A packed uint8 code from base64 text or a list of byte values."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise InputError(f"{what} must be base64 text or a list of byte values") from None
        if not raw:
            raise ShapeError(f"{what} is empty")
        return np.frombuffer(raw, dtype=np.uint8).copy()
    if isinstance(value, list) and value and all(type(v) is int and 0 <= v <= 255 for v in value):
        return np.asarray(value, dtype=np.uint8)
    raise InputError(f"{what} must be base64 text or a non-empty list of byte values (0-255)")


def vector_from_wire(value: Any, what: str = "vector") -> np.ndarray:
    if not isinstance(value, list) or not value:
        raise InputError(f"{what} must be a non-empty list of numbers")
    if not all(type(v) in (int, float) and math.isfinite(v) for v in value):
        raise ShapeError(f"{what} must hold finite numbers only")
    return np.asarray(value, dtype=np.float32)


def item_to_wire(item: Item) -> dict[str, Any]:
    """An :class:`Item` with text, vectors or codes as JSON (images and video go as multipart)."""
    if item.image is not None or item.video is not None:
        raise InputError("items with image= or video= are sent one by one as multipart uploads")
    out: dict[str, Any] = {"id": item.id}
    if item.text is not None:
        out["text"] = item.text
    if item.labels:
        out["labels"] = list(item.labels)
    if item.attrs:
        out["attrs"] = dict(item.attrs)
    if item.ref is not None:
        out["ref"] = item.ref
    if item.vectors:
        out["vectors"] = {
            m: np.asarray(v, dtype=np.float32).ravel().tolist() for m, v in item.vectors.items()
        }
    if item.codes:
        out["codes"] = {m: code_to_wire(np.asarray(c, dtype=np.uint8).ravel()) for m, c in item.codes.items()}
    return out


def item_from_wire(obj: Any, index: int = 0) -> Item:
    """An :class:`Item` from its JSON form; errors name the item's position in the batch."""
    where = f"item {index}"
    if not isinstance(obj, dict):
        raise InputError(f"{where} must be a JSON object")
    unknown = set(obj) - _ITEM_KEYS
    if unknown:
        raise InputError(f"{where} has unknown fields {sorted(unknown)}; allowed: {sorted(_ITEM_KEYS)}")
    item_id = obj.get("id")
    if not isinstance(item_id, str | int) or isinstance(item_id, bool):
        raise InputError(f"{where}: id must be a string or an integer")
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        raise InputError(f"{where}: text must be a string")
    labels = obj.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise InputError(f"{where}: labels must be a list of strings")
    attrs = obj.get("attrs", {})
    if not isinstance(attrs, dict):
        raise InputError(f"{where}: attrs must be an object")
    ref = obj.get("ref")
    if ref is not None and not isinstance(ref, str):
        raise InputError(f"{where}: ref must be a string")
    vectors = obj.get("vectors")
    codes = obj.get("codes")
    for name, val in (("vectors", vectors), ("codes", codes)):
        if val is not None and (not isinstance(val, dict) or not all(isinstance(m, str) for m in val)):
            raise InputError(f"{where}: {name} must be an object keyed by modality")
    return Item(
        item_id,
        text=text,
        labels=tuple(labels),
        attrs=attrs,
        ref=ref,
        vectors=None
        if vectors is None
        else {m: vector_from_wire(v, f"{where} vectors.{m}") for m, v in vectors.items()},
        codes=None
        if codes is None
        else {m: code_from_wire(v, f"{where} codes.{m}") for m, v in codes.items()},
    )


def hit_to_wire(hit: Hit) -> dict[str, Any]:
    return {
        "id": hit.id,
        "score": float(hit.score),
        "distance": None if hit.distance is None else int(hit.distance),
        "modality": hit.modality,
        "labels": list(hit.labels),
        "attrs": dict(hit.attrs),
        "ref": hit.ref,
    }


def hit_from_wire(obj: dict[str, Any]) -> Hit:
    return Hit(
        id=obj["id"],
        score=float(obj["score"]),
        distance=None if obj.get("distance") is None else int(obj["distance"]),
        modality=str(obj.get("modality", "")),
        labels=tuple(obj.get("labels", ())),
        attrs=dict(obj.get("attrs") or {}),
        ref=obj.get("ref"),
    )

"""Validation and canonicalisation of everything a caller hands the SDK, before anything is stored.

One rule per kind of input, used on every path (operator calls, sessions, the CLI, the HTTP
service), so a value refused on one path is refused on all of them:

* an item id is a ``str`` that encodes to UTF-8 (no lone surrogates), 1-512 bytes, without
  control characters; or an ``int`` (numpy integers too, not ``bool``) in the signed 64-bit range;
* ``attrs`` are a JSON object: string keys, values ``None``/``bool``/64-bit ``int``/finite
  ``float``/``str`` or lists and objects of those (nested at most 4 deep), at most 64 KiB encoded;
* ``labels`` are up to 256 strings, ``ref`` a string, both bounded and control-free;
* ``k`` is an ``int`` (not ``bool``) from 1 to :data:`MAX_K`;
* ``ttl_hours`` is a finite number > 0 and at most :data:`MAX_TTL_HOURS` (100 years);
* a policy is a string of at most 4096 characters that parses.

Errors name the first bad item by its position in the batch, never by its (possibly sensitive) id.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ._types import Item
from .errors import ConfigurationError, EmptyInputError, InputError

__all__ = [
    "MAX_ATTRS_BYTES",
    "MAX_ID_BYTES",
    "MAX_K",
    "MAX_TTL_HOURS",
    "canonical_attrs",
    "canonical_id",
    "canonical_ids",
    "canonical_items",
    "canonical_label",
    "check_k",
    "check_policy_source",
    "check_ttl_hours",
]

MAX_ID_BYTES = 512
MAX_K = 100_000
MAX_TTL_HOURS = 100 * 366 * 24.0
MAX_ATTRS_BYTES = 64 * 1024
MAX_LABELS = 256
MAX_LABEL_BYTES = 256
MAX_REF_BYTES = 4096
MAX_KEY_BYTES = 256
MAX_DEPTH = 4
MAX_POLICY_CHARS = 4096
MAX_TEXT_BYTES = 1 << 20
_I64 = (-(1 << 63), (1 << 63) - 1)
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _has_control(s: str) -> bool:
    return any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in s)


def _utf8(s: str, what: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} is not valid Unicode text (it holds a lone surrogate)") from None


def _text(s: Any, what: str, limit: int) -> str:
    if not isinstance(s, str):
        raise InputError(f"{what} must be a string, not {type(s).__name__}")
    s = str(s)
    if len(_utf8(s, what)) > limit:
        raise InputError(f"{what} is longer than {limit} bytes")
    if _has_control(s):
        raise InputError(f"{what} contains a control character")
    return s


def canonical_id(item_id: Any, where: str = "the item id") -> str | int:
    """The canonical form of one item id (``str`` or ``int``); InputError otherwise."""
    if isinstance(item_id, bool | np.bool_):
        raise InputError(f"{where} must be a string or an integer, not a boolean")
    if isinstance(item_id, str):
        if not item_id:
            raise InputError(f"{where} is empty")
        return _text(item_id, where, MAX_ID_BYTES)
    if isinstance(item_id, numbers.Integral):
        value = int(item_id)
        if not _I64[0] <= value <= _I64[1]:
            raise InputError(f"{where} is outside the signed 64-bit integer range")
        return value
    raise InputError(f"{where} must be a string or an integer, not {type(item_id).__name__}")


def canonical_ids(ids: Iterable[Any] | str | int) -> list[str | int]:
    """A non-empty list of canonical ids (one id may be given bare); repeats are refused."""
    if isinstance(ids, str | int | np.integer) and not isinstance(ids, bool):
        ids = [ids]
    elif isinstance(ids, Mapping | bytes | bytearray) or not isinstance(ids, Iterable):
        raise InputError("ids must be an id or a list of ids")
    out = [canonical_id(v, f"id {i}") for i, v in enumerate(ids)]
    if not out:
        raise EmptyInputError("empty list of ids")
    if len(set(map(_id_key, out))) != len(out):
        raise InputError("the list of ids repeats an id")
    return out


def _id_key(item_id: str | int) -> tuple[bool, str | int]:
    return (isinstance(item_id, str), item_id)


def _json_value(v: Any, what: str, depth: int) -> Any:
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, str):
        _utf8(v, what)
        return str(v)
    if isinstance(v, numbers.Integral):
        value = int(v)
        if not _I64[0] <= value <= _I64[1]:
            raise InputError(f"{what} is an integer outside the signed 64-bit range")
        return value
    if isinstance(v, numbers.Real):
        f = float(v)
        if not math.isfinite(f):
            raise InputError(f"{what} is not a finite number (NaN and infinity are refused)")
        return f
    if depth >= MAX_DEPTH:
        raise InputError(f"{what} nests deeper than {MAX_DEPTH} levels")
    if isinstance(v, Mapping):
        return _json_object(v, what, depth + 1)
    if isinstance(v, list | tuple):
        return [_json_value(x, f"{what}[{i}]", depth + 1) for i, x in enumerate(v)]
    raise InputError(f"{what} is a {type(v).__name__}; attrs hold JSON values only")


def _json_object(d: Mapping[Any, Any], what: str, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if not isinstance(key, str):
            raise InputError(f"{what} has a key that is not a string")
        key = _text(key, f"a key of {what}", MAX_KEY_BYTES)
        out[key] = _json_value(value, f"{what}.{key}" if depth == 0 else f"{what}[...]", depth)
    return out


def canonical_attrs(attrs: Any, where: str = "attrs") -> dict[str, Any]:
    """``attrs`` as a plain JSON object of canonical values; InputError otherwise."""
    if attrs is None:
        return {}
    if not isinstance(attrs, Mapping):
        raise InputError(f"{where} must be a mapping of attribute names to JSON values")
    out = _json_object(attrs, where, 0)
    if len(_JSON.encode(out).encode("utf-8")) > MAX_ATTRS_BYTES:
        raise InputError(f"{where} are larger than {MAX_ATTRS_BYTES // 1024} KiB encoded")
    return out


def canonical_labels(labels: Any, where: str = "labels") -> tuple[str, ...]:
    if labels is None:
        return ()
    if isinstance(labels, str | bytes) or not isinstance(labels, Iterable):
        raise InputError(f"{where} must be a list of strings")
    out = tuple(_text(x, f"{where}[{i}]", MAX_LABEL_BYTES) for i, x in enumerate(labels))
    if len(out) > MAX_LABELS:
        raise InputError(f"{where} has more than {MAX_LABELS} labels")
    return out


def canonical_label(value: Any, where: str = "the label") -> str:
    """A short control-free string (a label, the ``by`` of an erasure)."""
    return _text(value, where, MAX_LABEL_BYTES)


def canonical_items(items: Iterable[Item] | Item) -> list[Item]:
    """Canonical copies of ``items`` (a batch, or one Item), checked as a whole before anything is
    stored: InputError names the first bad item by position; repeats of an id are refused."""
    if isinstance(items, Item):
        items = [items]
    elif isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise ConfigurationError("add() takes securecmr.Item objects (one, or a list of them)")
    out: list[Item] = []
    seen: set[tuple[bool, str | int]] = set()
    for i, it in enumerate(items):
        if not isinstance(it, Item):
            raise ConfigurationError(f"item {i}: add() takes securecmr.Item objects, not {type(it).__name__}")
        where = f"item {i}"
        item_id = canonical_id(it.id, f"{where}: the id")
        key = _id_key(item_id)
        if key in seen:
            raise InputError(f"{where}: the batch repeats an id; nothing was added")
        seen.add(key)
        text = it.text
        if text is not None:
            if not isinstance(text, str):
                raise InputError(f"{where}: text must be a string")
            if len(_utf8(text, f"{where}: text")) > MAX_TEXT_BYTES:
                raise InputError(f"{where}: text is longer than {MAX_TEXT_BYTES} bytes")
        ref = None if it.ref is None else _text(it.ref, f"{where}: ref", MAX_REF_BYTES)
        out.append(
            Item(
                id=item_id,
                text=text,
                image=it.image,
                video=it.video,
                labels=canonical_labels(it.labels, f"{where}: labels"),
                attrs=canonical_attrs(it.attrs, f"{where}: attrs"),
                ref=ref,
                vectors=it.vectors,
                codes=it.codes,
            )
        )
    if not out:
        raise EmptyInputError("empty batch: give at least one item")
    return out


def check_k(k: Any, name: str = "k") -> int:
    """``k`` as an int in [1, MAX_K]; ConfigurationError otherwise (the same rule on every path)."""
    if isinstance(k, bool | np.bool_) or not isinstance(k, numbers.Integral):
        raise ConfigurationError(f"{name} must be an integer >= 1, not {type(k).__name__}")
    value = int(k)
    if not 1 <= value <= MAX_K:
        raise ConfigurationError(f"{name} must be an integer from 1 to {MAX_K}")
    return value


def check_ttl_hours(ttl_hours: Any, *, allow_none: bool = False) -> float | None:
    """A finite ``ttl_hours`` > 0 and at most 100 years (or None when ``allow_none``)."""
    if ttl_hours is None and allow_none:
        return None
    if isinstance(ttl_hours, bool) or not isinstance(ttl_hours, numbers.Real):
        raise ConfigurationError("ttl_hours must be a number of hours")
    value = float(ttl_hours)
    if not math.isfinite(value) or value <= 0 or value > MAX_TTL_HOURS:
        raise ConfigurationError(f"ttl_hours must be finite, > 0 and at most {MAX_TTL_HOURS:.0f} (100 years)")
    return value


def check_policy_source(source: Any) -> str:
    """A policy source string of bounded length (the parser checks the rest)."""
    if not isinstance(source, str):
        raise ConfigurationError("a policy must be a string expression")
    if not source.strip():
        raise ConfigurationError("a policy must not be empty")
    if len(source) > MAX_POLICY_CHARS:
        raise ConfigurationError(f"a policy is at most {MAX_POLICY_CHARS} characters")
    _utf8(source, "the policy")
    return str(source)


def check_modality(modality: Any, modalities: Sequence[str]) -> str:
    if modality not in modalities:
        raise ConfigurationError(f"unknown modality {modality!r}; use one of {tuple(modalities)}")
    return str(modality)

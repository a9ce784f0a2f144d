"""A minimal in-memory collection store for testing the access layer in isolation.

It mirrors the pinned facade calls the access layer uses (``create_collection``, ``collection``,
``collections``; ``add``, ``search(code=..., k=...)``, ``delete``, ``get``) with brute-force Hamming
search, and gains the users/sessions API from :class:`securecmr.access.AccessMixin` exactly as the
real ``securecmr.Store`` does. Tests that have the real store run the same checks against it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from securecmr.access import AccessControl, AccessMixin, compile_policy
from securecmr.errors import CollectionExistsError, CollectionNotFoundError, ItemNotFoundError


@dataclass
class DItem:
    id: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    codes: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DHit:
    id: str
    score: float
    distance: int | None
    attrs: Mapping[str, Any]


class DCollection:
    def __init__(self, name: str, bits: int, policy: str | None) -> None:
        self.name = name
        self.bits = bits
        self.policy = compile_policy(policy) if policy is not None else None
        self.items: dict[str, DItem] = {}

    def add(self, items: list[DItem], **_: Any) -> None:
        for it in items:
            self.items[it.id] = it

    def get(self, item_id: str) -> DItem:
        if item_id not in self.items:
            raise ItemNotFoundError("no such item")
        return self.items[item_id]

    def delete(self, ids: list[str], **_: Any) -> None:
        for i in ids:
            self.get(i)
        for i in ids:
            del self.items[i]

    def search(self, *, code: np.ndarray, k: int = 10, **_: Any) -> list[DHit]:
        scored = []
        for n, it in enumerate(self.items.values()):
            d = int(np.unpackbits(np.asarray(it.codes["image"]) ^ code).sum())
            scored.append((d, n, it))
        scored.sort(key=lambda t: (t[0], t[1]))
        return [DHit(it.id, 1 - d / self.bits, d, dict(it.attrs)) for d, _, it in scored[:k]]


class DStore(AccessMixin):
    def __init__(self, path: str | os.PathLike[str], clock: Callable[[], float] | None = None) -> None:
        self._colls: dict[str, DCollection] = {}
        self._access = AccessControl(path, b"x" * 32, clock=clock)

    def create_collection(
        self, name: str, bits: int = 64, policy: str | None = None, **_: Any
    ) -> DCollection:
        if name in self._colls:
            raise CollectionExistsError("exists")
        coll = DCollection(name, bits, policy)
        self._colls[name] = coll
        return coll

    def collection(self, name: str) -> DCollection:
        if name not in self._colls:
            raise CollectionNotFoundError("no such collection")
        return self._colls[name]

    def collections(self) -> list[str]:
        return sorted(self._colls)

    def close(self) -> None:
        self._access.close()

    def __enter__(self) -> DStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

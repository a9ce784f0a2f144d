"""The public :class:`Collection`: the operator's handle on one collection.

Its calls (add, search, search_batch, get, ids, delete, hold, release) come from
:class:`securecmr.access.CollectionView` and take the same gate as a session's: the operator
(principal ``@operator``) is authenticated by the passphrase that opened the store, and every
call, reads included, is validated and leaves exactly one audit record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._types import Item
from .._validate import canonical_id
from ..access import CollectionView, Gate, Principal
from ..errors import ConfigurationError
from ._encode import Encoders
from ._engine import CollectionEngine
from ._ops import CollectionOps

__all__ = ["Collection"]


class Collection(CollectionView):
    """A named collection of items in one Hamming space. Get it from ``store.collection(name)``."""

    def __init__(self, gate: Gate, ops: CollectionOps, principal: Principal, store: Any) -> None:
        super().__init__(gate, ops, ops.name, principal)
        self._ops = ops
        self._store = store  # the facade that opened it (a Store; not imported here: no cycle)

    @property
    def _engine(self) -> CollectionEngine:
        return self._ops.engine

    @property
    def _encoders(self) -> Encoders:
        return self._ops.encoders

    def __repr__(self) -> str:
        return (
            f"Collection({self.name!r}, bits={self.bits}, protection={self.protection!r}, items={len(self)})"
        )

    def __len__(self) -> int:
        return self._ops.size()

    @property
    def protection(self) -> str:
        return self._ops.engine.protection

    @property
    def ttl_hours(self) -> float | None:
        return self._ops.ttl_hours

    @property
    def hasher(self) -> Any:
        return self._ops.encoders.hasher

    # ------------------------------------------------------------------ learning from own data
    @property
    def keeps_features(self) -> bool:
        """Whether items added from now on keep their encoder features (sealed) for :meth:`fit`."""
        return bool(self._ops.engine.config.get("keep_features", False))

    @property
    def hasher_version(self) -> int:
        """1 for the hasher the collection was created with; +1 on every switch (and switch back)."""
        return int(self._ops.engine.config.get("hasher_version", 1))

    def keep_features(self, keep: bool = True) -> None:
        """Turn keeping features on (or off) for items added from now on (audited); items already
        stored keep theirs only when they are re-added."""
        self._update_config({"keep_features": bool(keep)})
        self._store._audit_op("collection.keep_features", collection=self.name, detail={"keep": bool(keep)})

    def kept_features(self) -> dict[str, int]:
        """How many items keep features, per kind ``"<modality>:<dim>"`` (e.g. ``"image:1280"``)."""
        with self._ops.lock.read():
            return self._ops.engine.vault.count()

    def fit(
        self,
        method: str = "unsupervised",
        bits: int | None = None,
        *,
        labels_from: str | None = None,
        holdout: float = 0.2,
        force: bool = False,
        params: dict[str, Any] | None = None,
        seed: int = 0,
        show_progress: bool | None = None,
    ) -> Any:
        """Learn a hasher from this collection's own pairs and switch to it if it retrieves better.

        ``method``: ``unsupervised`` (pairs only), ``supervised`` (the items' first label, or
        attribute ``labels_from``), ``cca``, ``cca-itq`` or ``zero-shot``. A ``holdout`` fraction of
        the pairs is held apart; the report (:class:`~securecmr.store.FitReport`) gives the current
        and the new hasher's MAP on it in both directions. The switch (only if better, or ``force``)
        re-codes every item from its kept features, staged resumably, then in one transaction."""
        from ._learn import fit_collection

        return fit_collection(
            self,
            method=method,
            bits=bits,
            labels_from=labels_from,
            holdout=holdout,
            force=force,
            params=params,
            seed=seed,
            show_progress=show_progress,
        )

    def set_auto_fit(
        self,
        method: str | None = "unsupervised",
        *,
        factor: float = 2.0,
        labels_from: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        """Refit automatically when the collection has grown by ``factor`` since its last fit (or
        since this call): after an operator ``add`` / ``upsert`` that crosses the mark, :meth:`fit`
        runs with these arguments and switches only if the new hasher is better. ``method=None``
        turns it off. Growth is counted in items (every kept pair is an item). Audited."""
        from ..hashing import METHODS

        if method is not None and method not in METHODS:
            raise ConfigurationError(
                f"unknown hashing method {method!r}; choose one of {', '.join(sorted(METHODS))}"
            )
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor > 1.0:
            raise ConfigurationError(f"factor must be a number > 1, got {factor!r}")
        setting = None
        if method is not None:
            setting = {
                "method": method,
                "factor": float(factor),
                "labels_from": labels_from,
                "params": dict(params or {}),
                "items_at_fit": max(len(self), 1),
            }
        self._update_config({"auto_fit": setting})
        self._store._audit_op("collection.auto_fit", collection=self.name, detail={"auto_fit": setting})

    @property
    def auto_fit(self) -> dict[str, Any] | None:
        """The automatic refit setting (see :meth:`set_auto_fit`), or None."""
        setting = self._ops.engine.config.get("auto_fit")
        return None if setting is None else dict(setting)

    def _update_config(self, changes: dict[str, Any]) -> None:
        store = self._store
        store._check_writable()
        with self._ops.lock.write():
            config = {**self._ops.engine.config, **changes}
            store._write_config(self._ops.engine.cid, config)
            self._ops.engine.config.update(changes)

    def maybe_fit(self) -> Any:
        """Run the automatic refit if it is due (the report), else None."""
        setting = self.auto_fit
        if setting is None or len(self) < float(setting["factor"]) * int(setting["items_at_fit"]):
            return None
        report = self.fit(
            method=str(setting["method"]),
            labels_from=setting.get("labels_from"),
            params=dict(setting.get("params") or {}),
        )
        self._update_config({"auto_fit": {**setting, "items_at_fit": max(len(self), 1)}})
        return report

    def add(self, items: Iterable[Item] | Item, *, store_content: bool = False) -> int:
        added = super().add(items, store_content=store_content)
        if self._ops.engine.config.get("auto_fit"):
            self.maybe_fit()
        return added

    def upsert(self, items: Iterable[Item] | Item, *, store_content: bool = False) -> int:
        written = super().upsert(items, store_content=store_content)
        if self._ops.engine.config.get("auto_fit"):
            self.maybe_fit()
        return written

    def switch_back(self, *, show_progress: bool | None = None) -> dict[str, Any]:
        """Re-code every item with the previous hasher version and make it current again (audited)."""
        from ._learn import switch_back

        return switch_back(self, show_progress=show_progress)

    def resume_switch(self, *, show_progress: bool | None = None) -> dict[str, Any] | None:
        """Finish a hasher switch that a crash interrupted while re-coding (None: nothing pending)."""
        from ._learn import resume_switch

        return resume_switch(self, show_progress=show_progress)

    def id_hmac(self, item_id: str | int) -> str:
        """The keyed HMAC (hex) under which ``item_id`` is stored."""
        return self._ops.engine.id_hmac(canonical_id(item_id)).hex()

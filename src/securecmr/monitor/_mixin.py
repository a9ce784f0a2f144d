"""``store.monitor`` for :class:`securecmr.Store`, as a mixin the facade inherits.

The facade sets ``self._monitor`` with :func:`open_store_monitor` (rooted in the store
directory, keyed and sealed by a secret derived from the store keyring, driven by the store
clock, alerts written to the store's audit log) and gains ``store.monitor`` with ``fit()``,
``report()`` and ``unblock()``. The access layer calls its ``before_search``/``after_search``
around every session search.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ..errors import DecryptionError
from ..protect import Sealer, hmac_subkey
from ._guard import Alert, GuardPolicy
from ._store import StoreMonitor

__all__ = ["MonitorMixin", "open_store_monitor"]


def _subkey(secret: bytes, label: str) -> bytes:
    return hmac_subkey(secret, "securecmr/monitor/" + label)


def open_store_monitor(
    directory: str | os.PathLike[str],
    secret: bytes,
    *,
    store_id: str,
    clock: Callable[[], float] = time.time,
    encrypted: bool = True,
    audit: Any = None,
    policy: GuardPolicy | None = None,
) -> StoreMonitor:
    """A :class:`StoreMonitor` whose ids are keyed and (if ``encrypted``) log lines, rules, detector
    and guard state AES-GCM sealed (protect's :class:`~securecmr.protect.Sealer`).

    ``audit`` (an :class:`securecmr.audit.AuditLog`) receives one ``monitor.alert`` record per alert.
    """
    seal = unseal = None
    if encrypted:
        sealer = Sealer(_subkey(secret, "log"))

        def seal(data: bytes) -> bytes:
            return sealer.seal(data, b"securecmr-query-log")

        def unseal(blob: bytes) -> bytes:
            try:
                return sealer.open(blob, b"securecmr-query-log")
            except DecryptionError:
                raise DecryptionError("the query log does not decrypt") from None

    def on_alert(alert: Alert) -> None:
        if audit is not None:
            audit.append(
                "monitor.alert",
                principal=alert.principal,
                outcome="denied" if alert.action != "alert" else "allowed",
                reason="; ".join(r.split(" (")[0] for r in alert.reasons),
                detail={"score": round(alert.score, 4), "action": alert.action, "queries": alert.queries},
            )

    return StoreMonitor(
        directory,
        store_id=store_id,
        key=_subkey(secret, "ids"),
        clock=clock,
        seal=seal,
        unseal=unseal,
        policy=policy,
        on_alert=on_alert,
        file_key=_subkey(secret, "files") if encrypted else None,
    )


class MonitorMixin:
    """``store.monitor`` (needs ``self._monitor``, a :class:`StoreMonitor`)."""

    _monitor: StoreMonitor

    @property
    def monitor(self) -> StoreMonitor:
        """The query monitor: ``fit()``, ``report()``, ``unblock(principal)``."""
        return self._monitor

"""uvicorn's h11 protocol, closing connections whose request head is too slow to arrive.

A module-level class (worker processes import it by name); the time limit is a class attribute,
set by :func:`securecmr.server.serve` or, in worker processes, from ``$SECURECMR_SERVE_HEADER_TIMEOUT``.
"""

from __future__ import annotations

import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HEADER_TIMEOUT_ENV", "HeaderTimeoutProtocol"]

HEADER_TIMEOUT_ENV = "SECURECMR_SERVE_HEADER_TIMEOUT"


class HeaderTimeoutProtocol(H11Protocol):
    """Closes a connection (no response) when a request head takes over ``header_timeout`` seconds,
    so slow-header clients cannot hold connections open."""

    header_timeout: float = float(os.environ.get(HEADER_TIMEOUT_ENV, "10") or 10)
    _header_timer: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _expired(self) -> None:
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

"""``securecmr serve``: open a store and serve it with uvicorn, safely by default.

- binds 127.0.0.1:8470; a non-loopback address needs TLS (``tls_cert``/``tls_key``) unless the
  operator says ``insecure_http=True`` (e.g. behind a TLS-terminating proxy on the same host);
- the passphrase comes from ``$SECURECMR_PASSPHRASE`` or a file readable by its owner only, never
  from an argument (which would show in ``ps`` and shell history);
- SIGTERM/SIGINT drain: no new connections, requests in flight finish (up to ``drain_seconds``),
  then the store is closed, which flushes the audit and query logs;
- the access log is one JSON line per request on the ``securecmr.access`` logger (stderr).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ._limits import Limits

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "check_bind", "read_passphrase", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8470


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tls_cert: str | None, tls_key: str | None, insecure_http: bool) -> None:
    """Refuse to serve tokens in clear text off this machine unless explicitly told to."""
    if (tls_cert is None) != (tls_key is None):
        raise ConfigurationError("give both --tls-cert and --tls-key (or neither)")
    for path in (tls_cert, tls_key):
        if path is not None and not Path(path).is_file():
            raise ConfigurationError(f"TLS file {path} does not exist")
    if not is_loopback(host) and tls_cert is None and not insecure_http:
        raise ConfigurationError(
            f"refusing to serve on {host} without TLS: bearer tokens would cross the network in clear. "
            "Give --tls-cert and --tls-key, or --insecure-http if a TLS proxy on this host terminates TLS"
        )


def read_passphrase(passphrase_file: str | os.PathLike[str] | None) -> str:
    """The store passphrase from ``passphrase_file`` (owner-only permissions) or the environment."""
    if passphrase_file is not None:
        path = Path(passphrase_file)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ConfigurationError(f"passphrase file {path} does not exist") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                f"passphrase file {path} is readable by others; chmod 600 it (or use systemd credentials)"
            )
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
        if not text:
            raise ConfigurationError(f"passphrase file {path} is empty")
        return text
    env = os.environ.get("SECURECMR_PASSPHRASE")
    if not env:
        raise ConfigurationError("set SECURECMR_PASSPHRASE or give --passphrase-file")
    return env


def _protocol(header_timeout: float) -> type:
    """uvicorn's h11 protocol, closing connections whose request head takes over ``header_timeout``
    seconds to arrive (slow-header clients cannot hold connections open)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
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
            self._header_timer = self.loop.call_later(header_timeout, self._expired)

        def _expired(self) -> None:
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol


def _logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("securecmr.access", "securecmr.server"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(level.upper())
        log.propagate = False


def serve(
    store_path: str | os.PathLike[str],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    insecure_http: bool = False,
    passphrase_file: str | None = None,
    limits: Limits | None = None,
    drain_seconds: int = 30,
    log_level: str = "info",
    console: bool = True,
    search_threads: int = 1,
) -> None:
    """Open the store and serve it until SIGTERM/SIGINT (blocking).

    ``search_threads``: OpenMP threads of one faiss search. Requests are served one at a time at
    the store, so one thread per search avoids OpenMP start-up and oversubscription on small boxes."""
    import uvicorn

    import securecmr

    from ._app import create_app

    check_bind(host, tls_cert, tls_key, insecure_http)
    if not isinstance(search_threads, int) or search_threads < 1:
        raise ConfigurationError("search_threads must be a positive integer")
    limits = limits or Limits()
    passphrase = read_passphrase(passphrase_file)
    store = securecmr.Store.open(store_path, passphrase=passphrase)
    del passphrase
    _logging(log_level)
    try:
        app = create_app(store, limits, console=console, search_threads=search_threads)
    except BaseException:
        store.close()
        raise
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        http=_protocol(limits.header_timeout),
        access_log=False,
        log_config=None,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=drain_seconds,
        h11_max_incomplete_event_size=64 * 1024,
        lifespan="on",
    )
    logging.getLogger("securecmr.server").info(
        '{"event":"listening","host":"%s","port":%d,"tls":%s}', host, port, "true" if tls_cert else "false"
    )
    uvicorn.Server(config).run()

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

import dataclasses
import ipaddress
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ._limits import Limits

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "check_bind", "configure_logging", "read_passphrase", "serve"]

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


def configure_logging(level: str) -> None:
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
    workers: int = 1,
) -> None:
    """Open the store and serve it until SIGTERM/SIGINT (blocking).

    ``search_threads``: OpenMP threads of one faiss search. Requests are served one at a time at
    the store, so one thread per search avoids OpenMP start-up and oversubscription on small boxes.
    ``workers``: server processes sharing the port; each opens the store (writes are serialised
    between processes by the store's writer lock, and each sees the others' changes at its next
    call)."""
    import uvicorn

    import securecmr

    from ._protocol import HEADER_TIMEOUT_ENV, HeaderTimeoutProtocol

    check_bind(host, tls_cert, tls_key, insecure_http)
    for name, value in (("search_threads", search_threads), ("workers", workers)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigurationError(f"{name} must be a positive integer")
    limits = limits or Limits()
    passphrase = read_passphrase(passphrase_file)
    store = securecmr.Store.open(store_path, passphrase=passphrase)  # fails fast on a wrong passphrase
    del passphrase
    configure_logging(log_level)
    HeaderTimeoutProtocol.header_timeout = limits.header_timeout
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "ssl_certfile": tls_cert,
        "ssl_keyfile": tls_key,
        "http": HeaderTimeoutProtocol,
        "access_log": False,
        "log_config": None,
        "log_level": log_level,
        "server_header": False,
        "proxy_headers": False,
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": drain_seconds,
        "h11_max_incomplete_event_size": 64 * 1024,
        "lifespan": "on",
    }
    banner = '{"event":"listening","host":"%s","port":%d,"tls":%s,"workers":%d}'
    tls = "true" if tls_cert else "false"
    if workers == 1:
        from ._app import create_app

        try:
            app = create_app(store, limits, console=console, search_threads=search_threads)
        except BaseException:
            store.close()
            raise
        logging.getLogger("securecmr.server").info(banner, host, port, tls, 1)
        uvicorn.Server(uvicorn.Config(app, **common)).run()
        return
    store.close()
    from ._worker import CONFIG_ENV

    os.environ[CONFIG_ENV] = json.dumps(
        {
            "store": str(Path(store_path).resolve()),
            "limits": dataclasses.asdict(limits),
            "console": console,
            "search_threads": search_threads,
            "log_level": log_level,
            "passphrase_file": None if passphrase_file is None else str(Path(passphrase_file).resolve()),
        }
    )
    os.environ[HEADER_TIMEOUT_ENV] = str(limits.header_timeout)
    common["http"] = "securecmr.server._protocol:HeaderTimeoutProtocol"
    logging.getLogger("securecmr.server").info(banner, host, port, tls, workers)
    uvicorn.run("securecmr.server._worker:make_app", factory=True, workers=workers, **common)

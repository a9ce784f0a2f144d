"""``securecmr serve``: the HTTP service in front of a store (FastAPI on uvicorn).

Needs the ``serve`` extra (``pip install 'securecmr[serve]'``). :func:`create_app` builds the ASGI
app for an open store; :func:`serve` opens a store and runs it. The wire format is documented in
``docs/guides/serve.md`` and at ``/openapi.json`` (interactive docs at ``/docs``, local assets).
"""

from __future__ import annotations

from typing import Any

from ._limits import Limits
from ._run import DEFAULT_HOST, DEFAULT_PORT, check_bind, read_passphrase, serve

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Limits", "check_bind", "create_app", "read_passphrase", "serve"]


def create_app(
    store: Any, limits: Limits | None = None, *, console: bool = True, search_threads: int | None = 1
) -> Any:
    """The ASGI app serving ``store`` (it closes the store at shutdown). Imports FastAPI lazily."""
    try:
        from ._app import create_app as _create
    except ImportError as exc:
        from ..errors import MissingDependencyError

        raise MissingDependencyError(
            f"the HTTP service needs {exc.name}: pip install 'securecmr[serve]'"
        ) from None
    return _create(store, limits, console=console, search_threads=search_threads)

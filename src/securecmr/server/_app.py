"""The ASGI application of ``securecmr serve``: the /v1 API, health checks, OpenAPI with local docs,
and the console, in front of one open :class:`~securecmr.Store`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from .._version import __version__
from ..errors import SecureCMRError
from ._limits import Limits
from ._middleware import EdgeMiddleware
from ._problems import MEDIA_TYPE, HTTPProblem, problem_body, problem_for
from ._routes import Service, build_router
from ._runner import StoreRunner

__all__ = ["create_app"]

LOG = logging.getLogger("securecmr.server")

_DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>securecmr API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>
"""
_DOCS_INIT = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
  deepLinking: false, validatorUrl: null, tryItOutEnabled: false});
"""


def _problem_response(exc: BaseException) -> Response:
    status, body, headers = problem_for(exc)
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def create_app(
    store: Any, limits: Limits | None = None, *, console: bool = True, search_threads: int | None = 1
) -> FastAPI:
    """The application serving ``store`` (an open, writable :class:`~securecmr.Store`).

    The app owns the store from here on: it closes it at shutdown, after the last request, so
    the audit and query logs are flushed. ``search_threads``: OpenMP threads of one faiss search
    (None leaves faiss's default); store calls run one at a time, so 1 avoids oversubscription."""
    limits = limits or Limits()
    runner = StoreRunner(limits.request_timeout, search_threads=search_threads)
    service = Service(store, limits, runner)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner.configure_loop_thread(search_threads)
        try:
            yield
        finally:
            service.ready = False
            runner.close(store.close)
            LOG.info("store closed; audit and query logs flushed")

    app = FastAPI(
        title="securecmr",
        version=__version__,
        description="Privacy-preserving cross-modal retrieval: every call authenticated, authorised, "
        "audited and monitored. Errors are application/problem+json (RFC 9457).",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(HTTPProblem)
    async def _on_problem(request: Request, exc: HTTPProblem) -> Response:
        return _problem_response(exc)

    @app.exception_handler(SecureCMRError)
    async def _on_error(request: Request, exc: SecureCMRError) -> Response:
        return _problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> Response:
        return _problem_response(HTTPProblem(422, "invalid-request", "the request does not match the API"))

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> Response:
        kinds = {404: "not-found", 405: "method-not-allowed"}
        kind = kinds.get(exc.status_code, "http-error")
        body = problem_body(exc.status_code, kind, str(exc.detail), "InputError")
        return Response(body, status_code=exc.status_code, media_type=MEDIA_TYPE)

    @app.exception_handler(Exception)
    async def _on_unexpected(request: Request, exc: Exception) -> Response:
        LOG.error("unexpected %s on %s", type(exc).__name__, getattr(request.scope.get("route"), "path", "?"))
        return _problem_response(exc)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Any:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Any:
        if not service.ready:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        return {"status": "ready", "version": __version__}

    app.include_router(build_router(service))

    swagger = _swagger_dir()
    if swagger is not None:
        app.mount("/docs/assets", StaticFiles(directory=swagger), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        async def docs() -> Any:
            return HTMLResponse(_DOCS_HTML)

        @app.get("/docs/init.js", include_in_schema=False)
        async def docs_init() -> Any:
            return Response(_DOCS_INIT, media_type="text/javascript")

    if console:
        static = Path(str(resources.files("securecmr.server") / "console"))
        app.mount("/console/static", StaticFiles(directory=static), name="console-static")

        @app.get("/console", include_in_schema=False)
        async def console_page() -> Any:
            return FileResponse(static / "index.html", media_type="text/html")

        @app.get("/", include_in_schema=False)
        async def root() -> Any:
            return RedirectResponse("/console")

    app.add_middleware(EdgeMiddleware, limits=limits)
    return app


def _swagger_dir() -> str | None:
    """Swagger UI's files from the swagger-ui-bundle package (installed with the serve extra)."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return str(swagger_ui_bundle.swagger_ui_path)

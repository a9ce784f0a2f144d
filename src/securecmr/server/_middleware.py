"""The outer ASGI layer: body limits, security headers, origin check and the JSON access log.

The access log names the route template (``/v1/collections/{name}/search``), never the raw path or
query string, and never a header: no token, query, item id or collection name reaches it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._limits import Limits
from ._problems import MEDIA_TYPE, problem_body

__all__ = ["ACCESS_LOG", "CONSOLE_CSP", "DOCS_CSP", "BodyProblem", "EdgeMiddleware"]

ACCESS_LOG = logging.getLogger("securecmr.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
DOCS_CSP = (  # Swagger UI sets inline styles; its scripts are still our local files only
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


class BodyProblem(Exception):
    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail


def _csp_for(path: str) -> str:
    if path.startswith("/console"):
        return CONSOLE_CSP
    if path.startswith("/docs"):
        return DOCS_CSP
    return API_CSP


class EdgeMiddleware:
    """Wraps the app: refuses oversize or slow bodies and cross-origin browser calls, adds security
    headers and writes one JSON access-log line per request."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        state: dict[str, Any] = {"status": 0, "out": 0, "in": 0, "started": False}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = str(scope.get("path", ""))
        csp = _csp_for(path)

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = int(message["status"])
                state["started"] = True
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"cache-control", b"no-store"),
                    (b"content-security-policy", csp.encode()),
                ]
                have = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [e for e in extra if e[0] not in have]
            elif message["type"] == "http.response.body":
                state["out"] += len(message.get("body", b""))
            await send(message)

        limit = self.limits.max_body_bytes
        declared = headers.get("content-length")

        async def receive_wrapped() -> Message:
            try:
                message = await asyncio.wait_for(receive(), timeout=self.limits.body_timeout)
            except TimeoutError:
                raise BodyProblem(
                    408, "slow-body", f"the request body stalled for more than {self.limits.body_timeout:g} s"
                ) from None
            if message["type"] == "http.request":
                state["in"] += len(message.get("body", b""))
                if state["in"] > limit:
                    raise BodyProblem(413, "body-too-large", f"the request body exceeds {limit} bytes")
            return message

        try:
            problem = self._precheck(scope, headers, declared, limit)
            if problem is not None:
                await _send_problem(send_wrapped, problem)
            else:
                await self.app(scope, receive_wrapped, send_wrapped)
        except BodyProblem as exc:
            if not state["started"]:
                await _send_problem(send_wrapped, exc)
        finally:
            self._log(scope, state, t0)

    def _precheck(
        self, scope: Scope, headers: dict[str, str], declared: str | None, limit: int
    ) -> BodyProblem | None:
        if declared is not None:
            if not declared.isdigit():
                return BodyProblem(400, "bad-content-length", "Content-Length must be a number of bytes")
            if int(declared) > limit:
                return BodyProblem(413, "body-too-large", f"the request body exceeds {limit} bytes")
        origin = headers.get("origin")
        if origin is not None and origin != "null":
            scheme = "https" if scope.get("scheme") == "https" else "http"
            if origin != f"{scheme}://{headers.get('host', '')}":
                return BodyProblem(403, "cross-origin", "cross-origin requests are refused")
        return None

    def _log(self, scope: Scope, state: dict[str, Any], t0: float) -> None:
        if not ACCESS_LOG.isEnabledFor(logging.INFO):
            return
        route = scope.get("route")
        template = getattr(route, "path", None) or "(unmatched)"
        extra = scope.get("state") or {}
        line = {
            "ts": round(time.time(), 3),
            "method": scope.get("method"),
            "route": template,
            "status": state["status"],
            "ms": round((time.perf_counter() - t0) * 1000.0, 2),
            "bytes_in": state["in"],
            "bytes_out": state["out"],
            "client": (scope.get("client") or ("-",))[0],
            "user": extra.get("principal"),
            "pid": os.getpid(),
        }
        ACCESS_LOG.info(json.dumps(line, separators=(",", ":")))


async def _send_problem(send: Send, problem: BodyProblem) -> None:
    body = problem_body(problem.status, problem.kind, problem.detail, "InputError")
    await send(
        {
            "type": "http.response.start",
            "status": problem.status,
            "headers": [
                (b"content-type", MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""Errors as ``application/problem+json`` (RFC 9457), carrying the SecureCMRError class name.

One table maps every error class to a status; the client maps the class name back, so a refusal
over HTTP raises the same exception as in process.
"""

from __future__ import annotations

import json
from typing import Any

from .. import errors as E

__all__ = ["PROBLEM_TYPE", "HTTPProblem", "problem_body", "status_for"]

PROBLEM_TYPE = "urn:securecmr:problem:"
MEDIA_TYPE = "application/problem+json"

# Most specific first: the first class an error is an instance of decides.
_STATUS: list[tuple[type[BaseException], int, str]] = [
    (E.AuthenticationError, 401, "unauthenticated"),
    (E.ThrottledError, 429, "throttled"),
    (E.BlockedError, 403, "blocked"),
    (E.LegalHoldError, 409, "legal-hold"),
    (E.PermissionDeniedError, 403, "forbidden"),
    (E.CollectionNotFoundError, 404, "collection-not-found"),
    (E.ItemNotFoundError, 404, "item-not-found"),
    (E.CollectionExistsError, 409, "collection-exists"),
    (E.DuplicateItemError, 409, "duplicate-item"),
    (E.UserNotFoundError, 404, "user-not-found"),
    (E.UserExistsError, 409, "user-exists"),
    (E.StoreLockedError, 503, "store-locked"),
    (E.StoreClosedError, 503, "store-closed"),
    (E.IndexUnavailableError, 503, "index-unavailable"),
    (E.ModelNotFoundError, 503, "models-missing"),
    (E.MonitorError, 409, "monitor-not-ready"),
    (E.InputError, 422, "invalid-input"),
    (E.PolicyError, 422, "invalid-policy"),
    (E.ConfigurationError, 422, "invalid-parameters"),
    (E.IntegrityError, 500, "integrity"),
    (E.SecureCMRError, 500, "internal"),
]


class HTTPProblem(Exception):
    """A refusal made by the HTTP layer itself (limits, content types, malformed bodies)."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        error: str = "InputError",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.error = error
        self.headers = headers or {}


def status_for(exc: BaseException) -> tuple[int, str]:
    for cls, status, kind in _STATUS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "internal"


def _title(kind: str) -> str:
    return kind.replace("-", " ").capitalize()


def problem_body(status: int, kind: str, detail: str, error: str, **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + kind,
        "title": _title(kind),
        "status": status,
        "detail": detail,
        "error": error,
    }
    body.update(extra)
    return json.dumps(body).encode()


def problem_for(exc: BaseException) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of the problem document for ``exc``."""
    headers: dict[str, str] = {}
    if isinstance(exc, HTTPProblem):
        return exc.status, problem_body(exc.status, exc.kind, exc.detail, exc.error), dict(exc.headers)
    if isinstance(exc, E.SecureCMRError):
        status, kind = status_for(exc)
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="securecmr"'
        if status == 429:
            headers["Retry-After"] = str(_retry_after(exc))
        detail = str(exc) if status < 500 or kind != "internal" else "internal error"
        return status, problem_body(status, kind, detail, type(exc).__name__), headers
    return 500, problem_body(500, "internal", "internal error; see the server log", "SecureCMRError"), headers


def _retry_after(exc: BaseException) -> int:
    """Seconds to wait before retrying a throttled call (from the guard's message when it says)."""
    import re

    m = re.search(r"retry in (\d+(?:\.\d+)?) s", str(exc))
    return max(1, int(float(m.group(1)) + 0.999)) if m else 1

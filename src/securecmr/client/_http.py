"""HTTP transport of the client: standard library only, one keep-alive connection per thread."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

from .. import errors as E
from ..errors import ConfigurationError, SecureCMRError

__all__ = ["Transport", "multipart", "raise_problem"]


def raise_problem(status: int, body: bytes, headers: dict[str, str]) -> None:
    """Raise the SecureCMRError the server named in its problem document (same class as in process)."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    name = str(doc.get("error", ""))
    detail = str(doc.get("detail") or f"HTTP {status}")
    cls = getattr(E, name, None)
    if not (isinstance(cls, type) and issubclass(cls, SecureCMRError)):
        cls = SecureCMRError
    exc = cls(detail)
    exc.status = status  # type: ignore[attr-defined]
    exc.problem = str(doc.get("type", ""))  # type: ignore[attr-defined]
    retry = headers.get("retry-after")
    if retry is not None and retry.isdigit():
        exc.retry_after = int(retry)  # type: ignore[attr-defined]
    raise exc


class Transport:
    """Sends requests to ``url`` with the bearer ``token``; never logs or shows the token."""

    def __init__(self, url: str, token: str, *, timeout: float = 60.0, ca_file: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("url must look like http://127.0.0.1:8470 or https://host:port")
        if not isinstance(token, str) or not token:
            raise ConfigurationError("token must be a non-empty string")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._token = token
        self._timeout = timeout
        self._ctx = ssl.create_default_context(cafile=ca_file) if self._https else None
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Transport({self.url!r})"

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._https:
                conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._ctx
                )
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        self._local.used = False

    def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        conn = self._conn()
        self._local.used = False
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self._local.used = True
        return resp, data

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        content_type: str | None = None,
        raw: bool = False,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            content_type = "application/json"
        if content_type is not None:
            headers["Content-Type"] = content_type
        reused = bool(getattr(self._local, "used", False))
        try:
            resp, data = self._send(method, path, body, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:  # only a kept-alive connection the server closed meanwhile is retried
                raise
            resp, data = self._send(method, path, body, headers)
        except OSError:
            self.close()
            raise
        if resp.getheader("connection", "").lower() == "close":
            self.close()
        if resp.status >= 400:
            raise_problem(resp.status, data, {k.lower(): v for k, v in resp.getheaders()})
        if raw:
            return data
        if resp.status == 204 or not data:
            return None
        return json.loads(data)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request."""
    boundary = uuid.uuid4().hex
    out: list[bytes] = []
    for name, value in fields.items():
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (filename, data, ctype) in files.items():
        safe = os.path.basename(filename).replace('"', "") or "upload"
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{safe}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"

"""Start a real ``securecmr serve`` on a free loopback port, and always stop it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (fastapi, uvicorn) is not installed")

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[str]
    log_path: Path
    stopped: bool = field(default=False)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def access_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict) and "route" in doc:
                    out.append(doc)
        return out

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.stopped = True
        return int(self.proc.returncode)


def _src_env(passphrase: str | None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO / "src"), str(REPO / "adapters")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("SECURECMR_PASSPHRASE", None)
    if passphrase is not None:
        env["SECURECMR_PASSPHRASE"] = passphrase
    return env


def start(
    store: Path,
    passphrase: str | None,
    *args: str,
    log_dir: Path | None = None,
    wait: bool = True,
    host: str = "127.0.0.1",
) -> Server:
    port = free_port()
    log_path = (log_dir or store.parent) / f"server-{port}.log"
    fh = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - the child writes it until it stops
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "securecmr.cli.main",
            "serve",
            str(store),
            "--host",
            host,
            "--port",
            str(port),
            *args,
        ],
        env=_src_env(passphrase),
        stdout=fh,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=str(REPO),
    )
    fh.close()
    server = Server(f"http://127.0.0.1:{port}", port, proc, log_path)
    if wait:
        deadline = time.monotonic() + 60.0
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()[-3000:]}")
            try:
                with urllib.request.urlopen(server.url + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"server did not become ready:\n{server.log()[-3000:]}")
            time.sleep(0.1)
    return server


@contextlib.contextmanager
def running(store: Path, passphrase: str | None, *args: str) -> Iterator[Server]:
    server = start(store, passphrase, *args)
    try:
        yield server
    finally:
        server.stop()


def call(
    server: Server,
    method: str,
    path: str,
    *,
    token: str | None = None,
    json_body: Any = None,
    body: bytes | None = None,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, parsed JSON body or raw bytes) of one request."""
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    if json_body is not None:
        body = json.dumps(json_body).encode()
        content_type = content_type or "application/json"
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    req = urllib.request.Request(server.url + path, data=body, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, rh, data = r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        status, rh, data = e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
    try:
        parsed: Any = json.loads(data) if data else None
    except ValueError:
        parsed = data
    return status, rh, parsed

"""A local Milvus standalone server for tests, benchmarks and trials (the ``milvus`` package).

The ``milvus`` package bundles the Milvus standalone server (the server code a cluster runs, with
embedded etcd, rocksmq and local storage). :class:`LocalMilvusServer` runs it in its own process
group: a small Python launcher (this module run as a script) starts the server binary, waits until
its health endpoint answers, reports the port and stays its parent, so that stopping the launcher
stops the server and a kill of the group leaves nothing behind. The gRPC port is a free loopback
port chosen here (or the one given, to restart on the same address); the data, configuration and
logs live in ``base_dir``. The server's shared libraries are unpacked once per user into a cache
directory and linked into each base directory.

This is not a production deployment: run Milvus the way its documentation says for that.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, IndexUnavailableError

__all__ = ["LocalMilvusServer", "milvus_server_available"]

_START_TIMEOUT = 180.0


def milvus_server_available() -> str | None:
    """None when a local server can be started, else the reason (for skips and errors)."""
    try:
        import milvus  # noqa: F401
    except ImportError:
        return "the 'milvus' package (the bundled Milvus standalone server) is not installed"
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        return "pymilvus (the 'milvus' extra) is not installed"
    if not sys.platform.startswith("linux"):
        return "the bundled Milvus server is only used on Linux here"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalMilvusServer:
    """One Milvus standalone server process on ``127.0.0.1:<port>`` with its data in ``base_dir``.

    ``start()`` blocks until the server answers; ``stop()`` shuts it down (gracefully, then by
    force); ``kill()`` kills it at once (SIGKILL to the whole process group, like a crash);
    ``restart()`` starts it again on the same port and data. Also a context manager."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        config: dict[str, int | float | str | bool] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.port = int(port) if port else _free_port()
        self.config = dict(config or {})  # dotted milvus.yaml keys, e.g. "dataCoord.gc.interval"
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: Any = None
        self.server_pid: int | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalMilvusServer({self.uri!r}, {state})"

    def __enter__(self) -> LocalMilvusServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_dir(self) -> Path:
        """Where the server keeps its data: segments (binlogs), its message log and etcd."""
        return self.base_dir / "data"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        why = milvus_server_available()
        if why is not None:
            raise ConfigurationError(why)
        if self.running:
            return
        deadline = time.monotonic() + timeout
        self.base_dir.mkdir(parents=True, exist_ok=True)
        _link_binaries(self.base_dir)
        self._lock = _one_at_a_time(deadline)
        try:
            with open(self.base_dir / "launcher.log", "ab") as log:
                self._proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        __name__,
                        str(self.base_dir),
                        str(self.port),
                        json.dumps(self.config),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group: kill() reaches the server too
                    cwd=self.base_dir,
                    env={**os.environ, "PYTHONWARNINGS": "ignore"},
                )
            line = self._read_ready(deadline)
            self.server_pid = int(json.loads(line)["pid"])
            self._wait_serving(deadline)
        except BaseException:
            self.kill()
            raise

    def _read_ready(self, deadline: float) -> bytes:
        import selectors

        proc = self._proc
        if proc is None or proc.stdout is None:
            raise IndexUnavailableError("the Milvus launcher did not start")
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        try:
            while time.monotonic() < deadline:
                if sel.select(timeout=0.5):
                    line = proc.stdout.readline()
                    if line:
                        return line
                if proc.poll() is not None:
                    break
        finally:
            sel.close()
        raise IndexUnavailableError(
            f"the Milvus server in {self.base_dir} did not start; see {self.base_dir / 'launcher.log'} "
            f"and {self.base_dir / 'logs'}"
        )

    def _wait_serving(self, deadline: float) -> None:
        """Until a client can list collections (the proxy answers and the coordinators are up)."""
        from pymilvus import MilvusClient

        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                client = MilvusClient(uri=self.uri, timeout=5)
                try:
                    client.list_collections(timeout=5)
                    return
                finally:
                    client.close()
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.5)
        raise IndexUnavailableError(
            f"the Milvus server at {self.uri} did not answer in time ({type(last).__name__})"
        )

    def stop(self, timeout: float = 8.0) -> None:
        """Shut the server down: SIGTERM through the launcher, SIGKILL to the group after
        ``timeout`` (Milvus' own graceful shutdown can take half a minute; what it acknowledged is
        in its write-ahead log either way)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group(proc)

    def kill(self) -> None:
        """Kill the server and its launcher at once (a crash: nothing is flushed)."""
        self._kill_group(self._proc)

    def restart(self, timeout: float = _START_TIMEOUT) -> None:
        self.stop()
        self.start(timeout)

    def _kill_group(self, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group id is the launcher's pid
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        if self.server_pid is not None:  # gone with the group; wait until its pid is released
            _wait_gone(self.server_pid, 10.0)
        self._proc = None
        self.server_pid = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[-1].split()[0]
        except OSError:
            return
        if state in (b"Z", b"X"):
            return
        time.sleep(0.05)


def _one_at_a_time(deadline: float) -> Any:
    """The per-machine lock of the bundled server: its embedded etcd always binds port 2380 and
    its pid file is fixed, so two of them cannot run at once. Waits for the other to stop."""
    lock = open(_cache_dir() / ".server.lock", "w")  # noqa: SIM115 - held while the server runs
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            if time.monotonic() >= deadline:
                lock.close()
                raise IndexUnavailableError(
                    "another local Milvus server is running on this machine (the bundled server "
                    "cannot run twice at once); stop it first"
                ) from None
            time.sleep(0.5)


def _cache_dir() -> Path:
    import milvus

    version = getattr(milvus, "__version__", "unknown")
    return Path(tempfile.gettempdir()) / f"securecmr-milvus-{version}-{os.getuid()}"


def _link_binaries(base: Path) -> None:
    """Unpack the server's binaries once into the per-user cache and link them into ``base/bin``."""
    import milvus

    cache = _cache_dir()
    cache.mkdir(mode=0o700, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        milvus._initialize_data_files(str(cache))  # skips files whose checksum file matches
    link = base / "bin"
    if not link.is_symlink():
        link.symlink_to(cache / "bin", target_is_directory=True)


def _launch(base_dir: str, port: int, config: dict[str, Any]) -> None:
    """The launcher process: start the server, report, stay its parent until SIGTERM."""
    from milvus import MilvusServer

    server: Any = MilvusServer()
    server.set_base_dir(base_dir)
    for key, value in config.items():
        server.config.set(key, str(value).lower() if isinstance(value, bool) else value)
    server.config.set("proxy_port", port)
    server.config.configs["proxy_port"] = port  # bind exactly this port (fail rather than move)

    def _bind(p: int) -> socket.socket | None:  # like the package's check, but as Milvus binds:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # with SO_REUSEADDR, so a port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # in TIME_WAIT after a
        try:  # restart is usable again
            sock.bind(("127.0.0.1", p))
            sock.listen()
            return sock
        except OSError:
            sock.close()
            return None

    server.config.try_bind_port = _bind

    def _term(signum: int, frame: Any) -> None:
        proc = server.server_proc
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=6)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        os._exit(0)

    signal.signal(signal.SIGTERM, _term)
    server.start()
    sys.stdout.write(json.dumps({"port": port, "pid": server.server_proc.pid}) + "\n")
    sys.stdout.flush()
    server.server_proc.wait()
    os._exit(1)  # the server died on its own


if __name__ == "__main__":
    _launch(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})

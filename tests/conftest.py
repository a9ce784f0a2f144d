"""Shared fixtures. ``models_dir``: the ONNX encoders, exported once per session (cached between runs)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_HOME = REPO / ".cache" / "test-models"


@pytest.fixture(scope="session")
def models_dir() -> Iterator[Path]:
    """Export the fp32 and int8 encoders into ``<repo>/.cache/test-models/models`` (reused when the
    manifest verifies) and point ``SECURECMR_HOME`` there for the rest of the session."""
    from securecmr.encoders import export_models

    TEST_HOME.mkdir(parents=True, exist_ok=True)
    with open(TEST_HOME / ".lock", "w") as lock:  # several pytest runs may share the cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            directory = export_models(TEST_HOME / "models", int8=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SECURECMR_HOME", str(TEST_HOME))
        yield directory


_MILVUS: dict[str, Any] = {}  # the session's server and the last test that uses it


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    users = [i for i in items if {"milvus_server", "live_milvus"} & set(getattr(i, "fixturenames", ()))]
    _MILVUS["last"] = users[-1].nodeid if users else None


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Stop the server right after the last test that uses it: the bundled server runs once per
    machine (other test runs wait for it), so it is not kept for the rest of the session."""
    server = _MILVUS.get("server")
    if server is not None and item.nodeid == _MILVUS.get("last"):
        server.kill()


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Milvus standalone server (the ``milvus`` package) in its own process group on a free
    loopback port, with a temporary base directory; one per session, stopped after the last test
    that uses it and at the end whatever happens (children included). Skips, with the reason, when
    the package is missing. Another test run's server on this machine is waited for."""
    from securecmr.index._milvus_server import LocalMilvusServer, milvus_server_available

    why = milvus_server_available()
    if why is not None:
        pytest.skip(f"no live Milvus server: {why}")
    # garbage-collect compacted segment files within seconds (default: hours) so that the erasure
    # test can see the end state
    server = LocalMilvusServer(
        tmp_path_factory.mktemp("milvus-server"),
        config={"dataCoord.gc.interval": 1, "dataCoord.gc.dropTolerance": 1},
    )
    _MILVUS["server"] = server
    try:
        server.start(timeout=900)
        yield server
    finally:
        server.kill()
        _MILVUS.pop("server", None)


@pytest.fixture
def live_milvus(milvus_server: Any) -> Any:
    """The session's Milvus server, started again if a fault test left it down."""
    if not milvus_server.running:
        milvus_server.start()
    return milvus_server

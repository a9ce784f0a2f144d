"""Shared fixtures. ``models_dir``: the ONNX encoders, exported once per session (cached between runs)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from pathlib import Path

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

"""Where securecmr keeps its files: ``$SECURECMR_HOME`` (default ``~/.cache/securecmr``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["home_dir", "models_dir"]


def home_dir() -> Path:
    """The securecmr home directory (not created)."""
    env = os.environ.get("SECURECMR_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "securecmr"


def models_dir() -> Path:
    """Default directory of exported ONNX models."""
    return home_dir() / "models"

"""Lazy imports of heavy optional dependencies, with errors that name the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, *, package: str | None = None, extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` saying how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = package or module.split(".")[0]
        hint = f"pip install 'securecmr[{extra}]'" if extra else f"pip install {pkg}"
        raise MissingDependencyError(
            f"this feature needs the package {pkg!r}, which is not installed; run: {hint}"
        ) from exc

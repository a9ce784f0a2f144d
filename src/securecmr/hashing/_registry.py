"""Method names -> hasher classes."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from ._base import BaseHasher
from ._cca import CCAHasher, CCAITQHasher
from ._supervised import SupervisedHasher
from ._unsupervised import UnsupervisedHasher
from ._zeroshot import ZeroShotHasher

__all__ = ["METHODS", "create", "hasher_class"]

METHODS: dict[str, type[BaseHasher]] = {
    "cca": CCAHasher,
    "cca-itq": CCAITQHasher,
    "supervised": SupervisedHasher,
    "unsupervised": UnsupervisedHasher,
    "zero-shot": ZeroShotHasher,
}


def hasher_class(method: str) -> type[BaseHasher]:
    try:
        return METHODS[method]
    except (KeyError, TypeError):
        raise ConfigurationError(
            f"unknown hashing method {method!r}; choose one of {', '.join(sorted(METHODS))}"
        ) from None


def create(method: str, bits: int = 64, **params: Any) -> Any:
    """An unfitted hasher for ``method`` (``cca``, ``cca-itq``, ``supervised``, ``unsupervised``,
    ``zero-shot``) producing ``bits``-bit codes (a multiple of 8)."""
    from ._validation import check_bits

    cls: Any = hasher_class(method)
    check_bits(bits)
    try:
        return cls(bits, **params)
    except TypeError as exc:
        raise ConfigurationError(f"bad parameters for method {method!r}: {exc}") from None

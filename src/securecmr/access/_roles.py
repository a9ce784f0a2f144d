"""Roles and permissions.

Built-in roles: ``admin`` (everything), ``curator`` (search, add, delete), ``reader`` (search),
``auditor`` (read the audit log, export it). Custom roles are :class:`Role` objects registered on
the store. A role may carry its own record-level policy (combined with the collection's policy
by ``and``), a cap on ``k`` and score-privacy settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import ConfigurationError
from ._policy import Policy, compile_policy

__all__ = ["BUILTIN_ROLES", "Permission", "Role", "ScorePrivacy"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")


class Permission(StrEnum):
    """What a principal may do on a collection (or, for ``READ_AUDIT``, on the store)."""

    SEARCH = "search"
    ADD = "add"
    DELETE = "delete"
    MANAGE = "manage"
    READ_AUDIT = "read_audit"
    EXPORT = "export"


@dataclass(frozen=True)
class ScorePrivacy:
    """Membership-inference mitigations applied to the scores a principal sees.

    ``round_to``: scores are rounded down to a multiple of this (0 = exact).
    ``near_duplicate``: a score at or above this is reported as exactly this value, so an attacker
    cannot tell an exact copy from a near-duplicate (1.0 = off).
    """

    round_to: float = 0.0
    near_duplicate: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.round_to < 1.0:
            raise ConfigurationError("round_to must be in [0, 1)")
        if not 0.0 < self.near_duplicate <= 1.0:
            raise ConfigurationError("near_duplicate must be in (0, 1]")

    def apply(self, score: float) -> float:
        s = min(score, self.near_duplicate)
        if self.round_to > 0:
            steps = int(s / self.round_to + 1e-9)
            s = steps * self.round_to
        return round(s, 6)

    @property
    def active(self) -> bool:
        return self.round_to > 0 or self.near_duplicate < 1.0

    def merge(self, other: ScorePrivacy) -> ScorePrivacy:
        """The stricter of two settings."""
        return ScorePrivacy(
            max(self.round_to, other.round_to), min(self.near_duplicate, other.near_duplicate)
        )

    def to_dict(self) -> dict[str, float]:
        return {"round_to": self.round_to, "near_duplicate": self.near_duplicate}


@dataclass(frozen=True)
class Role:
    """A named set of permissions, with optional role policy, ``k`` cap and score privacy."""

    name: str
    permissions: frozenset[Permission]
    policy: Policy | None = None
    max_k: int | None = None
    privacy: ScorePrivacy = field(default_factory=ScorePrivacy)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ConfigurationError("a role name is 1-64 letters, digits, '_', '-' or '.'")
        if self.max_k is not None and (not isinstance(self.max_k, int) or self.max_k < 1):
            raise ConfigurationError("max_k must be a positive integer or None")

    @classmethod
    def create(
        cls,
        name: str,
        permissions: Any,
        *,
        policy: str | None = None,
        max_k: int | None = None,
        round_to: float = 0.0,
        near_duplicate: float = 1.0,
    ) -> Role:
        """Build a role from permission names, e.g. ``Role.create("triage", ["search"], max_k=5)``."""
        try:
            perms = frozenset(Permission(p) for p in permissions)
        except ValueError:
            valid = ", ".join(p.value for p in Permission)
            raise ConfigurationError(f"unknown permission; valid permissions: {valid}") from None
        return cls(
            name,
            perms,
            compile_policy(policy) if policy is not None else None,
            max_k,
            ScorePrivacy(round_to, near_duplicate),
        )

    def allows(self, permission: Permission) -> bool:
        return permission in self.permissions

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "permissions": sorted(p.value for p in self.permissions),
            "policy": self.policy.source if self.policy is not None else None,
            "max_k": self.max_k,
            "privacy": self.privacy.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Role:
        priv = d.get("privacy") or {}
        return cls.create(
            d["name"],
            d["permissions"],
            policy=d.get("policy"),
            max_k=d.get("max_k"),
            round_to=float(priv.get("round_to", 0.0)),
            near_duplicate=float(priv.get("near_duplicate", 1.0)),
        )


_ALL = frozenset(Permission)

BUILTIN_ROLES: dict[str, Role] = {
    "admin": Role("admin", _ALL),
    "curator": Role("curator", frozenset({Permission.SEARCH, Permission.ADD, Permission.DELETE})),
    "reader": Role("reader", frozenset({Permission.SEARCH})),
    "auditor": Role("auditor", frozenset({Permission.READ_AUDIT, Permission.EXPORT})),
}

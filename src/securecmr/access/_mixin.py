"""The users/sessions API of :class:`securecmr.Store`, as a mixin the facade inherits.

The facade sets ``self._access`` (an :class:`AccessControl` rooted in the store directory, keyed by a
secret derived from the store keyring, driven by the store clock) and gains ``create_user``,
``revoke_user``, ``add_role``, ``session`` and ``audit``.
"""

from __future__ import annotations

from typing import Any, Literal, cast, overload

from ..audit import AuditLog
from ..errors import UserNotFoundError
from ._control import DEFAULT_TOKEN_TTL_HOURS, AccessControl
from ._roles import Role
from ._session import Session, StorePort

__all__ = ["AccessMixin"]


class AccessMixin:
    """Users, tokens, sessions and the audit log on a store (needs ``self._access``)."""

    _access: AccessControl

    @overload
    def create_user(
        self,
        name: str,
        role: str = ...,
        tenant: str | None = ...,
        attrs: dict[str, Any] | None = ...,
        *,
        ttl_hours: float = ...,
        exist_ok: Literal[False] = ...,
    ) -> str: ...

    @overload
    def create_user(
        self,
        name: str,
        role: str = ...,
        tenant: str | None = ...,
        attrs: dict[str, Any] | None = ...,
        *,
        ttl_hours: float = ...,
        exist_ok: bool,
    ) -> str | None: ...

    def create_user(
        self,
        name: str,
        role: str = "reader",
        tenant: str | None = None,
        attrs: dict[str, Any] | None = None,
        *,
        ttl_hours: float = DEFAULT_TOKEN_TTL_HOURS,
        exist_ok: bool = False,
    ) -> str | None:
        """Create a user and return the token, once.

        Only the token's hash is stored; keep the token safe. ``attrs`` feed record-level policies
        as ``user.<key>`` (e.g. ``{"departments": ["neuro"], "clearance": 2}``). An existing user
        is never replaced: UserExistsError, or with ``exist_ok=True`` None (nothing changes).
        Change a user with :meth:`update_user`; issue another token with :meth:`issue_token`.
        """
        self._check_open()
        return self._access.create_user(
            name, role=role, tenant=tenant, attrs=attrs, ttl_hours=ttl_hours, exist_ok=exist_ok
        )

    def update_user(
        self,
        name: str,
        *,
        role: str | None = None,
        tenant: str | object | None = ...,
        attrs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Change a user's ``role``, ``tenant`` (None: no tenant) or ``attrs`` (replaced whole);
        audited as ``user.update`` with what changed. Returns the user's public record."""
        self._check_open()
        self._access.update_user(name, role=role, tenant=tenant, attrs=attrs)
        return self.user(name)

    def issue_token(self, name: str, *, ttl_hours: float = DEFAULT_TOKEN_TTL_HOURS) -> str:
        """Another token for an existing user (earlier ones stay valid); audited, shown once."""
        self._check_open()
        return self._access.issue_token(name, ttl_hours=ttl_hours)

    def users(self) -> list[dict[str, Any]]:
        """The users: name, role, tenant, attrs, created_at, revoked_at, live tokens, expires_at."""
        self._check_open()
        return self._access.users()

    def user(self, name: str) -> dict[str, Any]:
        """One user's public record (UserNotFoundError when there is none)."""
        for rec in self.users():
            if rec["name"] == name:
                return rec
        raise UserNotFoundError(f"no user named {name!r}")

    def _check_open(self) -> None:
        """Raise StoreClosedError once the store is closed (the facade overrides this)."""

    def revoke_user(self, name: str) -> None:
        """Revoke every token of ``name``; open sessions fail on their next call."""
        self._check_open()
        self._access.revoke_user(name)

    def roles(self) -> list[dict[str, Any]]:
        """Every role, built-in and custom: name, permissions, policy, max_k, privacy, builtin."""
        from ._roles import BUILTIN_ROLES

        self._check_open()
        out = [{**r.to_dict(), "builtin": True} for r in BUILTIN_ROLES.values()]
        out += [{**r.to_dict(), "builtin": False} for _, r in sorted(self._access.registry.roles.items())]
        return out

    def add_role(self, role: Role) -> None:
        """Register a custom :class:`~securecmr.access.Role` (one of that name is replaced)."""
        self._access.add_role(role)

    def session(self, token: str) -> Session:
        """The session of the token's user; AuthenticationError if forged, expired or revoked."""
        self._check_open()
        return Session(cast(StorePort, self), self._access, self._access.authenticate(token))

    @property
    def audit(self) -> AuditLog:
        """The store's tamper-evident audit log (``verify()``, ``export(fh)``, ``records()``)."""
        return self._access.audit

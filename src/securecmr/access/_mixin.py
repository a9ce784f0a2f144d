"""The users/sessions API of :class:`securecmr.Store`, as a mixin the facade inherits.

The facade sets ``self._access`` (an :class:`AccessControl` rooted in the store directory, keyed by a
secret derived from the store keyring, driven by the store clock) and gains ``create_user``,
``revoke_user``, ``add_role``, ``session`` and ``audit``.
"""

from __future__ import annotations

from typing import Any, cast

from ..audit import AuditLog
from ._control import DEFAULT_TOKEN_TTL_HOURS, AccessControl
from ._roles import Role
from ._session import Session, StorePort

__all__ = ["AccessMixin"]


class AccessMixin:
    """Users, tokens, sessions and the audit log on a store (needs ``self._access``)."""

    _access: AccessControl

    def create_user(
        self,
        name: str,
        role: str = "reader",
        tenant: str | None = None,
        attrs: dict[str, Any] | None = None,
        *,
        ttl_hours: float = DEFAULT_TOKEN_TTL_HOURS,
    ) -> str:
        """Create a user (or issue a new token to an existing one) and return the token, once.

        Only the token's hash is stored; keep the token safe. ``attrs`` feed record-level policies
        as ``user.<key>`` (e.g. ``{"departments": ["neuro"], "clearance": 2}``).
        """
        return self._access.create_user(name, role=role, tenant=tenant, attrs=attrs, ttl_hours=ttl_hours)

    def revoke_user(self, name: str) -> None:
        """Revoke every token of ``name``; open sessions fail on their next call."""
        self._access.revoke_user(name)

    def add_role(self, role: Role) -> None:
        """Register a custom :class:`~securecmr.access.Role`."""
        self._access.add_role(role)

    def session(self, token: str) -> Session:
        """The session of the token's user; AuthenticationError if forged, expired or revoked."""
        return Session(cast(StorePort, self), self._access, self._access.authenticate(token))

    @property
    def audit(self) -> AuditLog:
        """The store's tamper-evident audit log (``verify()``, ``export(fh)``, ``records()``)."""
        return self._access.audit

"""Session calls beyond search/add/delete: item reads and legal holds, collection stats, user
administration and the query monitor, each checked and audited like every other session call.

They live in mixins so :mod:`._session` stays about the search path; ``Session`` and
``GuardedCollection`` inherit them. The HTTP service (``securecmr serve``) exposes exactly these;
item reads and legal holds (``get``, ``ids``, ``hold``, ``release``) are the gate's, shared with
``Collection``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import (
    ConfigurationError,
    MonitorError,
    PermissionDeniedError,
    UserExistsError,
    UserNotFoundError,
)
from ._roles import Permission

if TYPE_CHECKING:
    from ._control import AccessControl
    from ._registry import User
    from ._session import Session

__all__ = ["CollectionOpsMixin", "SessionOpsMixin"]

_DEFAULT_TTL_HOURS = 24.0 * 90


class CollectionOpsMixin:
    """``stats`` on a :class:`GuardedCollection` (its item calls come from the gate's view)."""

    _session: Session
    _inner: Any
    name: str

    def stats(self) -> dict[str, Any]:
        """Size and configuration of the collection (needs ``manage``)."""
        session = self._session
        user = session._fresh_user()
        control = session._control
        control.require(user, Permission.MANAGE, action="collection.stats", collection=self.name)
        inner = self._inner
        out = {
            "name": self.name,
            "items": len(inner),
            "bits": int(inner.bits),
            "protection": str(inner.protection),
            "ttl_hours": inner.ttl_hours,
            "policy": inner.policy,
        }
        control.audit.append(
            "collection.stats", principal=user.name, tenant=user.tenant, collection=self.name
        )
        return out


class SessionOpsMixin:
    """User administration (``admin`` role) and the query monitor on a :class:`Session`."""

    _store: Any
    _control: AccessControl
    _user: User

    if TYPE_CHECKING:

        def _fresh_user(self) -> User: ...

    def whoami(self) -> dict[str, Any]:
        """The session's user: name, role, tenant and the role's permissions (not audited: no data)."""
        user = self._fresh_user()
        role = self._control.role_of(user)
        return {
            "user": user.name,
            "role": user.role,
            "tenant": user.tenant,
            "permissions": sorted(p.value for p in role.permissions),
        }

    def create_user(
        self,
        name: str,
        role: str = "reader",
        tenant: str | None = None,
        attrs: dict[str, Any] | None = None,
        *,
        ttl_hours: float = _DEFAULT_TTL_HOURS,
    ) -> str:
        """Create a user, or issue a new token to one (admin only, own tenant); returns the token once."""
        user = self._fresh_user()
        if tenant is None:
            tenant = user.tenant
        token = self._control.create_user(
            name, role=role, tenant=tenant, attrs=attrs, ttl_hours=ttl_hours, by=user
        )
        if token is None:  # only with exist_ok=True, which is never passed here
            raise UserExistsError(f"a user named {name!r} already exists")
        return token

    def reissue_token(self, name: str, *, ttl_hours: float = _DEFAULT_TTL_HOURS) -> str:
        """Issue another token to an existing user (admin only, own tenant); returns it once.
        Older tokens stay valid until they expire or the user is revoked."""
        return self._control.issue_token(name, ttl_hours=ttl_hours, by=self._fresh_user())

    def revoke_user(self, name: str) -> None:
        """Revoke every token of ``name`` (admin only, own tenant)."""
        self._control.revoke_user(name, by=self._fresh_user())

    def users(self) -> list[dict[str, Any]]:
        """The users of the admin's tenant (names, roles, state; never tokens or their hashes)."""
        user = self._fresh_user()
        self._require_admin(user, "user.list")
        out = [
            {**u, "revoked": u["revoked_at"] is not None}
            for u in self._control.users()
            if user.tenant is None or u["tenant"] == user.tenant
        ]
        self._control.audit.append("user.list", principal=user.name, tenant=user.tenant)
        return sorted(out, key=lambda d: d["name"])

    def _require_admin(self, user: User, action: str) -> None:
        if self._control.role_of(user).name != "admin":
            self._control.audit.append(
                action,
                principal=user.name,
                tenant=user.tenant,
                outcome="denied",
                reason="admin role required",
            )
            raise PermissionDeniedError("only an admin may do this; ask an admin")

    def _require_audit_reader(self, user: User, action: str) -> None:
        self._control.require(user, Permission.READ_AUDIT, action=action)

    def monitor_report(self, *, all_principals: bool = False) -> list[dict[str, Any]]:
        """The monitor's anomaly report (needs ``read_audit``); a tenant's reader sees its tenant's
        principals only."""
        user = self._fresh_user()
        self._require_audit_reader(user, "monitor.report")
        try:
            rows = list(self._store.monitor.report(all_principals=all_principals))
        except MonitorError as exc:
            self._control.audit.append(
                "monitor.report",
                principal=user.name,
                tenant=user.tenant,
                outcome="denied",
                reason=type(exc).__name__,
            )
            raise
        if user.tenant is not None:
            mine = {n for n, u in self._control.registry.users.items() if u.tenant == user.tenant}
            rows = [r for r in rows if r.get("principal") in mine]
        self._control.audit.append("monitor.report", principal=user.name, tenant=user.tenant)
        return rows

    def unblock(self, principal: str, *, reason: str) -> None:
        """Lift the guard's block on ``principal`` (admin only); the reason goes into the audit log."""
        user = self._fresh_user()
        self._require_admin(user, "monitor.unblock")
        target = self._control.registry.users.get(principal) if isinstance(principal, str) else None
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigurationError("give a reason for lifting the block (it is audited)")
        if target is None or (user.tenant is not None and target.tenant != user.tenant):
            self._control.audit.append(
                "monitor.unblock",
                principal=user.name,
                tenant=user.tenant,
                outcome="denied",
                reason="no such user",
            )
            raise UserNotFoundError("no such user")
        self._store.monitor.unblock(principal)
        self._control.audit.append(
            "monitor.unblock",
            principal=user.name,
            tenant=user.tenant,
            detail={"user": principal, "reason": reason.strip()[:500]},
        )

"""Session calls beyond search/add/delete: item reads and legal holds, collection stats, user
administration and the query monitor, each checked and audited like every other session call.

They live in mixins so :mod:`._session` stays about the search path; ``Session`` and
``GuardedCollection`` inherit them. The HTTP service (``securecmr serve``) exposes exactly these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import (
    ConfigurationError,
    ItemNotFoundError,
    MonitorError,
    PermissionDeniedError,
    SecureCMRError,
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
    """``get``, ``hold``, ``release`` and ``stats`` on a :class:`GuardedCollection`."""

    _session: Session
    _inner: Any
    name: str

    if TYPE_CHECKING:

        @property
        def _control(self) -> AccessControl: ...

        def _audit(self, user: User, action: str, **kw: Any) -> None: ...

        def _collection_policy(self) -> Any: ...

    def _visible_policy(self, user: User) -> Any:
        from ._session import _and

        return _and(self._collection_policy(), self._control.role_of(user).policy)

    def get(self, item_id: str | int) -> Any:
        """One item's stored record (labels, attrs, ref) as a Hit (needs ``search``); an item the
        user's policy hides reads exactly like a missing one."""
        user = self._session._fresh_user()
        self._control.require(user, Permission.SEARCH, action="get", collection=self.name)
        try:
            hit = self._inner.get(item_id)
            policy = self._visible_policy(user)
            if policy is not None and not policy.allows(dict(hit.attrs or {}), user.policy_context()):
                raise ItemNotFoundError("hidden")
        except ItemNotFoundError:
            self._audit(user, "get", result_ids=[item_id], outcome="denied", reason="no such item")
            raise ItemNotFoundError("no such item in this collection; check the id") from None
        except SecureCMRError as exc:
            self._audit(user, "get", result_ids=[item_id], outcome="denied", reason=type(exc).__name__)
            raise
        self._audit(user, "get", result_ids=[item_id])
        return hit

    def _holding(self, action: str, ids: Any, on: bool) -> int:
        user = self._session._fresh_user()
        self._control.require(user, Permission.DELETE, action=action, collection=self.name)
        ids = [ids] if isinstance(ids, str | int) else list(ids)
        policy = self._visible_policy(user)
        try:
            if policy is not None:
                ctx = user.policy_context()
                for item_id in ids:
                    if not policy.allows(dict(self._inner.get(item_id).attrs or {}), ctx):
                        raise ItemNotFoundError("hidden")
            (self._inner.hold if on else self._inner.release)(ids)
        except ItemNotFoundError:
            self._audit(user, action, result_ids=ids, outcome="denied", reason="no such item")
            raise ItemNotFoundError(
                "no such item in this collection; check the ids (nothing changed)"
            ) from None
        except SecureCMRError as exc:
            self._audit(user, action, result_ids=ids, outcome="denied", reason=type(exc).__name__)
            raise
        self._audit(user, action, result_ids=ids, detail={"count": len(ids)})
        return len(ids)

    def hold(self, ids: Any) -> int:
        """Put items under legal hold (needs ``delete``); returns how many."""
        return self._holding("hold", ids, True)

    def release(self, ids: Any) -> int:
        """Release a legal hold (needs ``delete``); returns how many."""
        return self._holding("release", ids, False)

    def stats(self) -> dict[str, Any]:
        """Size and configuration of the collection (needs ``manage``)."""
        user = self._session._fresh_user()
        self._control.require(user, Permission.MANAGE, action="collection.stats", collection=self.name)
        inner = self._inner
        out = {
            "name": self.name,
            "items": len(inner),
            "bits": int(inner.bits),
            "protection": str(inner.protection),
            "ttl_hours": inner.ttl_hours,
            "policy": inner.policy,
        }
        self._audit(user, "collection.stats")
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

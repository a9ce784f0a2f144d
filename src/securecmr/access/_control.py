"""Authentication, authorisation and auditing for one store.

:class:`AccessControl` owns the user registry, the token signer and the audit log of a store.
The facade calls it; it never imports the facade (imports point down: facade -> access -> engine).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from ..audit import HIPAA_RETENTION_DAYS, AuditAnchor, AuditLog
from ..errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    UserExistsError,
    UserNotFoundError,
)
from ._filter import AllowedSetCache
from ._registry import User, UserRegistry, check_attrs, check_name, check_tenant
from ._roles import Permission, Role
from ._tokens import TokenSigner, token_hash

__all__ = ["OPERATOR", "AccessControl"]

OPERATOR = "@operator"  # the principal of calls made with the store passphrase, not a token
DEFAULT_TOKEN_TTL_HOURS = 24.0 * 90


_F = TypeVar("_F", bound=Callable[..., Any])


def _changes_registry(method: _F) -> _F:
    """Run a method that changes users or roles under the store's writer lock (refused readonly)."""

    @functools.wraps(method)
    def wrapper(self: AccessControl, *args: Any, **kwargs: Any) -> Any:
        with self._changing():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _subkey(secret: bytes, label: str) -> bytes:
    return hmac.new(secret, b"securecmr/access/" + label.encode(), hashlib.sha256).digest()


class _RegistryAnchor:
    """Keeps the audit log's newest checkpoint inside the sealed user registry."""

    def __init__(self, registry: UserRegistry) -> None:
        self._registry = registry

    def save(self, n: int, head: str) -> None:
        self._registry.save_anchor(n, head)

    def load(self) -> tuple[int, str] | None:
        return self._registry.load_anchor()


class AccessControl:
    """Users, tokens and the audit log of a store rooted at ``directory``.

    ``secret`` (32 bytes, from the store keyring) derives the token, registry and audit keys.
    ``clock`` returns unix seconds and drives token expiry and audit timestamps. A store passes
    ``guard`` (its write lock, held around every change of users and roles, across processes),
    ``anchor`` (where the audit log's newest checkpoint is sealed), ``registry_floor`` and
    ``on_registry_save`` (the registry version kept in the store state, so an older copy of the
    registry put back fails) and ``readonly`` (no registry change, no checkpoint).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        secret: bytes,
        *,
        clock: Callable[[], float] | None = None,
        retention_days: float = HIPAA_RETENTION_DAYS,
        checkpoint_every: int = 100,
        readonly: bool = False,
        guard: Callable[[], AbstractContextManager[Any]] | None = None,
        anchor: AuditAnchor | None = None,
        registry_floor: Callable[[], int] | None = None,
        on_registry_save: Callable[[int], None] | None = None,
        log_id: str = "",
        audit_state: Callable[[], int] | None = None,
    ) -> None:
        if not isinstance(secret, bytes) or len(secret) < 32:
            raise ConfigurationError("the access-control secret must be at least 32 bytes")
        self.directory = Path(directory)
        self.clock: Callable[[], float] = clock or time.time
        self._allowed = AllowedSetCache()
        self._tables: dict[Any, tuple[Any, Any]] = {}
        self._filter_lock = threading.Lock()
        self._signer = TokenSigner(_subkey(secret, "tokens"))
        self.readonly = readonly
        self._guard: Callable[[], AbstractContextManager[Any]] = guard or contextlib.nullcontext
        self.registry = UserRegistry(
            self.directory / "users.sealed",
            _subkey(secret, "registry"),
            floor=registry_floor,
            on_save=on_registry_save,
        )
        self.audit = AuditLog(
            self.directory / "audit",
            _subkey(secret, "audit"),
            clock=self.clock,
            retention_days=retention_days,
            checkpoint_every=checkpoint_every,
            anchor=anchor if anchor is not None else _RegistryAnchor(self.registry),
            checkpoints=not readonly,
            log_id=log_id,
            state_probe=audit_state,
        )

    def _changing(self) -> AbstractContextManager[Any]:
        if self.readonly:
            from ..errors import StoreError

            raise StoreError("this store was opened readonly=True; open it for writing to manage users")
        return self._guard()

    def __repr__(self) -> str:
        return f"AccessControl({str(self.directory)!r})"

    def allowed_rows(
        self, version: Any, policy: Any, user_ctx: dict[str, Any], build_table: Callable[[], Any]
    ) -> Any:
        """The rows ``policy`` admits for ``user_ctx`` in the collection state ``version``, cached per
        (version, policy, user attributes); the attribute table is cached per version."""
        with self._filter_lock:
            cached = self._tables.get(version[0]) if isinstance(version, tuple) else None
            if cached is None or cached[0] != version:
                cached = (version, build_table())
                if isinstance(version, tuple):
                    self._tables[version[0]] = cached
            table = cached[1]
        return self._allowed.get(
            version[0] if isinstance(version, tuple) else version, version, policy, user_ctx, table
        ).rows

    def close(self) -> None:
        self.audit.close()

    # ------------------------------------------------------------------ users and roles
    @_changes_registry
    def create_user(
        self,
        name: str,
        *,
        role: str,
        tenant: str | None = None,
        attrs: dict[str, Any] | None = None,
        ttl_hours: float = DEFAULT_TOKEN_TTL_HOURS,
        by: User | None = None,
        exist_ok: bool = False,
    ) -> str | None:
        """Create a user and return a fresh token; only its hash is stored.

        A user of that name that exists (and is not revoked) is never replaced: UserExistsError,
        or with ``exist_ok=True`` None and nothing changes. Role, tenant and attribute changes go
        through :meth:`update_user`; a new token through :meth:`issue_token`."""
        actor = by.name if by is not None else OPERATOR
        actor_tenant = by.tenant if by is not None else None
        current = self.registry.users.get(name) if isinstance(name, str) else None
        if current is not None and not current.revoked:
            if by is not None and by.tenant is not None and current.tenant != by.tenant:
                exc: Exception = PermissionDeniedError("you may not manage this user")
            elif exist_ok:
                return None
            else:
                exc = UserExistsError(
                    f"a user named {name!r} already exists; change it with update_user, "
                    "or pass exist_ok=True to leave it as it is"
                )
            self.audit.append(
                "user.create", principal=actor, tenant=actor_tenant, outcome="denied", reason=str(exc)
            )
            raise exc
        try:
            name = check_name(name)
            tenant = check_tenant(tenant)
            attrs = check_attrs(attrs)
            self.registry.role(role)
            if ttl_hours <= 0:
                raise ConfigurationError("ttl_hours must be positive")
            if by is not None:
                self._require_user_admin(by, tenant)
            existing = self.registry.users.get(name)
            if (
                existing is not None
                and not existing.revoked
                and by is not None
                and existing.tenant != by.tenant
            ):
                raise PermissionDeniedError("you may not manage this user")
        except (ConfigurationError, PermissionDeniedError) as exc:
            self.audit.append(
                "user.create", principal=actor, tenant=actor_tenant, outcome="denied", reason=str(exc)
            )
            raise
        now = self.clock()
        token, claims = self._signer.issue(name, now=now, ttl_seconds=ttl_hours * 3600.0)
        user = User(name, role, tenant, attrs, created_at=now)
        user.tokens.append({"hash": token_hash(token), "jti": claims.token_id, "exp": claims.expires_at})
        self.registry.users[name] = user
        self.registry.save()
        self.audit.append(
            "user.create",
            principal=actor,
            tenant=actor_tenant,
            detail={"user": name, "role": role, "tenant": tenant},
        )
        return token

    @_changes_registry
    def revoke_user(self, name: str, *, by: User | None = None) -> None:
        """Revoke every token of ``name``; later calls with them raise AuthenticationError."""
        actor = by.name if by is not None else OPERATOR
        actor_tenant = by.tenant if by is not None else None
        user = self.registry.users.get(name) if isinstance(name, str) else None
        try:
            if user is None or (by is not None and user.tenant != by.tenant and by.tenant is not None):
                raise ConfigurationError("no such user")
            if by is not None:
                self._require_user_admin(by, user.tenant)
        except (ConfigurationError, PermissionDeniedError) as exc:
            self.audit.append(
                "user.revoke", principal=actor, tenant=actor_tenant, outcome="denied", reason=str(exc)
            )
            raise
        user.revoked_at = self.clock()
        user.tokens = []
        self.registry.save()
        self.audit.append("user.revoke", principal=actor, tenant=actor_tenant, detail={"user": name})

    @_changes_registry
    def update_user(
        self,
        name: str,
        *,
        role: str | None = None,
        tenant: str | object | None = ...,
        attrs: dict[str, Any] | None = None,
        by: User | None = None,
    ) -> User:
        """Change a user's role, tenant (``None`` for none) or attributes (replaced as a whole);
        the user's tokens stay valid and carry the new rights at once. Audited with the old and
        new values (attribute keys only)."""
        actor = by.name if by is not None else OPERATOR
        actor_tenant = by.tenant if by is not None else None
        user = self.registry.users.get(name) if isinstance(name, str) else None
        try:
            if user is None or (by is not None and by.tenant is not None and user.tenant != by.tenant):
                raise UserNotFoundError(f"no user named {name!r}")
            if by is not None:
                self._require_user_admin(by, user.tenant)
            new_role = user.role if role is None else role
            self.registry.role(new_role)
            new_tenant = user.tenant if tenant is ... else check_tenant(tenant)
            if by is not None and by.tenant is not None and new_tenant != by.tenant:
                raise PermissionDeniedError("an admin manages users of their own tenant only")
            new_attrs = user.attrs if attrs is None else check_attrs(attrs)
        except (ConfigurationError, PermissionDeniedError, UserNotFoundError) as exc:
            self.audit.append(
                "user.update", principal=actor, tenant=actor_tenant, outcome="denied", reason=str(exc)
            )
            raise
        changes: dict[str, Any] = {}
        if new_role != user.role:
            changes["role"] = [user.role, new_role]
        if new_tenant != user.tenant:
            changes["tenant"] = [user.tenant, new_tenant]
        if new_attrs != user.attrs:
            changes["attrs"] = [sorted(user.attrs), sorted(new_attrs)]
        user.role, user.tenant, user.attrs = new_role, new_tenant, new_attrs
        self.registry.save()
        self.audit.append(
            "user.update", principal=actor, tenant=actor_tenant, detail={"user": name, "changes": changes}
        )
        return user

    @_changes_registry
    def issue_token(
        self, name: str, *, ttl_hours: float = DEFAULT_TOKEN_TTL_HOURS, by: User | None = None
    ) -> str:
        """A new token for an existing, active user (older tokens stay valid until they expire or
        the user is revoked). Audited."""
        actor = by.name if by is not None else OPERATOR
        actor_tenant = by.tenant if by is not None else None
        user = self.registry.users.get(name) if isinstance(name, str) else None
        try:
            if (
                user is None
                or user.revoked
                or (by is not None and by.tenant is not None and user.tenant != by.tenant)
            ):
                raise UserNotFoundError(f"no active user named {name!r}")
            if by is not None:
                self._require_user_admin(by, user.tenant)
            if ttl_hours <= 0:
                raise ConfigurationError("ttl_hours must be positive")
        except (ConfigurationError, PermissionDeniedError, UserNotFoundError) as exc:
            self.audit.append(
                "user.token", principal=actor, tenant=actor_tenant, outcome="denied", reason=str(exc)
            )
            raise
        now = self.clock()
        token, claims = self._signer.issue(name, now=now, ttl_seconds=ttl_hours * 3600.0)
        user.tokens.append({"hash": token_hash(token), "jti": claims.token_id, "exp": claims.expires_at})
        self.registry.save()
        self.audit.append("user.token", principal=actor, tenant=actor_tenant, detail={"user": name})
        return token

    def users(self) -> list[dict[str, Any]]:
        """Every user's public record: name, role, tenant, attrs, times, active tokens (no hashes)."""
        now = self.clock()
        out = []
        for user in sorted(self.registry.users.values(), key=lambda u: u.name):
            live = [t for t in user.tokens if float(t.get("exp", 0)) > now]
            out.append(
                {
                    "name": user.name,
                    "role": user.role,
                    "tenant": user.tenant,
                    "attrs": dict(user.attrs),
                    "created_at": user.created_at,
                    "revoked_at": user.revoked_at,
                    "tokens": len(live),
                    "expires_at": max((float(t["exp"]) for t in live), default=None),
                }
            )
        return out

    @_changes_registry
    def add_role(self, role: Role, *, by: User | None = None) -> None:
        """Register (or replace) a custom role."""
        actor = by.name if by is not None else OPERATOR
        if by is not None and self.registry.role(by.role).name != "admin":
            self.audit.append("role.add", principal=actor, outcome="denied", reason="admin role required")
            raise PermissionDeniedError("only an admin may define roles")
        from ._roles import BUILTIN_ROLES

        if role.name in BUILTIN_ROLES:
            raise ConfigurationError(f"{role.name!r} is a built-in role and cannot be redefined")
        self.registry.roles[role.name] = role
        self.registry.save()
        self.audit.append("role.add", principal=actor, detail={"role": role.name})

    def _require_user_admin(self, by: User, tenant: str | None) -> None:
        if (
            not self.registry.role(by.role).allows(Permission.MANAGE)
            or self.registry.role(by.role).name != "admin"
        ):
            raise PermissionDeniedError("only an admin may manage users")
        if by.tenant is not None and tenant != by.tenant:
            raise PermissionDeniedError("an admin manages users of their own tenant only")

    # ------------------------------------------------------------------ authentication and authorisation
    def authenticate(self, token: object) -> User:
        """The user a token belongs to; AuthenticationError (logged) when forged, expired or revoked."""
        now = self.clock()
        try:
            claims = self._signer.verify(token, now=now)
            user = self.registry.users.get(claims.subject)
            if user is None:
                raise AuthenticationError("token is not valid for this store")
            if user.revoked:
                raise AuthenticationError("token revoked; ask an admin for a new one")
            digest = token_hash(str(token))
            if not any(hmac.compare_digest(t["hash"], digest) for t in user.tokens):
                raise AuthenticationError("token revoked or replaced; ask an admin for a new one")
        except AuthenticationError as exc:
            fp = self.audit.fingerprint(str(token)) if isinstance(token, str) else None
            self.audit.append(
                "authenticate", principal=None, query_fingerprint=fp, outcome="denied", reason=str(exc)
            )
            raise
        return user

    def role_of(self, user: User) -> Role:
        return self.registry.role(user.role)

    def require(
        self, user: User, permission: Permission, *, action: str, collection: str | None = None
    ) -> Role:
        """The user's role if it grants ``permission``; else log a denial and raise PermissionDeniedError."""
        role = self.role_of(user)
        if not role.allows(permission):
            reason = f"role {role.name!r} lacks the {permission.value!r} permission"
            self.audit.append(
                action,
                principal=user.name,
                tenant=user.tenant,
                collection=collection,
                outcome="denied",
                reason=reason,
            )
            raise PermissionDeniedError(f"{reason}; ask an admin for a role that has it")
        return role

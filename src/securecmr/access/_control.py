"""Authentication, authorisation and auditing for one store.

:class:`AccessControl` owns the user registry, the token signer and the audit log of a store.
The facade calls it; it never imports the facade (imports point down: facade -> access -> engine).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ..audit import HIPAA_RETENTION_DAYS, AuditAnchor, AuditLog
from ..errors import AuthenticationError, ConfigurationError, PermissionDeniedError
from ._filter import AllowedSetCache
from ._registry import User, UserRegistry, check_attrs, check_name, check_tenant
from ._roles import Permission, Role
from ._tokens import TokenSigner, token_hash

__all__ = ["OPERATOR", "AccessControl"]

OPERATOR = "@operator"  # the principal of calls made with the store passphrase, not a token
DEFAULT_TOKEN_TTL_HOURS = 24.0 * 90


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
    ``guard`` (the writer lock, held around every change of users and roles), ``anchor`` (where
    the audit log's newest checkpoint is sealed), ``registry_floor``/``on_registry_save`` (the
    registry version kept in the store state) and ``readonly`` (no registry change, no checkpoint).
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
        )

    def _changing(self) -> AbstractContextManager[Any]:
        """Held around every change of users and roles (the store's writer lock)."""
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
    def create_user(
        self,
        name: str,
        *,
        role: str,
        tenant: str | None = None,
        attrs: dict[str, Any] | None = None,
        ttl_hours: float = DEFAULT_TOKEN_TTL_HOURS,
        by: User | None = None,
    ) -> str:
        """Create (or re-key) a user and return a fresh token; only its hash is stored."""
        with self._changing():
            return self._create_user(name, role=role, tenant=tenant, attrs=attrs, ttl_hours=ttl_hours, by=by)

    def _create_user(
        self,
        name: str,
        *,
        role: str,
        tenant: str | None,
        attrs: dict[str, Any] | None,
        ttl_hours: float,
        by: User | None,
    ) -> str:
        actor = by.name if by is not None else OPERATOR
        actor_tenant = by.tenant if by is not None else None
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

    def revoke_user(self, name: str, *, by: User | None = None) -> None:
        """Revoke every token of ``name``; later calls with them raise AuthenticationError."""
        with self._changing():
            self._revoke_user(name, by=by)

    def _revoke_user(self, name: str, *, by: User | None) -> None:
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

    def add_role(self, role: Role, *, by: User | None = None) -> None:
        """Register (or replace) a custom role."""
        with self._changing():
            self._add_role(role, by=by)

    def _add_role(self, role: Role, *, by: User | None) -> None:
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

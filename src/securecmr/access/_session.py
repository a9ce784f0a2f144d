"""Sessions: a user's authenticated view of a store, and permission-checked collections.

Every call made through a :class:`Session` is authorised against the user's role, confined to the
user's tenant, filtered by the record-level policies, and leaves exactly one audit record.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import AuthenticationError, CollectionNotFoundError, SecureCMRError
from ._control import AccessControl
from ._gate import Principal
from ._registry import User
from ._roles import Permission
from ._session_ops import CollectionOpsMixin, SessionOpsMixin
from ._view import CollectionView

__all__ = ["GuardedCollection", "Session", "StorePort", "qualify", "split_qualified", "unqualify"]

_TENANT_SEP = "~"


def qualify(tenant: str | None, name: str) -> str:
    """The store-level name of a tenant's collection (tenants never see this prefix)."""
    if not isinstance(name, str) or _TENANT_SEP in name:
        raise CollectionNotFoundError("no such collection")
    return name if tenant is None else f"{tenant}{_TENANT_SEP}{name}"


def unqualify(tenant: str | None, stored: str) -> str | None:
    """The tenant-visible name of a store-level collection name, or None if another tenant owns it."""
    if tenant is None:
        return None if _TENANT_SEP in stored else stored
    prefix = f"{tenant}{_TENANT_SEP}"
    return stored[len(prefix) :] if stored.startswith(prefix) else None


def split_qualified(stored: str) -> tuple[str | None, str]:
    """(tenant or None, tenant-visible name) of a store-level collection name."""
    if _TENANT_SEP in stored:
        tenant, name = stored.split(_TENANT_SEP, 1)
        return tenant, name
    return None, stored


class StorePort(Protocol):
    """What a session needs from the store facade (``securecmr.Store`` implements it)."""

    def collection(self, name: str) -> CollectionView: ...

    def create_collection(
        self,
        name: str,
        bits: int = 64,
        protection: str = "salted+encrypted",
        hasher: Any = None,
        ttl_hours: float | None = None,
        policy: str | None = None,
        *,
        exist_ok: bool = False,
    ) -> CollectionView: ...

    def collections(self) -> list[str]: ...


class Session(SessionOpsMixin):
    """An authenticated user's handle on a store. Get one with ``store.session(token)``."""

    def __init__(self, store: StorePort, control: AccessControl, user: User) -> None:
        self._store = store
        self._control = control
        self._user = user

    def __repr__(self) -> str:
        return f"Session(user={self._user.name!r}, role={self._user.role!r})"

    @property
    def user(self) -> str:
        return self._user.name

    @property
    def role(self) -> str:
        return self._user.role

    @property
    def tenant(self) -> str | None:
        return self._user.tenant

    def _fresh_user(self) -> User:
        """Re-read the user so a revocation takes effect on open sessions too."""
        user = self._control.registry.users.get(self._user.name)
        if user is None or user.revoked:
            self._control.audit.append(
                "session",
                principal=self._user.name,
                tenant=self._user.tenant,
                outcome="denied",
                reason="user revoked",
            )
            raise AuthenticationError("token revoked; ask an admin for a new one")
        return user

    # ------------------------------------------------------------------ collections
    def create_collection(
        self,
        name: str,
        bits: int = 64,
        protection: str = "salted+encrypted",
        hasher: Any = None,
        ttl_hours: float | None = None,
        policy: str | None = None,
        *,
        exist_ok: bool = False,
    ) -> GuardedCollection:
        """Create a collection in the user's tenant (needs the ``manage`` permission). One of that
        name is an error (CollectionExistsError) unless ``exist_ok=True``, which opens it unchanged."""
        user = self._fresh_user()
        self._control.require(user, Permission.MANAGE, action="collection.create", collection=name)
        try:
            inner = self._store.create_collection(
                qualify(user.tenant, name), bits, protection, hasher, ttl_hours, policy, exist_ok=exist_ok
            )
        except SecureCMRError as exc:
            self._control.audit.append(
                "collection.create",
                principal=user.name,
                tenant=user.tenant,
                collection=name,
                outcome="denied",
                reason=type(exc).__name__,
            )
            raise
        self._control.audit.append(
            "collection.create",
            principal=user.name,
            tenant=user.tenant,
            collection=name,
            detail={"policy": policy is not None},
        )
        return GuardedCollection(self, inner, name)

    def collection(self, name: str) -> GuardedCollection:
        """Open a collection of the user's tenant; another tenant's looks exactly like a missing one."""
        user = self._fresh_user()
        try:
            inner = self._store.collection(qualify(user.tenant, name))
        except CollectionNotFoundError:
            self._control.audit.append(
                "collection.open",
                principal=user.name,
                tenant=user.tenant,
                collection=None,
                query=name,
                outcome="denied",
                reason="no such collection",
            )
            raise CollectionNotFoundError(
                "no such collection; check the name (session.collections() lists yours)"
            ) from None
        return GuardedCollection(self, inner, name)

    def collections(self) -> list[str]:
        """The names of the collections in the user's tenant (others' are neither named nor counted)."""
        user = self._fresh_user()
        lister = getattr(self._store, "_collection_names", None) or self._store.collections
        names = lister()  # the session audits this call itself
        out = sorted(n for n in (unqualify(user.tenant, str(x)) for x in names) if n is not None)
        self._control.audit.append("collection.list", principal=user.name, tenant=user.tenant)
        return out

    # ------------------------------------------------------------------ audit
    @property
    def audit(self) -> Any:
        """The store's audit log, for roles with ``read_audit``."""
        user = self._fresh_user()
        self._control.require(user, Permission.READ_AUDIT, action="audit.read")
        self._control.audit.append("audit.read", principal=user.name, tenant=user.tenant)
        return self._control.audit

    def export_audit(self, out: Any) -> int:
        """Verify the audit log and write it as JSON lines to ``out`` (needs the ``export`` permission)."""
        user = self._fresh_user()
        self._control.require(user, Permission.EXPORT, action="audit.export")
        n = self._control.audit.export(out)
        self._control.audit.append(
            "audit.export", principal=user.name, tenant=user.tenant, detail={"records": n}
        )
        return n


class GuardedCollection(CollectionView, CollectionOpsMixin):
    """A collection seen through a session: the same typed calls as ``Collection``, run by the
    gate as the session's user (permission, tenant, policies, guard, one audit record each)."""

    def __init__(self, session: Session, inner: CollectionView, name: str) -> None:
        super().__init__(
            inner._gate, inner._port, name, Principal(session.user, session.tenant, session._user)
        )
        self._session = session
        self._inner = inner  # the store's handle, for stats and the CLI's encoders

    def __repr__(self) -> str:
        return f"GuardedCollection({self.name!r}, user={self._session.user!r})"

"""Sessions: a user's authenticated view of a store, and permission-checked collections.

Every call made through a :class:`Session` is authorised against the user's role, confined to the
user's tenant, filtered by the record-level policies, and leaves exactly one audit record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from ..errors import (
    AuthenticationError,
    BlockedError,
    CollectionNotFoundError,
    ItemNotFoundError,
    PermissionDeniedError,
    SecureCMRError,
)
from ._control import AccessControl
from ._policy import Policy, compile_policy
from ._registry import User
from ._roles import Permission, Role, ScorePrivacy

__all__ = ["GuardedCollection", "Session", "qualify", "split_qualified", "unqualify"]

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


class _Collection(Protocol):
    """What a guarded collection needs from the store's collection."""

    name: str

    def add(self, items: Any, **kwargs: Any) -> Any: ...

    def search(self, **kwargs: Any) -> list[Any]: ...

    def delete(self, ids: Any, **kwargs: Any) -> Any: ...


def _and(a: Policy | None, b: Policy | None) -> Policy | None:
    if a is None:
        return b
    if b is None:
        return a
    return compile_policy(f"({a.source}) and ({b.source})")


_QUERY_KEYS = ("text", "image", "video", "vector", "code")


class Session:
    """An authenticated user's handle on a store. Get one with ``store.session(token)``."""

    def __init__(self, store: Any, control: AccessControl, user: User) -> None:
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
        from ..errors import AuthenticationError

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
    def create_collection(self, name: str, **kwargs: Any) -> GuardedCollection:
        """Create a collection in the user's tenant (needs the ``manage`` permission)."""
        user = self._fresh_user()
        self._control.require(user, Permission.MANAGE, action="collection.create", collection=name)
        try:
            inner = self._store.create_collection(qualify(user.tenant, name), **kwargs)
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
            detail={"policy": kwargs.get("policy") is not None},
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
        lister = getattr(self._store, "collections", None)
        names = lister() if callable(lister) else []
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


class GuardedCollection:
    """A collection seen through a session: ``add``/``search``/``delete`` are checked and audited."""

    def __init__(self, session: Session, inner: _Collection, name: str) -> None:
        self._session = session
        self._inner = inner
        self.name = name

    def __repr__(self) -> str:
        return f"GuardedCollection({self.name!r}, user={self._session.user!r})"

    @property
    def _control(self) -> AccessControl:
        return self._session._control

    def _audit(self, user: User, action: str, **kw: Any) -> None:
        self._control.audit.append(
            action, principal=user.name, tenant=user.tenant, collection=self.name, **kw
        )

    def _collection_policy(self) -> Policy | None:
        src = getattr(self._inner, "policy", None)
        if src is None:
            return None
        return src if isinstance(src, Policy) else compile_policy(str(src))

    def _privacy(self, role: Role) -> ScorePrivacy:
        cfg = getattr(self._inner, "score_privacy", None)
        base = cfg if isinstance(cfg, ScorePrivacy) else ScorePrivacy()
        return base.merge(role.privacy)

    # ------------------------------------------------------------------ calls
    def add(self, items: Any, **kwargs: Any) -> Any:
        """Add items (needs ``add``); ``kwargs`` go to the store (e.g. ``store_content``)."""
        user = self._session._fresh_user()
        self._control.require(user, Permission.ADD, action="add", collection=self.name)
        items = list(items) if not isinstance(items, list) else items
        ids = [getattr(it, "id", None) for it in items]
        try:
            out = self._inner.add(items, context=user.name, **kwargs)
        except SecureCMRError as exc:
            self._audit(user, "add", result_ids=ids, outcome="denied", reason=type(exc).__name__)
            raise
        self._audit(user, "add", result_ids=ids, detail={"count": len(items)})
        return out

    def delete(self, ids: Any) -> Any:
        """Delete items; an item hidden from the user by a policy reads exactly like a missing one."""
        user = self._session._fresh_user()
        self._control.require(user, Permission.DELETE, action="delete", collection=self.name)
        ids = [ids] if isinstance(ids, str | int) else list(ids)
        role = self._control.role_of(user)
        policy = _and(self._collection_policy(), role.policy)
        try:
            if policy is not None:
                self._check_visible(policy, user, ids)
            out = self._inner.delete(ids, by=user.name, context=user.name)
        except ItemNotFoundError:
            self._audit(user, "delete", result_ids=ids, outcome="denied", reason="no such item")
            raise ItemNotFoundError(
                "no such item in this collection; check the id (nothing was deleted)"
            ) from None
        except SecureCMRError as exc:
            self._audit(user, "delete", result_ids=ids, outcome="denied", reason=type(exc).__name__)
            raise
        self._audit(user, "delete", result_ids=ids, detail={"count": len(ids)})
        return out

    def _check_visible(self, policy: Policy, user: User, ids: list[Any]) -> None:
        getter = getattr(self._inner, "get", None)
        if not callable(getter):
            raise PermissionDeniedError("this collection cannot check record policies on delete")
        ctx = user.policy_context()
        for item_id in ids:
            item = getter(item_id)  # raises ItemNotFoundError for unknown ids
            if not policy.allows(dict(getattr(item, "attrs", {}) or {}), ctx):
                raise ItemNotFoundError("hidden")

    def search(self, *, k: int = 10, **kwargs: Any) -> list[Any]:
        """Search only the items the user may see; returns up to ``k`` authorised hits.

        With a query monitor on the store, the search is guarded (it may be throttled, blocked or
        get a lower ``k``) and logged with the salted query code; refused searches are logged too.
        """
        monitor = _monitor_of(self._session._store)
        try:
            user = self._session._fresh_user()
        except AuthenticationError:
            self._log_refusal(monitor, self._session._user, k, kwargs, "revoked")
            raise
        try:
            role = self._control.require(user, Permission.SEARCH, action="search", collection=self.name)
        except PermissionDeniedError:
            self._log_refusal(monitor, user, k, kwargs, "permission")
            raise
        query = next((kwargs[key] for key in _QUERY_KEYS if kwargs.get(key) is not None), None)
        fp = self._control.audit.fingerprint(query) if query is not None else None
        if role.max_k is not None:
            k = min(k, role.max_k)
        policy = _and(self._collection_policy(), role.policy)
        logged = b""
        try:
            if monitor is not None:  # the query guard may throttle, block or lower k
                try:
                    k = int(monitor.before_search(user.name, k))
                except PermissionDeniedError as exc:
                    why = "blocked" if isinstance(exc, BlockedError) else "throttled"
                    self._log_refusal(monitor, user, k, kwargs, why)
                    raise
                kwargs, logged = self._encode_query(kwargs)
            if policy is None:
                hits = list(self._inner.search(k=k, context=user.name, **kwargs))
            else:
                hits = self._filtered_search(policy, user, k, kwargs)
        except SecureCMRError as exc:
            self._audit(user, "search", query_fingerprint=fp, outcome="denied", reason=type(exc).__name__)
            raise
        privacy = self._privacy(role)
        if privacy.active:
            hits = [_with_score(h, privacy.apply(float(h.score))) for h in hits]
        ids = [h.id for h in hits]
        self._audit(user, "search", query_fingerprint=fp, result_ids=ids, detail={"k": k})
        if monitor is not None:
            monitor.after_search(
                user.name,
                collection=self.name,
                k=k,
                code=logged,
                result_ids=ids,
                scores=[float(h.score) for h in hits[:2]],  # the event keeps the top two only
                collection_size=_size_of(self._inner),
                bits=int(getattr(self._inner, "bits", 64)),
                tenant=user.tenant,
            )
        return hits

    def _encode_query(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """Turn any query (text, image, video, vector or code) into its packed code once.

        Returns the search arguments with the query replaced by ``code=`` (so it is not encoded
        twice) and the code to log: in the collection's salted space, never the raw query.
        """
        encode = getattr(self._inner, "query_code", None)
        given = {key: kwargs[key] for key in _QUERY_KEYS if kwargs.get(key) is not None}
        if not callable(encode):  # a collection that only searches codes
            code = given.get("code")
            return kwargs, b"" if code is None else np.asarray(code, np.uint8).tobytes()
        if len(given) == 1 and "code" in given:  # already a code: only salt it for the log
            return kwargs, np.asarray(encode(code=given["code"], salted=True), np.uint8).tobytes()
        raw = encode(**given, query_modality=kwargs.get("query_modality", "text"))
        rest = {key: v for key, v in kwargs.items() if key not in _QUERY_KEYS}
        salted = encode(code=raw, salted=True)
        return {**rest, "code": raw}, np.asarray(salted, np.uint8).tobytes()

    def _log_refusal(self, monitor: Any, user: User, k: int, kwargs: dict[str, Any], reason: str) -> None:
        """Log a refused search with the monitor (the query's code only when it is cheap to get)."""
        if monitor is None:
            return
        code = b""
        given = {key: kwargs[key] for key in ("code", "vector") if kwargs.get(key) is not None}
        if len(given) == 1:  # no model is run for a refused call
            try:
                kw = {**given, "query_modality": kwargs.get("query_modality", "text")}
                code = self._encode_query(kw)[1]
            except (SecureCMRError, TypeError, ValueError):
                code = b""
        monitor.after_search(
            user.name,
            collection=self.name,
            k=int(k) if isinstance(k, int) else 0,
            code=code,
            collection_size=_size_of(self._inner),
            bits=int(getattr(self._inner, "bits", 64)),
            tenant=user.tenant,
            denied=True,
            reason=reason,
        )

    def _filtered_search(self, policy: Policy, user: User, k: int, kwargs: dict[str, Any]) -> list[Any]:
        ctx = user.policy_context()
        allowed_search = getattr(self._inner, "search_allowed", None)
        rows = getattr(self._inner, "attribute_rows", None)
        if callable(allowed_search) and callable(rows):
            version = getattr(self._inner, "version", None)
            if version is None:  # no version to key a cache by: evaluate afresh
                table, _row_ids = rows()
                allowed = np.flatnonzero(policy.mask(table, ctx))
            else:
                allowed = self._control.allowed_rows(version, policy, ctx, lambda: rows()[0])
            return list(allowed_search(allowed, k=k, **kwargs))
        return _overfetch(
            lambda n: self._inner.search(k=n, context=user.name, **kwargs),
            lambda h: policy.allows(h.attrs, ctx),
            k,
        )


def _monitor_of(store: Any) -> Any:
    """The store's query monitor when it has one with the search hooks, else None."""
    try:
        monitor = getattr(store, "monitor", None)
    except SecureCMRError:
        return None
    if monitor is None or not callable(getattr(monitor, "before_search", None)):
        return None
    return monitor


def _size_of(coll: Any) -> int:
    try:
        return len(coll)
    except TypeError:
        return int(getattr(coll, "count", 0) or 0)


def _overfetch(search: Callable[[int], Sequence[Any]], keep: Callable[[Any], bool], k: int) -> list[Any]:
    """Search with a growing ``k`` until ``k`` hits pass ``keep`` or the collection is exhausted."""
    if k <= 0:
        return []
    fetch = max(4 * k, 32)
    while True:
        hits = list(search(fetch))
        kept = [h for h in hits if keep(h)]
        if len(kept) >= k or len(hits) < fetch:
            return kept[:k]
        fetch *= 4


def _with_score(hit: Any, score: float) -> Any:
    """A copy of ``hit`` with the (coarsened) score; the exact distance is withheld too."""
    changes: dict[str, Any] = {"score": score}
    if hasattr(hit, "distance"):
        changes["distance"] = None
    if dataclasses.is_dataclass(hit) and not isinstance(hit, type):
        return dataclasses.replace(hit, **changes)
    for key, value in changes.items():
        setattr(hit, key, value)
    return hit


def ids_of(hits: Iterable[Any]) -> list[Any]:
    return [h.id for h in hits]

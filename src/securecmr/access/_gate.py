"""The gate: the one path every collection call takes, operator calls included.

::

    authenticate -> validate + canonicalise -> authorise -> guard -> engine -> score privacy
                 -> audit -> observe

* **authenticate**: the operator (the passphrase holder, principal ``@operator``) or a session's
  user, re-read so a revocation applies to open sessions.
* **validate**: ids, attrs, labels, ``k``, codes and ``where`` are checked and canonicalised
  (:mod:`securecmr._validate`) before anything is stored; a bad batch is refused whole.
* **authorise**: the role's permission for the action, its ``k`` cap, and the collection and role
  policies compiled once into one :class:`ItemFilter` that bounds reads *and* writes.
* **guard**: a session's searches pass the query monitor (throttle, block, lower ``k``).
* **engine**: the collection port runs the call under the store's readers-writer lock.
* **score privacy**: the role's rounding of scores.
* **audit**: exactly one record per call, refused calls included. A write's record is appended
  and made durable inside the write's transaction, before it commits: if auditing fails the write
  is rolled back, so no change is ever committed without its record.
* **observe**: a session's search goes to the query log and the guard's windows.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._types import Hit
from .._validate import canonical_attrs, canonical_ids, canonical_items, canonical_label, check_k
from ..errors import (
    AuthenticationError,
    BlockedError,
    ConfigurationError,
    ItemNotFoundError,
    PermissionDeniedError,
    SecureCMRError,
    StoreClosedError,
)
from ._control import AccessControl
from ._policy import Policy, compile_policy
from ._registry import User
from ._request import QUERY_KINDS, CollectionPort, ItemFilter, MonitorPort, Query, Request
from ._roles import Permission, Role

__all__ = ["Gate", "Principal"]

_PERMISSION: dict[str, Permission] = {
    "search": Permission.SEARCH,
    "search_batch": Permission.SEARCH,
    "get": Permission.SEARCH,
    "ids": Permission.SEARCH,
    "add": Permission.ADD,
    "upsert": Permission.ADD,  # and DELETE: it may replace stored items (checked in _write)
    "delete": Permission.DELETE,
    "hold": Permission.DELETE,
    "release": Permission.DELETE,
}


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who calls: ``user`` is None for the operator."""

    name: str
    tenant: str | None = None
    user: User | None = None


_WRITES = frozenset({"add", "delete", "hold", "release"})


class _AuditFailed(Exception):
    """Auditing itself failed (the call must not write a second record about it)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(type(exc).__name__)
        self.exc = exc


class Gate:
    """Runs :class:`Request` objects for one store (thread-safe; see the module docstring)."""

    def __init__(self, control: AccessControl, monitor: MonitorPort | None = None) -> None:
        self._control = control
        self._monitor = monitor
        self._policies: dict[str, Policy] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Gate({self._control!r})"

    # ------------------------------------------------------------------ steps
    def authenticate(self, who: Principal) -> Principal:
        """The operator, or the session's user as the registry has it now (revocation applies)."""
        if who.user is None:
            return who
        user = self._control.registry.users.get(who.name)
        if user is None or user.revoked:
            raise AuthenticationError("token revoked; ask an admin for a new one")
        return Principal(user.name, user.tenant, user)

    def _policy(self, source: str) -> Policy:
        with self._lock:
            pol = self._policies.get(source)
            if pol is None:
                pol = compile_policy(source)
                if len(self._policies) < 4096:  # callers' where= filters must not grow it without bound
                    self._policies[source] = pol
            return pol

    def _filter(
        self, who: Principal, port: CollectionPort, role: Role | None, extra: str | None = None
    ) -> ItemFilter | None:
        """The compiled collection policy, role policy and the caller's own ``where`` filter, ANDed
        (None: sees all). ``extra`` only ever narrows what the policies admit."""
        given = (
            []
            if who.user is None
            else [port.policy_source, role.policy.source if role and role.policy else None]
        )
        sources: list[str] = [s for s in (*given, extra) if s]
        if not sources:
            return None
        # each expression compiled on its own and combined at evaluation: no text of one can
        # reach into another's parentheses
        policies = [self._policy(src) for src in sources]
        ctx = who.user.policy_context() if who.user is not None else {}
        key = (" and ".join(f"({src})" for src in sources), _ctx_key(ctx))
        if len(policies) == 1:
            (one,) = policies
            return ItemFilter(key, lambda attrs: one.allows(attrs, ctx), lambda table: one.mask(table, ctx))

        def allows(attrs: Mapping[str, Any]) -> bool:
            return all(p.allows(attrs, ctx) for p in policies)

        def mask(table: Any) -> np.ndarray:
            out = np.asarray(policies[0].mask(table, ctx), dtype=bool)
            for p in policies[1:]:
                out = out & np.asarray(p.mask(table, ctx), dtype=bool)
            return out

        return ItemFilter(key, allows, mask)

    # ------------------------------------------------------------------ the path
    def run(self, who: Principal, port: CollectionPort, collection: str, req: Request) -> Any:
        """Run one call; exactly one audit record whatever happens."""
        call = _Call(who, collection, req)
        try:
            call.who = self.authenticate(who)
            if req.action in ("search", "search_batch"):
                return self._search(call, port)
            if req.action in ("get", "ids"):
                return self._read(call, port)
            return self._write(call, port)
        except _AuditFailed as failed:
            raise failed.exc from None
        except StoreClosedError:
            raise  # a closed store writes nothing more, not even a refusal
        except Exception as exc:
            if not call.recorded:
                self._refused(call, port, exc)
            elif call.req.action in _WRITES:  # recorded, then the commit failed: say it did not happen
                self._control.audit.append(
                    call.req.action,
                    principal=call.who.name,
                    tenant=call.who.tenant,
                    collection=call.collection,
                    outcome="denied",
                    reason=f"rolled back after its record ({type(exc).__name__})",
                )
            raise

    def _search(self, call: _Call, port: CollectionPort) -> Any:
        req, audit = call.req, self._control.audit
        # validate
        call.k = check_k(req.k)
        query: Query | None = None
        raw: np.ndarray | None = None
        if req.action == "search":
            query = _check_query(req.query)
            call.query = query
            call.fp = audit.fingerprint(query.value)
        else:
            raw = port.check_codes(req.codes)
            call.fp = audit.fingerprint(raw)
        # authorise
        role = self._authorise(call.who, req.action)
        if role is not None and role.max_k is not None:
            call.k = min(call.k, role.max_k)
        visible = self._filter(call.who, port, role, _where_of(req))
        # guard
        monitor = self._monitor if call.who.user is not None else None
        if monitor is not None:
            try:
                call.k = check_k(monitor.before_search(call.who.name, call.k))
            except PermissionDeniedError:
                call.code = self._cheap_code(port, query, raw)
                raise
        # engine: the query is salted once, for the search and the monitor's log line alike
        if query is not None:
            raw = port.encode_query(query).reshape(1, -1)
        if raw is None:
            raise ConfigurationError("give exactly one of text=, image=, video=, vector=, code=")
        prepared = port.prepare(raw)
        if monitor is not None and query is not None:
            call.code = prepared[0].tobytes()
        results = port.search(prepared, call.k, modality=req.modality, visible=visible)
        # score privacy
        privacy = role.privacy if role is not None else None
        if privacy is not None and privacy.active:
            results = [[_with_score(h, privacy.apply(h.score)) for h in hits] for hits in results]
        # audit
        call.recorded = True
        audit.append(
            req.action,
            principal=call.who.name,
            tenant=call.who.tenant,
            collection=call.collection,
            query_fingerprint=call.fp,
            result_ids=[h.id for hits in results for h in hits],
            detail={"k": call.k} if query is not None else {"k": call.k, "queries": len(results)},
        )
        # observe
        if monitor is not None:
            size = port.size()
            for i, hits in enumerate(results):
                monitor.after_search(
                    call.who.name,
                    collection=call.collection,
                    k=call.k,
                    code=call.code if query is not None else prepared[i].tobytes(),
                    result_ids=[h.id for h in hits],
                    scores=[float(h.score) for h in hits[:2]],
                    collection_size=size,
                    bits=port.bits,
                    tenant=call.who.tenant,
                )
        return results[0] if query is not None else results

    def _read(self, call: _Call, port: CollectionPort) -> Any:
        req, audit = call.req, self._control.audit
        ids = canonical_ids(req.ids) if req.action == "get" else None
        role = self._authorise(call.who, req.action)
        visible = self._filter(call.who, port, role, _where_of(req) if ids is None else None)
        if ids is not None:
            out: Any = port.get(ids, visible=visible)
            detail = {"count": len(ids)}
        else:
            out = port.ids(visible=visible)
            detail = {"count": len(out)}
        call.recorded = True
        audit.append(
            req.action,
            principal=call.who.name,
            tenant=call.who.tenant,
            collection=call.collection,
            result_ids=ids or (),
            detail=detail,
        )
        return out

    def _write(self, call: _Call, port: CollectionPort) -> Any:
        req, audit = call.req, self._control.audit
        # validate
        ids: list[str | int] | None = None
        where: dict[str, Any] | None = None
        items = None
        if req.action in ("add", "upsert"):
            items = canonical_items(req.items)
            ids = [it.id for it in items]
        elif req.action == "delete" and (req.ids is None) == (req.where is None):
            raise ConfigurationError("give ids or where=, not both")
        elif req.where is not None:
            where = canonical_attrs(req.where, "where")
        else:
            ids = canonical_ids(req.ids)
        by = None if req.by is None else canonical_label(req.by, "by")
        # authorise: writers are bound by the policies too, except admins (the ``manage``
        # permission), who load and curate every record of the collection
        role = self._authorise(call.who, req.action)
        if req.action == "upsert":  # replacing a stored item deletes it: both permissions
            self._authorise(call.who, "delete")
        visible = (
            None
            if role is not None and role.allows(Permission.MANAGE)
            else self._filter(call.who, port, role)
        )
        port.check_writable()

        # audit: inside the write's transaction, durable before it commits
        def record(count: int) -> None:
            call.recorded = True
            try:
                audit.append(
                    req.action,
                    principal=call.who.name,
                    tenant=call.who.tenant,
                    collection=call.collection,
                    result_ids=ids or (),
                    detail={"count": count, "where": True} if where is not None else {"count": count},
                )
                audit.sync()
            except Exception as exc:
                raise _AuditFailed(exc) from exc

        # engine
        if items is not None and req.action == "upsert":
            return port.upsert(items, store_content=bool(req.store_content), visible=visible, audit=record)
        if items is not None:
            return port.add(items, store_content=bool(req.store_content), visible=visible, audit=record)
        if req.action == "delete":
            return port.delete(ids, where, by=by or call.who.name, visible=visible, audit=record)
        return port.hold(ids or [], req.action == "hold", visible=visible, audit=record)

    def _authorise(self, who: Principal, action: str) -> Role | None:
        if who.user is None:
            return None
        role = self._control.role_of(who.user)
        perm = _PERMISSION[action]
        if not role.allows(perm):
            raise PermissionDeniedError(
                f"role {role.name!r} lacks the {perm.value!r} permission; ask an admin for a role that has it"
            )
        return role

    def _cheap_code(self, port: CollectionPort, query: Query | None, raw: np.ndarray | None) -> bytes:
        """The salted code of a refused query when no model has to run for it (codes, vectors)."""
        try:
            if raw is not None:
                return port.salted(raw[0])
            if query is not None and query.kind in ("code", "vector"):
                return port.salted(port.encode_query(query))
        except (SecureCMRError, TypeError, ValueError):
            pass
        return b""

    def _refused(self, call: _Call, port: CollectionPort, exc: BaseException) -> None:
        """The one record of a refused call (and the monitor's log line for a refused search)."""
        who, req = call.who, call.req
        self._control.audit.append(
            req.action,
            principal=who.name,
            tenant=who.tenant,
            collection=call.collection,
            query_fingerprint=call.fp,
            outcome="denied",
            reason=_reason(exc),
        )
        if self._monitor is None or who.user is None or req.action not in ("search", "search_batch"):
            return
        if isinstance(exc, AuthenticationError):
            why = "revoked"
        elif isinstance(exc, BlockedError):
            why = "blocked"
        elif isinstance(exc, PermissionDeniedError):
            why = "permission" if "lacks" in str(exc) else "throttled"
        else:
            return  # bad input is not a search the monitor models
        if not call.code and why in ("revoked", "permission"):
            call.code = self._cheap_code(port, call.query if call.query else _query_of(req), None)
        self._monitor.after_search(
            who.name,
            collection=call.collection,
            k=call.k or (req.k if isinstance(req.k, int) and not isinstance(req.k, bool) else 0),
            code=call.code,
            collection_size=port.size(),
            bits=port.bits,
            tenant=who.tenant,
            denied=True,
            reason=why,
        )


class _Call:
    """The state of one call as it moves through the gate (for its single audit record)."""

    __slots__ = ("code", "collection", "fp", "k", "query", "recorded", "req", "who")

    def __init__(self, who: Principal, collection: str, req: Request) -> None:
        self.who = who
        self.collection = collection
        self.req = req
        self.fp: str | None = None
        self.k = 0
        self.code = b""
        self.query: Query | None = None
        self.recorded = False


def _where_of(req: Request) -> str | None:
    """The caller's ``where=`` filter: a policy expression (compiled, so a bad one is a PolicyError)."""
    if req.filter is None:
        return None
    if not isinstance(req.filter, str) or not req.filter.strip():
        raise ConfigurationError("where= must be a non-empty policy expression, e.g. \"item.ward == 'a'\"")
    return req.filter


def _query_of(req: Request) -> Query | None:
    q = req.query
    return q if q is not None and q.kind in QUERY_KINDS else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, AuthenticationError):
        return "user revoked"
    if isinstance(exc, ItemNotFoundError):
        return "no such item"
    if isinstance(exc, PermissionDeniedError) and "lacks" in str(exc):
        return str(exc).split(";")[0]
    return type(exc).__name__


def _check_query(query: Query | None) -> Query:
    if query is None or query.kind not in QUERY_KINDS:
        raise ConfigurationError("give exactly one of text=, image=, video=, vector=, code=")
    return query


def _ctx_key(ctx: Mapping[str, Any]) -> str:
    import json

    return json.dumps(dict(ctx), sort_keys=True, default=str)


def _with_score(hit: Hit, score: float) -> Hit:
    """A copy of ``hit`` with the (coarsened) score; the exact distance is withheld too."""
    return dataclasses.replace(hit, score=score, distance=None)

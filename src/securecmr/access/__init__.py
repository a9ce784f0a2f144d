"""Users, roles, tenants, record-level policies and signed tokens.

Policies are small expressions over ``item.<attr>`` and ``user.<attr>`` combined with ``and``,
``or``, ``not`` (see :func:`compile_policy`); they are parsed, never ``eval``-ed.
"""

from __future__ import annotations

from ._control import OPERATOR, AccessControl
from ._demo import run_access_demo
from ._gate import Gate, Principal
from ._mixin import AccessMixin
from ._policy import AttributeTable, Policy, compile_policy
from ._registry import User
from ._request import CollectionPort, ItemFilter, MonitorPort, Query, Request
from ._roles import BUILTIN_ROLES, Permission, Role, ScorePrivacy
from ._session import GuardedCollection, Session
from ._tokens import TokenClaims, TokenSigner, token_hash
from ._view import CollectionView

__all__ = [
    "BUILTIN_ROLES",
    "OPERATOR",
    "AccessControl",
    "AccessMixin",
    "AttributeTable",
    "CollectionPort",
    "CollectionView",
    "Gate",
    "GuardedCollection",
    "ItemFilter",
    "MonitorPort",
    "Permission",
    "Policy",
    "Principal",
    "Query",
    "Request",
    "Role",
    "ScorePrivacy",
    "Session",
    "TokenClaims",
    "TokenSigner",
    "User",
    "compile_policy",
    "run_access_demo",
    "token_hash",
]

"""Users, roles, tenants, record-level policies and signed tokens.

Policies are small expressions over ``item.<attr>`` and ``user.<attr>`` combined with ``and``,
``or``, ``not`` (see :func:`compile_policy`); they are parsed, never ``eval``-ed.
"""

from __future__ import annotations

from ._policy import AttributeTable, Policy, compile_policy
from ._roles import BUILTIN_ROLES, Permission, Role, ScorePrivacy
from ._tokens import TokenClaims, TokenSigner, token_hash

__all__ = [
    "BUILTIN_ROLES",
    "AttributeTable",
    "Permission",
    "Policy",
    "Role",
    "ScorePrivacy",
    "TokenClaims",
    "TokenSigner",
    "compile_policy",
    "token_hash",
]

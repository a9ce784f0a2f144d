"""The user registry: users, custom roles and token hashes, sealed with AES-GCM in one file.

Only SHA-256 hashes of tokens are kept. The file is rewritten atomically (temp file + rename);
a file that was altered, or opened with the wrong key, raises IntegrityError and is never
overwritten. Each save bumps a version sealed in the file; ``floor`` (the version the store state
last recorded) makes an older copy put back in place fail, and the file is re-read whenever
another process replaced it, so every process sees a revocation at its next call.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, IntegrityError
from ..protect import atomic_write
from ._roles import BUILTIN_ROLES, Role

__all__ = ["User", "UserRegistry"]

_AAD = b"securecmr/users/v1"
_NAME_RE = re.compile(r"^[A-Za-z0-9_@][A-Za-z0-9_.@\-]{0,127}$")
_TENANT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}$")
_RESERVED_ATTRS = {"name", "role", "tenant"}


@dataclass
class User:
    """A principal. ``attrs`` feed record-level policies as ``user.<key>``."""

    name: str
    role: str
    tenant: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    revoked_at: float | None = None
    tokens: list[dict[str, Any]] = field(default_factory=list)  # {"hash", "jti", "exp"}

    def __repr__(self) -> str:  # token hashes stay out of reprs
        return f"User(name={self.name!r}, role={self.role!r}, tenant={self.tenant!r}, revoked={self.revoked})"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def policy_context(self) -> dict[str, Any]:
        """What a policy sees as ``user``: the attributes plus name, role and tenant."""
        ctx = dict(self.attrs)
        ctx.update(name=self.name, role=self.role, tenant=self.tenant)
        return ctx

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "tenant": self.tenant,
            "attrs": self.attrs,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "tokens": self.tokens,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> User:
        return cls(
            d["name"],
            d["role"],
            d.get("tenant"),
            dict(d.get("attrs") or {}),
            float(d.get("created_at", 0.0)),
            d.get("revoked_at"),
            list(d.get("tokens") or []),
        )


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigurationError("a user name is 1-128 letters, digits, '_', '-', '.' or '@'")
    return name


def check_tenant(tenant: object) -> str | None:
    if tenant is None:
        return None
    if not isinstance(tenant, str) or not _TENANT_RE.match(tenant):
        raise ConfigurationError("a tenant is 1-64 letters, digits, '_' or '-'")
    return tenant


def check_attrs(attrs: object) -> dict[str, Any]:
    if attrs is None:
        return {}
    if not isinstance(attrs, dict):
        raise ConfigurationError("user attrs must be a dict of JSON values")
    bad = _RESERVED_ATTRS & set(attrs)
    if bad:
        raise ConfigurationError(f"user attrs may not set {sorted(bad)}: they come from the user record")
    try:
        out: dict[str, Any] = json.loads(json.dumps(attrs, allow_nan=False))
    except (TypeError, ValueError):
        raise ConfigurationError("user attrs must be JSON values (str, number, bool, null, lists)") from None
    return out


class UserRegistry:
    """Users and custom roles of one store, persisted sealed in ``path``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: bytes,
        *,
        floor: Callable[[], int] | None = None,
        on_save: Callable[[int], None] | None = None,
    ) -> None:
        if not isinstance(key, bytes) or len(key) != 32:
            raise ConfigurationError("the registry key must be 32 bytes")
        self.path = Path(path)
        self._key = key
        self._floor = floor
        self._on_save = on_save
        self._users: dict[str, User] = {}
        self._roles: dict[str, Role] = {}
        self.version = 0
        self.audit_anchor: tuple[int, str] | None = None
        self._stat: tuple[int, int, int] | None = None
        self.refresh()

    def __repr__(self) -> str:
        return f"UserRegistry({len(self.users)} users)"

    @property
    def users(self) -> dict[str, User]:
        self.refresh()
        return self._users

    @property
    def roles(self) -> dict[str, Role]:
        self.refresh()
        return self._roles

    def refresh(self) -> None:
        """Re-read the file if another process replaced it since we last read or wrote it."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._stat is not None or (self._floor is not None and self._floor() > 0):
                raise IntegrityError(f"{self.path.name}: the user registry is missing; restore it") from None
            return
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._stat:
            self._load()
            self._stat = key

    def _aead(self) -> Any:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(self._key)

    def _load(self) -> None:
        blob = self.path.read_bytes()
        try:
            plain = self._aead().decrypt(blob[:12], blob[12:], _AAD)
            data = json.loads(plain)
            users = {n: User.from_dict(u) for n, u in data["users"].items()}
            roles = {n: Role.from_dict(r) for n, r in data["roles"].items()}
            anchor = data.get("audit_anchor")
            version = int(data.get("serial", 0))
        except Exception:  # one opaque error: wrong key, altered or truncated file
            raise IntegrityError(
                f"{self.path.name}: the user registry does not decrypt (wrong key, or the file was altered)"
            ) from None
        floor = self._floor() if self._floor is not None else 0
        if version < floor:
            raise IntegrityError(
                f"{self.path.name}: the user registry is older than the store state names (version "
                f"{version} < {floor}): an older copy was put back; restore the newest one"
            )
        self._users, self._roles, self.version = users, roles, version
        self.audit_anchor = (int(anchor[0]), str(anchor[1])) if anchor else None

    def save(self) -> None:
        version = self.version + 1
        data = {
            "version": 1,
            "serial": version,
            "users": {n: u.to_dict() for n, u in sorted(self._users.items())},
            "roles": {n: r.to_dict() for n, r in sorted(self._roles.items())},
            "audit_anchor": list(self.audit_anchor) if self.audit_anchor else None,
        }
        nonce = secrets.token_bytes(12)
        blob = nonce + self._aead().encrypt(nonce, json.dumps(data, sort_keys=True).encode("utf-8"), _AAD)
        atomic_write(self.path, blob)  # temp, fsync, rename, dir fsync; 0600 / 0700
        st = os.stat(self.path)
        self._stat, self.version = (st.st_ino, st.st_mtime_ns, st.st_size), version
        if self._on_save is not None:
            self._on_save(version)

    # the audit log's external anchor (newest checkpoint), kept sealed with the users
    def save_anchor(self, n: int, head: str) -> None:
        self.audit_anchor = (n, head)
        self.save()

    def load_anchor(self) -> tuple[int, str] | None:
        return self.audit_anchor

    def role(self, name: str) -> Role:
        if name in BUILTIN_ROLES:
            return BUILTIN_ROLES[name]
        if name in self.roles:
            return self.roles[name]
        valid = ", ".join(sorted(set(BUILTIN_ROLES) | set(self.roles)))
        raise ConfigurationError(f"unknown role; known roles: {valid} (add one with store.add_role)")

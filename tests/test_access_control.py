"""Users, tokens, revocation and permission checks, each leaving an audit record."""

from __future__ import annotations

from pathlib import Path

import pytest

from securecmr.access import Permission, Role
from securecmr.access._control import AccessControl
from securecmr.errors import AuthenticationError, ConfigurationError, IntegrityError, PermissionDeniedError

SECRET = b"s" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_user_lifecycle_and_audit(tmp_path: Path) -> None:
    clock = Clock()
    ac = AccessControl(tmp_path, SECRET, clock=clock)
    token = ac.create_user("ana", role="reader", tenant="t1", attrs={"departments": ["neuro"]}, ttl_hours=1)
    user = ac.authenticate(token)
    assert (user.name, user.role, user.tenant) == ("ana", "reader", "t1")
    assert user.policy_context()["departments"] == ["neuro"]
    assert token not in (tmp_path / "users.sealed").read_bytes().decode("latin-1")
    # reopen: the registry is persisted and sealed
    ac.close()
    ac = AccessControl(tmp_path, SECRET, clock=clock)
    assert ac.authenticate(token).name == "ana"
    clock.now += 3601
    with pytest.raises(AuthenticationError, match="expired"):
        ac.authenticate(token)
    clock.now -= 3601
    ac.revoke_user("ana")
    with pytest.raises(AuthenticationError, match="revoked"):
        ac.authenticate(token)
    with pytest.raises(AuthenticationError):
        ac.authenticate("scmr1.forged.token")
    actions = [(r["action"], r["outcome"]) for r in ac.audit.records()]
    assert actions == [
        ("user.create", "allowed"),
        ("authenticate", "denied"),  # expired
        ("user.revoke", "allowed"),
        ("authenticate", "denied"),  # revoked
        ("authenticate", "denied"),  # forged
    ]
    ac.close()
    assert ac.audit.verify().records == 5


def test_wrong_secret_or_altered_registry(tmp_path: Path) -> None:
    ac = AccessControl(tmp_path, SECRET)
    ac.create_user("ana", role="reader")
    ac.close()
    with pytest.raises(IntegrityError, match="does not decrypt"):
        AccessControl(tmp_path, b"t" * 32)
    blob = bytearray((tmp_path / "users.sealed").read_bytes())
    blob[20] ^= 1
    (tmp_path / "users.sealed").write_bytes(bytes(blob))
    with pytest.raises(IntegrityError):
        AccessControl(tmp_path, SECRET)


def test_permissions_and_custom_roles(tmp_path: Path) -> None:
    ac = AccessControl(tmp_path, SECRET)
    reader = ac.authenticate(ac.create_user("rita", role="reader"))
    with pytest.raises(PermissionDeniedError, match="add"):
        ac.require(reader, Permission.ADD, action="add", collection="c")
    assert ac.require(reader, Permission.SEARCH, action="search").name == "reader"
    with pytest.raises(ConfigurationError, match="unknown role"):
        ac.create_user("x", role="wizard")
    ac.add_role(Role.create("triage", ["search", "add"], max_k=3))
    triage = ac.authenticate(ac.create_user("tom", role="triage"))
    assert ac.require(triage, Permission.ADD, action="add").max_k == 3
    with pytest.raises(PermissionDeniedError):
        ac.create_user("eve", role="admin", by=reader)
    admin_t1 = ac.authenticate(ac.create_user("adm", role="admin", tenant="t1"))
    with pytest.raises(PermissionDeniedError, match="own tenant"):
        ac.create_user("bob", role="reader", tenant="t2", by=admin_t1)
    ac.create_user("bob", role="reader", tenant="t1", by=admin_t1)
    with pytest.raises(ConfigurationError):
        ac.create_user("bad name", role="reader")
    with pytest.raises(ConfigurationError):
        ac.create_user("x", role="reader", attrs={"role": "admin"})
    denied = [r for r in ac.audit.records() if r["outcome"] == "denied"]
    assert len(denied) == 6  # add, wizard, eve, other tenant, bad name, reserved attr
    assert all(r["reason"] for r in denied)

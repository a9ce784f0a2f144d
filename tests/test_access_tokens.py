"""Signed tokens and roles (standalone)."""

from __future__ import annotations

import pytest

from securecmr.access import BUILTIN_ROLES, Permission, Role, ScorePrivacy, TokenSigner, token_hash
from securecmr.errors import AuthenticationError, ConfigurationError, PolicyError

KEY = b"k" * 32


def test_issue_verify_expire() -> None:
    signer = TokenSigner(KEY)
    token, claims = signer.issue("ana", now=100.0, ttl_seconds=60)
    assert signer.verify(token, now=159.0).subject == "ana"
    with pytest.raises(AuthenticationError, match="expired"):
        signer.verify(token, now=160.0)
    assert token not in repr(claims) and "k" * 32 not in repr(signer)
    assert len(token_hash(token)) == 64 and token_hash(token) != token


def test_forged_and_malformed_tokens() -> None:
    signer = TokenSigner(KEY)
    token, _ = signer.issue("ana", now=0.0, ttl_seconds=60)
    other, _ = TokenSigner(b"x" * 32).issue("ana", now=0.0, ttl_seconds=60)
    with pytest.raises(AuthenticationError, match="signature"):
        signer.verify(other, now=1.0)
    head, payload, tag = token.split(".")
    for bad in (
        payload,
        token + "x",
        f"{head}.{payload}.",
        "",
        None,
        42,
        "scmr1." + "a" * 5000,
        f"{head}.{payload[:-2]}AA.{tag}",
    ):
        with pytest.raises(AuthenticationError) as info:
            signer.verify(bad, now=1.0)
        assert token not in str(info.value)
    with pytest.raises(ConfigurationError):
        TokenSigner(b"short")


def test_roles() -> None:
    assert BUILTIN_ROLES["curator"].allows(Permission.DELETE)
    assert not BUILTIN_ROLES["reader"].allows(Permission.ADD)
    assert BUILTIN_ROLES["auditor"].allows(Permission.READ_AUDIT)
    assert not BUILTIN_ROLES["auditor"].allows(Permission.SEARCH)
    role = Role.create("triage", ["search"], policy="item.site in user.sites", max_k=5, round_to=0.05)
    assert Role.from_dict(role.to_dict()) == role
    with pytest.raises(ConfigurationError):
        Role.create("x", ["fly"])
    with pytest.raises(ConfigurationError):
        Role.create("bad name!", ["search"])
    with pytest.raises(PolicyError):
        Role.create("x", ["search"], policy="item.site ==")


def test_score_privacy() -> None:
    p = ScorePrivacy(round_to=0.1, near_duplicate=0.9)
    assert p.apply(1.0) == pytest.approx(0.9)
    assert p.apply(0.87) == pytest.approx(0.8)
    assert ScorePrivacy().apply(0.8765) == pytest.approx(0.8765)
    assert p.merge(ScorePrivacy(round_to=0.25)).round_to == 0.25
    with pytest.raises(ConfigurationError):
        ScorePrivacy(round_to=2.0)

"""Signed bearer tokens (HMAC-SHA256), with expiry; the store keeps only their hashes.

Format: ``scmr1.<payload>.<tag>``, both parts base64url without padding; the payload is compact
JSON ``{"sub": name, "iat": issued, "exp": expiry, "jti": random id}``. The tag is
HMAC-SHA256(signing key, ``scmr1.`` + payload). Verification is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from ..errors import AuthenticationError, ConfigurationError

__all__ = ["TokenClaims", "TokenSigner", "token_hash"]

_PREFIX = "scmr1."
_MAX_TOKEN_CHARS = 2048


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_hash(token: str) -> str:
    """The digest stored in place of a token (a token carries 128 random bits, so plain SHA-256 is safe)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    issued_at: float
    expires_at: float
    token_id: str

    def __repr__(self) -> str:
        return f"TokenClaims(subject={self.subject!r}, expires_at={self.expires_at})"


class TokenSigner:
    """Issue and check tokens with a secret key (at least 32 bytes). The key never appears in a repr."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) < 32:
            raise ConfigurationError("the token signing key must be at least 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "TokenSigner(<key hidden>)"

    def _tag(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()

    def issue(self, subject: str, *, now: float, ttl_seconds: float) -> tuple[str, TokenClaims]:
        if ttl_seconds <= 0:
            raise ConfigurationError("a token lifetime must be positive")
        claims = TokenClaims(subject, float(now), float(now) + float(ttl_seconds), secrets.token_hex(16))
        payload = json.dumps(
            {"sub": subject, "iat": claims.issued_at, "exp": claims.expires_at, "jti": claims.token_id},
            separators=(",", ":"),
            sort_keys=True,
        )
        body = _PREFIX + _b64e(payload.encode("utf-8"))
        return body + "." + _b64e(self._tag(body)), claims

    def verify(self, token: object, *, now: float) -> TokenClaims:
        """Check the signature and the expiry; raise AuthenticationError (never naming the token)."""
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS or not token.startswith(_PREFIX):
            raise AuthenticationError("malformed token; ask an admin for a new one")
        parts = token.split(".")
        if len(parts) != 3:
            raise AuthenticationError("malformed token; ask an admin for a new one")
        body = parts[0] + "." + parts[1]
        try:
            tag = _b64d(parts[2])
        except (ValueError, TypeError):
            raise AuthenticationError("malformed token; ask an admin for a new one") from None
        if not hmac.compare_digest(tag, self._tag(body)):
            raise AuthenticationError("token signature does not verify (forged, or issued by another store)")
        try:
            data = json.loads(_b64d(parts[1]))
            claims = TokenClaims(str(data["sub"]), float(data["iat"]), float(data["exp"]), str(data["jti"]))
        except (ValueError, KeyError, TypeError):
            raise AuthenticationError("malformed token; ask an admin for a new one") from None
        if now >= claims.expires_at:
            raise AuthenticationError("token expired; ask an admin for a new one")
        return claims

"""Registry bearer tokens (the Docker token protocol) as ES256 JWTs.

The signing key is generated at first start and stored in the database, so every replica signs and
verifies with the same key; a PEM file in the configuration replaces it.

PyJWT and cryptography are imported where they are used: an open registry (`--no-auth`) signs
nothing and never loads them, which keeps about 10 MiB out of each worker.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portside.errors import Unauthorized

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

ISSUER = "portside-token-service"
KEY_SETTING = "token_signing_key"


@dataclass(frozen=True, slots=True)
class Access:
    type: str
    name: str
    actions: frozenset[str]


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    access: tuple[Access, ...]
    expires_at: int

    def allows(self, type_: str, name: str, action: str) -> bool:
        return any(a.type == type_ and a.name == name and (action in a.actions or "*" in a.actions)
                   for a in self.access)


def generate_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def load_key_file(path: Path) -> str:
    return path.read_text()


def load_ec_key(private_key_pem: str) -> tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey]:
    """The P-256 key pair that signs tokens and portal sessions."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the signing key must be an EC P-256 private key")
    return key, key.public_key()


class TokenService:
    def __init__(self, private_key_pem: str, *, service: str, ttl_seconds: int) -> None:
        self._private, self._public = load_ec_key(private_key_pem)
        self.service = service
        self.ttl = ttl_seconds
        self._verified: dict[str, Claims] = {}

    def issue(self, subject: str, access: list[Access]) -> tuple[str, int, int]:
        import jwt

        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER, "sub": subject, "aud": self.service, "iat": now, "nbf": now - 1,
            "exp": now + self.ttl, "jti": secrets.token_hex(16),
            "access": [{"type": a.type, "name": a.name, "actions": sorted(a.actions)} for a in access],
        }
        return jwt.encode(claims, self._private, algorithm="ES256"), now, self.ttl

    def verify(self, token: str) -> Claims:
        cached = self._verified.get(token)
        if cached is not None and cached.expires_at > time.time():
            return cached
        import jwt

        try:
            raw = jwt.decode(token, self._public, algorithms=["ES256"], audience=self.service, issuer=ISSUER,
                             options={"require": ["exp", "sub", "aud", "iss"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the bearer token has expired; request a new one", error="invalid_token") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("the bearer token is invalid", error="invalid_token") from None
        access = tuple(
            Access(str(a.get("type")), str(a.get("name")), frozenset(map(str, a.get("actions") or [])))
            for a in raw.get("access") or [] if isinstance(a, dict)
        )
        claims = Claims(str(raw["sub"]), access, int(raw["exp"]))
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[token] = claims
        return claims

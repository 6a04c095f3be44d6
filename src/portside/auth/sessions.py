"""Portal sessions: a signed, expiring cookie naming the user, with a CSRF token bound to it.

Stateless (a JWT signed with the registry's key, for another audience), so every replica accepts
it; signing out clears the cookie and the session ends at its expiry.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from portside.auth.tokens import load_ec_key

AUDIENCE = "portside-portal"


@dataclass(frozen=True, slots=True)
class Session:
    subject: str
    csrf: str
    expires_at: int


class SessionService:
    def __init__(self, private_key_pem: str, *, ttl_seconds: int) -> None:
        self._private, self._public = load_ec_key(private_key_pem)  # PyJWT loads with it (see tokens.py)
        self.ttl = ttl_seconds

    def issue(self, subject: str) -> tuple[str, Session]:
        import jwt

        now = int(time.time())
        session = Session(subject, secrets.token_urlsafe(24), now + self.ttl)
        token = jwt.encode({"sub": subject, "aud": AUDIENCE, "iat": now, "exp": session.expires_at,
                            "csrf": session.csrf}, self._private, algorithm="ES256")
        return token, session

    def verify(self, token: str) -> Session | None:
        import jwt

        try:
            raw = jwt.decode(token, self._public, algorithms=["ES256"], audience=AUDIENCE,
                             options={"require": ["exp", "sub", "csrf"]})
        except jwt.InvalidTokenError:
            return None
        return Session(str(raw["sub"]), str(raw["csrf"]), int(raw["exp"]))

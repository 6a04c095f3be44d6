"""Portal sessions: a signed, expiring cookie naming the user by id, with a CSRF token bound to it.

Stateless (an HS256 JWT under a key of its own, generated at first start and kept in the database
beside the registry token key), so every replica accepts it and neither kind of token passes for
the other. The cookie carries the user's session generation: signing out, a password change or an
administrator flag change bumps it in the database, which ends every session of that user at once;
deleting the user ends them too.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

COOKIE = "sid"  # the portal session cookie (Harbor's name)
AUDIENCE = "portside-portal"
SESSION_KEY_SETTING = "session_signing_key"
_ALGORITHM = "HS256"


def generate_session_key() -> str:
    return secrets.token_urlsafe(48)


@dataclass(frozen=True, slots=True)
class Session:
    user_id: int
    generation: int
    csrf: str
    expires_at: int


class SessionService:
    def __init__(self, key: str, *, ttl_seconds: int) -> None:
        if len(key) < 32:
            raise ValueError("the session signing key is too short")
        self._key = key
        self.ttl = ttl_seconds

    def issue(self, user_id: int, generation: int) -> tuple[str, Session]:
        import jwt

        now = int(time.time())
        session = Session(user_id, generation, secrets.token_urlsafe(24), now + self.ttl)
        token = jwt.encode({"sub": str(user_id), "gen": generation, "aud": AUDIENCE, "iat": now,
                            "exp": session.expires_at, "csrf": session.csrf}, self._key, algorithm=_ALGORITHM)
        return token, session

    def verify(self, token: str) -> Session | None:
        """The session a cookie carries if its signature and expiry hold (its generation is the caller's
        to check against the account)."""
        import jwt

        try:
            raw = jwt.decode(token, self._key, algorithms=[_ALGORITHM], audience=AUDIENCE,
                             options={"require": ["exp", "sub", "gen", "csrf"]})
            return Session(int(raw["sub"]), int(raw["gen"]), str(raw["csrf"]), int(raw["exp"]))
        except (jwt.InvalidTokenError, TypeError, ValueError):
            return None

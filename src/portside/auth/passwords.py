"""Password and secret hashing with argon2id; verification is constant-time inside argon2."""

from __future__ import annotations

import secrets
import string
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher


@cache
def _hasher() -> PasswordHasher:
    """Made on first use, like its import: an open registry never hashes anything."""
    from argon2 import PasswordHasher

    return PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so timing does not reveal which usernames
    exist. Made on first use: an argon2 hash costs a quarter second that start-up need not pay."""
    return _hasher().hash(secrets.token_urlsafe(16))


def hash_secret(secret: str) -> str:
    return _hasher().hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        return _hasher().verify(stored_hash or _dummy_hash(), secret) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def generate_secret(length: int = 32) -> str:
    """A random secret that meets Harbor's password rules (upper, lower and digit)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if any(c.islower() for c in value) and any(c.isupper() for c in value) and any(c.isdigit() for c in value):
            return value


def check_password_strength(password: str) -> str | None:
    """Harbor's rule: 8-128 characters with at least one upper, one lower case letter and one digit."""
    if not 8 <= len(password) <= 128:
        return "password must be 8 to 128 characters long"
    if not (any(c.isupper() for c in password) and any(c.islower() for c in password)
            and any(c.isdigit() for c in password)):
        return "password must contain at least one uppercase letter, one lowercase letter and one digit"
    return None

"""Content digests (`algorithm:encoded`), as the OCI image spec defines them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from portside.errors import InvalidDigest

_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
# Registered algorithms and the exact shape of their encoded part.
_ENCODED = {
    "sha256": re.compile(r"^[a-f0-9]{64}$"),
    "sha512": re.compile(r"^[a-f0-9]{128}$"),
}
SUPPORTED_ALGORITHMS = frozenset(_ENCODED)


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    encoded: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Parse and validate; raises InvalidDigest with a reason a person can act on."""
        if not isinstance(value, str) or not _GRAMMAR.match(value):
            raise InvalidDigest(f"invalid digest {value!r}: expected algorithm:hex, e.g. sha256:<64 hex>")
        algorithm, encoded = value.split(":", 1)
        shape = _ENCODED.get(algorithm)
        if shape is None:
            raise InvalidDigest(
                f"unsupported digest algorithm {algorithm!r}: use one of {sorted(SUPPORTED_ALGORITHMS)}"
            )
        if not shape.match(encoded):
            raise InvalidDigest(f"invalid {algorithm} digest {value!r}: wrong length or non-lowercase-hex")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())


def looks_like_digest(reference: str) -> bool:
    """True when a manifest reference is meant as a digest rather than a tag (tags cannot hold ':')."""
    return ":" in reference


def new_hasher(algorithm: str) -> hashlib._Hash:
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise InvalidDigest(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)

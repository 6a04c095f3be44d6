"""Repository names and tags, checked against the distribution spec's grammar."""

from __future__ import annotations

import re

from portside.errors import InvalidName, InvalidTag
from portside.oci.digest import Digest, looks_like_digest

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
# Clients cap host + "/" + name at 255 characters; leave room for a host and port.
MAX_NAME_LENGTH = 229


def check_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"repository name is {len(name)} characters; the limit is {MAX_NAME_LENGTH}")
    if not NAME_RE.match(name):
        raise InvalidName(
            f"invalid repository name {name!r}: use lowercase letters, digits and separators (. _ __ -), "
            "in path components joined by '/'"
        )
    return name


def check_tag(tag: str) -> str:
    if not TAG_RE.match(tag):
        raise InvalidTag(
            f"invalid tag {tag!r}: up to 128 characters of letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-'"
        )
    return tag


def lookup_reference(reference: str) -> Digest | str | None:
    """What a manifest reference names when reading or deleting: a digest (a malformed one is refused), a
    tag, or None for a tag no manifest can be stored under: an unknown manifest rather than a bad request,
    as in Distribution; only a push names something new."""
    if looks_like_digest(reference):
        return Digest.parse(reference)
    return reference if TAG_RE.match(reference) else None

"""Domain errors. They know nothing about HTTP; each HTTP surface maps them to its own codes.

    PortsideError
    ├── InvalidName            repository name fails the OCI grammar
    ├── InvalidTag             tag fails the OCI grammar
    ├── InvalidDigest          malformed digest, unsupported algorithm
    ├── DigestMismatch         content does not hash to the declared digest
    ├── SizeMismatch           content length differs from what was declared
    ├── TooLarge               body over a configured limit
    ├── RepositoryUnknown
    ├── BlobUnknown
    ├── UploadUnknown
    ├── UploadInvalid          upload cannot be completed as asked
    │   └── UploadRangeInvalid chunk does not start where the upload ends
    ├── ManifestUnknown
    ├── ManifestInvalid        unparsable or inconsistent manifest
    │   └── ManifestBlobUnknown  manifest names content the repository lacks
    ├── ManifestNotAcceptable  stored type not in the client's Accept list
    ├── InUse                  deleting would break something that still refers to it
    │   ├── BlobInUse          a manifest of the repository still uses the blob
    │   └── NotEmpty           deleting a container (a project) that still holds something
    ├── Unauthorized           no or bad credentials: the client should authenticate
    ├── Denied                 authenticated, but not allowed
    │   ├── TagImmutable       an immutable tag rule protects the tag (no re-tag, no delete)
    │   └── QuotaExceeded      the push would take a project over its storage limit
    ├── Conflict               the resource already exists or changed underneath
    ├── NotFound               a management resource (project, user, robot...) is unknown
    ├── Invalid                a management request's field is wrong
    ├── Unsupported
    └── TooManyRequests        over a rate or concurrency limit
"""

from __future__ import annotations

from typing import Any


class PortsideError(Exception):
    """Base class: `message` is meant for a person; `detail` is optional structured context."""

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidName(PortsideError):
    pass


class InvalidTag(PortsideError):
    pass


class InvalidDigest(PortsideError):
    pass


class DigestMismatch(PortsideError):
    pass


class SizeMismatch(PortsideError):
    pass


class TooLarge(PortsideError):
    pass


class RepositoryUnknown(PortsideError):
    pass


class BlobUnknown(PortsideError):
    pass


class UploadUnknown(PortsideError):
    pass


class UploadInvalid(PortsideError):
    pass


class UploadRangeInvalid(UploadInvalid):
    def __init__(self, message: str, current_size: int) -> None:
        super().__init__(message)
        self.current_size = current_size


class ManifestUnknown(PortsideError):
    pass


class ManifestInvalid(PortsideError):
    pass


class ManifestBlobUnknown(ManifestInvalid):
    pass


class ManifestNotAcceptable(PortsideError):
    pass


class InUse(PortsideError):
    pass


class BlobInUse(InUse):
    pass


class NotEmpty(InUse):
    pass


class Unsupported(PortsideError):
    pass


class TooManyRequests(PortsideError):
    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unauthorized(PortsideError):
    """`scope` is what the client should ask a token for; `error` follows RFC 6750 (e.g. insufficient_scope)."""

    def __init__(self, message: str, scope: str | None = None, error: str | None = None) -> None:
        super().__init__(message)
        self.scope = scope
        self.error = error


class Denied(PortsideError):
    pass


class TagImmutable(Denied):
    pass


class QuotaExceeded(Denied):
    pass


class Conflict(PortsideError):
    pass


class WriteConflict(Conflict):
    """A write broke a unique or reference rule of the database: usually a concurrent writer got there first."""


class NotFound(PortsideError):
    pass


class Invalid(PortsideError):
    pass

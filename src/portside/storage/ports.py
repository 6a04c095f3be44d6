"""The blob store contract every backend implements.

A blob store holds committed content by digest and in-progress uploads by id. Uploads are
append-only byte streams hashed as they arrive; `verify_upload` checks the digest and
`publish_upload` makes the content visible atomically, so a failed or interrupted write never shows partial data.
An upload's session (which repository it is for) lives beside its bytes, not in the database: opening
an upload costs no database write, and the session ends with its bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from portside.oci.digest import Digest


@dataclass(frozen=True, slots=True)
class UploadSession:
    """What a resumable upload was opened for. It never changes while the upload exists."""

    repository: str
    algorithm: str
    started_at: datetime


class BlobStore(Protocol):
    name: str

    async def stat(self, digest: Digest) -> int | None:
        """Size of committed content, or None when absent."""

    def local_path(self, digest: Digest) -> Path | None:
        """A path the server may send with zero copy, when the backend is a local filesystem."""

    async def redirect_url(self, digest: Digest) -> str | None:
        """A URL clients may fetch directly (pre-signed object storage), or None to serve ourselves."""

    def read(self, digest: Digest, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream committed content; raises BlobUnknown when absent."""

    async def put_bytes(self, digest: Digest, data: bytes) -> None:
        """Store small content whose digest the caller has already verified (under the row lock, as above)."""

    async def delete(self, digest: Digest) -> bool:
        """Remove committed content; True when something was removed."""

    def iter_digests(self) -> AsyncIterator[tuple[Digest, int, float]]:
        """Every committed blob with its size and modification time (for garbage collection)."""

    async def create_upload(self, upload_id: str, session: UploadSession | None = None) -> None:
        """Start an empty upload; a resumable one keeps its `session` beside its bytes."""

    async def upload_session(self, upload_id: str) -> UploadSession | None:
        """The session an upload was started with; None when it is unknown, finished or cancelled
        (or was started without one)."""

    async def upload_size(self, upload_id: str) -> int:
        """Bytes received so far; raises UploadUnknown."""

    async def append(
        self, upload_id: str, algorithm: str, chunks: AsyncIterable[bytes], expected_offset: int | None
    ) -> int:
        """Append a stream; with `expected_offset`, refuse (UploadRangeInvalid) unless it equals the
        current size. On a broken stream the upload is rolled back to its previous size. Returns the new size."""

    async def verify_upload(self, upload_id: str, algorithm: str, expected: Digest) -> int:
        """Check the upload hashes to `expected` and make its bytes durable; returns its size.
        On DigestMismatch the upload is discarded."""

    async def publish_upload(self, upload_id: str, digest: Digest, size: int) -> None:
        """Make a verified upload the committed content of `digest`, atomically (replacing any copy),
        and end the upload; refuse (UploadInvalid) if it no longer has the verified `size`. Callers hold
        the blob's metadata row lock, so garbage collection of the same digest cannot interleave."""

    async def cancel_upload(self, upload_id: str) -> None:
        """Discard an upload (idempotent)."""

    def iter_uploads(self) -> AsyncIterator[tuple[str, float]]:
        """Upload ids with the time they last received bytes (for purging abandoned uploads)."""

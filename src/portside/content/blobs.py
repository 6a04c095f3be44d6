"""Blobs as a repository sees them: linked content, mounts and deletes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from portside.errors import BlobInUse, BlobUnknown, RepositoryUnknown
from portside.metadata.queries import RegistryQueries
from portside.oci.digest import Digest
from portside.storage.ports import BlobStore

if TYPE_CHECKING:
    from portside.lifecycle.quotas import QuotaService


class BlobService:
    def __init__(self, store: BlobStore, queries: RegistryQueries, quotas: QuotaService | None = None) -> None:
        self.store = store
        self.queries = queries
        self.quotas = quotas

    async def size(self, name: str, digest: Digest) -> int:
        size = await self.queries.blob_size_in_repository(name, str(digest))
        if size is None:
            raise BlobUnknown(f"blob {digest} is not in repository {name}")
        return size

    def local_path(self, digest: Digest) -> Path | None:
        return self.store.local_path(digest)

    async def redirect_url(self, digest: Digest) -> str | None:
        return await self.store.redirect_url(digest)

    async def mount(self, name: str, digest: Digest, source: str) -> bool:
        """Link a blob another repository holds; False when it cannot (the caller then uploads)."""
        async with self.queries.db.write(access=False) as conn:  # content only
            source_id = await self.queries.repository_id(conn, source)
            if source_id is None:
                return False
            if self.quotas is not None:  # before the blob row lock, as every push takes them
                size = await self.queries.blob_size(conn, str(digest))
                if size is None:
                    return False
                await self.quotas.check_blob(conn, name, str(digest), size)
            # Exclusive: link_blob below updates the row, and two mounts holding it shared would deadlock.
            found = await self.queries.linked_digests(conn, source_id, [str(digest)], exclusive=True)
            if str(digest) not in found or await self.store.stat(digest) is None:
                return False
            await self.queries.link_blob(conn, name, str(digest), found[str(digest)])
        return True

    async def delete(self, name: str, digest: Digest) -> None:
        async with self.queries.db.write() as conn:
            repo_id = await self.queries.repository_id(conn, name)
            if repo_id is None:
                raise RepositoryUnknown(f"repository {name} is not known to the registry")
            await self.queries.lock_blobs(conn, [str(digest)], exclusive=True)  # after a push naming it commits
            users = await self.queries.blob_users(conn, repo_id, str(digest))
            if users:
                raise BlobInUse(
                    f"blob {digest} is used by manifest(s) {', '.join(users)} in {name}; delete those first"
                )
            if not await self.queries.unlink_blob(conn, repo_id, str(digest)):
                raise BlobUnknown(f"blob {digest} is not in repository {name}")

"""Manifests: validated pushes, lookups by tag or digest, deletes that keep references whole."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from portside.errors import (
    DigestMismatch,
    InUse,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    RepositoryUnknown,
    TooLarge,
)
from portside.metadata.queries import RegistryQueries, StoredManifest, now
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest, looks_like_digest
from portside.oci.manifest import ParsedManifest, parse_manifest
from portside.oci.names import check_tag, lookup_reference
from portside.storage.ports import BlobStore

if TYPE_CHECKING:
    from portside.lifecycle.immutability import ImmutabilityService
    from portside.lifecycle.quotas import QuotaService


@dataclass(frozen=True, slots=True)
class PushResult:
    digest: str
    subject: str | None
    tags: tuple[str, ...]


class ManifestService:
    def __init__(self, store: BlobStore, queries: RegistryQueries, *, max_size: int,
                 immutability: ImmutabilityService | None = None, quotas: QuotaService | None = None) -> None:
        self.store = store
        self.queries = queries
        self.max_size = max_size
        self.immutability = immutability  # refuses moving or deleting immutable tags
        self.quotas = quotas  # refuses a push that would take its project over its storage limit
        self._pulls: dict[int, datetime] = {}

    async def get(self, name: str, reference: str) -> StoredManifest:
        ref = lookup_reference(reference)
        if isinstance(ref, Digest):
            found = await self.queries.manifest_by_digest(name, str(ref))
        else:
            found = None if ref is None else await self.queries.manifest_by_tag(name, ref)
        if found is None:
            raise ManifestUnknown(f"manifest {reference} is not in repository {name}")
        return found

    def record_pull(self, manifest_id: int) -> None:
        """Remember a pull; `flush_pulls` writes them in one batch so GETs stay read-only."""
        self._pulls[manifest_id] = now()

    async def flush_pulls(self) -> None:
        if self._pulls:
            pulls, self._pulls = self._pulls, {}
            await self.queries.record_pulls(pulls)

    async def put(
        self, name: str, reference: str, body: bytes, content_type: str | None, extra_tags: tuple[str, ...] = ()
    ) -> PushResult:
        if len(body) > self.max_size:
            raise TooLarge(f"manifest is {len(body)} bytes; the limit is {self.max_size}")
        parsed = parse_manifest(body, content_type)
        if looks_like_digest(reference):
            wanted = Digest.parse(reference)
            digest = str(Digest.of(body, wanted.algorithm))
            if digest != str(wanted):
                raise DigestMismatch(f"manifest body has digest {digest}, not {wanted} as the URL says")
            new_tags = tuple(check_tag(t) for t in extra_tags)
        else:
            digest = str(Digest.of(body))
            new_tags = (check_tag(reference),)

        async with self.queries.db.write(access=False) as conn:  # content only
            if self.quotas is not None:  # first: it locks the project row, before any blob row
                await self.quotas.check_manifest(conn, name, digest, len(body), parsed)
            repo_id = await self.queries.ensure_repository(conn, name)
            if parsed.config is not None and parsed.config.digest == mt.EMPTY_JSON_DIGEST:
                await self._ensure_empty_blob(conn, name)  # in this transaction: a refused push links nothing
            await self._check_references(conn, repo_id, parsed)
            references = [(d.digest, "blob") for d in parsed.blobs] + [(d.digest, "manifest") for d in parsed.children]
            manifest_id = await self.queries.store_manifest(
                conn, repo_id, digest=digest, media_type=parsed.media_type, content=body,
                artifact_type=parsed.artifact_type, subject=parsed.subject.digest if parsed.subject else None,
                annotations=parsed.annotations or None, references=references,
            )
            if self.immutability is not None:
                await self.immutability.check_retag(conn, repo_id, name, new_tags, manifest_id)
            for tag in new_tags:
                await self.queries.set_tag(conn, repo_id, tag, manifest_id)
        return PushResult(digest, parsed.subject.digest if parsed.subject else None, new_tags)

    async def _check_references(self, conn: AsyncConnection, repo_id: int, parsed: ParsedManifest) -> None:
        have = await self.queries.linked_digests(conn, repo_id, (d.digest for d in parsed.blobs))
        missing = [d.digest for d in parsed.blobs if d.digest not in have]
        if missing:
            raise ManifestBlobUnknown(
                f"manifest references blob(s) not pushed to this repository: {', '.join(missing)}",
                detail=[{"digest": d} for d in missing],
            )
        for d in parsed.blobs:
            if have[d.digest] != d.size:
                raise ManifestInvalid(
                    f"descriptor for {d.digest} says {d.size} bytes but the blob has {have[d.digest]}"
                )
        children = {d.digest for d in parsed.children}
        present = await self.queries.existing_manifests(conn, repo_id, children)
        absent = sorted(children - present)
        if absent:
            raise ManifestBlobUnknown(
                f"index references manifest(s) not in this repository: {', '.join(absent)}",
                detail=[{"digest": d} for d in absent],
            )

    async def _ensure_empty_blob(self, conn: AsyncConnection, name: str) -> None:
        digest = Digest.parse(mt.EMPTY_JSON_DIGEST)
        await self.queries.link_blob(conn, name, str(digest), len(mt.EMPTY_JSON))
        await self.store.put_bytes(digest, mt.EMPTY_JSON)

    async def delete(self, name: str, reference: str) -> None:
        async with self.queries.db.write() as conn:
            repo_id = await self.queries.repository_id(conn, name)
            if repo_id is None:
                raise RepositoryUnknown(f"repository {name} is not known to the registry")
            ref = lookup_reference(reference)
            if ref is None:
                raise ManifestUnknown(f"manifest {reference} is not in repository {name}")
            if isinstance(ref, str):
                if self.immutability is not None:
                    await self.immutability.check_tag_delete(conn, repo_id, name, ref)
                if not await self.queries.delete_tag(conn, repo_id, ref):
                    raise ManifestUnknown(f"tag {reference} is not in repository {name}")
                return
            digest = str(ref)
            manifest_id = await self.queries.manifest_id(conn, repo_id, digest)
            if manifest_id is None:
                raise ManifestUnknown(f"manifest {digest} is not in repository {name}")
            parents = await self.queries.parent_indexes(conn, repo_id, digest)
            if parents:
                raise InUse(
                    f"manifest {digest} is listed by index(es) {', '.join(parents)} in {name}; "
                    "delete the index first"
                )
            if self.immutability is not None:
                await self.immutability.check_manifest_delete(conn, repo_id, name, manifest_id, digest)
            await self.queries.delete_manifest(conn, manifest_id)


async def flush_pulls_forever(service: ManifestService, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await service.flush_pulls()
        except Exception:  # a busy database must not stop the loop; the next tick retries
            logging.getLogger("portside").exception("could not record pull times")

"""The queries garbage collection runs. Deleting a blob happens in one transaction that first locks
the blob row (PostgreSQL `FOR UPDATE`; SQLite serializes writers anyway), the same row that pushes
lock while they link the blob, so a blob being linked is never collected."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Exists, Select

from portside.metadata.database import Database
from portside.metadata.models import Blob, Manifest, ManifestReference, Repository, RepositoryBlob, Tag, table

blobs = table(Blob)
links = table(RepositoryBlob)
manifests = table(Manifest)
refs = table(ManifestReference)
tags = table(Tag)
repos = table(Repository)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class UntaggedManifest:
    id: int
    repository: str
    digest: str
    size: int


def _referenced_in_repo(digest_col: ColumnElement[Any], repo_col: ColumnElement[Any]) -> Exists:
    """EXISTS: a manifest of that repository names the blob."""
    return exists().where(
        refs.c.digest == digest_col, refs.c.kind == "blob", manifests.c.id == refs.c.manifest_id,
        manifests.c.repository_id == repo_col,
    )


def _collectable_manifests(cutoff: datetime) -> Select[tuple[int, str, str, int]]:
    """Untagged manifests pushed before the cutoff that no index of their repository lists and that
    are not attached (as referrers) to a manifest still present."""
    child = refs.alias("child")
    parent = manifests.alias("parent")
    subject = manifests.alias("subject")
    return (
        select(manifests.c.id, repos.c.name, manifests.c.digest, manifests.c.size)
        .select_from(manifests.join(repos, repos.c.id == manifests.c.repository_id))
        .where(
            manifests.c.pushed_at < cutoff,
            ~exists().where(tags.c.manifest_id == manifests.c.id),
            ~exists().where(child.c.digest == manifests.c.digest, child.c.kind == "manifest",
                            parent.c.id == child.c.manifest_id,
                            parent.c.repository_id == manifests.c.repository_id),
            or_(manifests.c.subject_digest.is_(None),
                ~exists().where(subject.c.repository_id == manifests.c.repository_id,
                                subject.c.digest == manifests.c.subject_digest)),
        )
    )


class GcQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def untagged_manifests(self, cutoff: datetime) -> list[UntaggedManifest]:
        async with self.db.read() as conn:
            return [UntaggedManifest(r.id, r.name, r.digest, r.size)
                    for r in await conn.execute(_collectable_manifests(cutoff).order_by(manifests.c.id))]

    async def delete_if_still_untagged(self, manifest_id: int, cutoff: datetime) -> bool:
        """Delete a listed manifest if it is still collectable. Its row is locked first and the
        conditions re-checked in a statement of their own, so whatever committed since the listing
        (a tag, an index naming it, the same manifest pushed again) is seen; a push that names it
        later waits for this transaction and then finds it gone."""
        async with self.db.write() as conn:
            locked = (await conn.execute(
                select(manifests.c.id).where(manifests.c.id == manifest_id).with_for_update())).first()
            if locked is None:
                return False
            query = _collectable_manifests(cutoff).where(manifests.c.id == manifest_id)
            if (await conn.execute(query)).first() is None:
                return False
            await conn.execute(delete(refs).where(refs.c.manifest_id == manifest_id))
            result = await conn.execute(delete(manifests).where(manifests.c.id == manifest_id))
            return bool(result.rowcount)

    async def candidate_digests(self, cutoff: datetime) -> list[str]:
        """Blobs that may be collectable: linked somewhere without a manifest there naming them, or
        linked nowhere at all."""
        unreferenced_link = select(links.c.digest).where(
            links.c.linked_at < cutoff, ~_referenced_in_repo(links.c.digest, links.c.repository_id))
        unlinked_blob = select(blobs.c.digest).where(
            ~exists().where(links.c.digest == blobs.c.digest),
            func.coalesce(blobs.c.last_linked_at, blobs.c.created_at) < cutoff)
        async with self.db.read() as conn:
            found = {r[0] for r in await conn.execute(unreferenced_link.union(unlinked_blob))}
        return sorted(found)

    async def known_digests(self) -> set[str]:
        async with self.db.read() as conn:
            return {r[0] for r in await conn.execute(select(blobs.c.digest))}

    async def adopt_orphan(self, digest: str, size: int) -> None:
        """Give a file with no row an old row, so the locked delete below decides its fate. A push that
        published the file and has not committed its row yet wins: ON CONFLICT DO NOTHING waits for
        it and then leaves its row alone (a plain insert would fail the whole run)."""
        insert = self.db.insert
        async with self.db.write() as conn:
            await conn.execute(insert(blobs).values(digest=digest, size=size, created_at=EPOCH, last_linked_at=EPOCH)
                               .on_conflict_do_nothing(index_elements=["digest"]))

    async def lock_blob(self, conn: AsyncConnection, digest: str) -> tuple[int, datetime] | None:
        query = select(blobs.c.size, func.coalesce(blobs.c.last_linked_at, blobs.c.created_at)).where(
            blobs.c.digest == digest).with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            return None
        ts = row[1] if row[1].tzinfo else row[1].replace(tzinfo=UTC)
        return int(row[0]), ts

    async def drop_unreferenced_links(self, conn: AsyncConnection, digest: str, cutoff: datetime) -> int:
        result = await conn.execute(delete(links).where(
            links.c.digest == digest, links.c.linked_at < cutoff,
            ~_referenced_in_repo(links.c.digest, links.c.repository_id)))
        return int(result.rowcount or 0)

    async def count_unreferenced_links(self, conn: AsyncConnection, digest: str, cutoff: datetime) -> int:
        query = select(func.count()).select_from(links).where(
            links.c.digest == digest, links.c.linked_at < cutoff,
            ~_referenced_in_repo(links.c.digest, links.c.repository_id))
        return int((await conn.execute(query)).scalar_one())

    async def has_links(self, conn: AsyncConnection, digest: str) -> bool:
        return (await conn.execute(select(links.c.digest).where(links.c.digest == digest).limit(1))).first() is not None

    async def delete_blob_row(self, conn: AsyncConnection, digest: str) -> None:
        await conn.execute(delete(blobs).where(blobs.c.digest == digest))


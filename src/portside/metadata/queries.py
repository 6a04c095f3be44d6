"""The registry's reads and writes, in SQLAlchemy Core (no ORM overhead on hot paths).

Every write method takes the open transaction from `Database.write()` so a service can group
several steps into one atomic change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from portside.metadata.database import Database
from portside.metadata.models import (
    Blob,
    Manifest,
    ManifestReference,
    Project,
    Repository,
    RepositoryBlob,
    Tag,
    table,
)
from portside.metadata.readcache import ReadCache

if TYPE_CHECKING:
    from sqlalchemy.dialects.sqlite import Insert  # PostgreSQL's has the same ON CONFLICT methods

repos = table(Repository)
projects = table(Project)
blobs = table(Blob)
links = table(RepositoryBlob)
manifests = table(Manifest)
refs = table(ManifestReference)
tags = table(Tag)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class StoredManifest:
    id: int
    digest: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class ReferrerRow:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] | None


class _PushStatements:
    """Statements every blob push runs, built once with bound parameters: building a statement per
    call, and the cache key SQLAlchemy then derives from it, cost more than SQLite running it."""

    def __init__(self, insert: Callable[[Any], Insert]) -> None:
        self.repository_id = select(repos.c.id).where(repos.c.name == bindparam("name"))
        ts = bindparam("ts", type_=blobs.c.created_at.type)
        upsert_blob = insert(blobs).values(digest=bindparam("digest"), size=bindparam("size"),
                                           created_at=ts, last_linked_at=ts)
        self.upsert_blob = upsert_blob.on_conflict_do_update(
            index_elements=["digest"], set_={"last_linked_at": upsert_blob.excluded.last_linked_at})
        # The link, naming its repository by name: no row when the repository does not exist yet.
        source = select(repos.c.id, bindparam("digest", type_=links.c.digest.type),
                        bindparam("ts", type_=links.c.linked_at.type)).where(repos.c.name == bindparam("name"))
        link = insert(links).from_select(["repository_id", "digest", "linked_at"], source)
        self.link_by_name = link.on_conflict_do_update(
            index_elements=["repository_id", "digest"], set_={"linked_at": link.excluded.linked_at},
        ).execution_options(preserve_rowcount=True)  # the caller reads it; SQLAlchemy keeps it for UPDATE/DELETE only


class RegistryQueries:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.cache = ReadCache(db.changes)
        self._insert = db.insert
        self._prepared = _PushStatements(db.insert)

    def _bytewise(self, column: ColumnElement[str]) -> ColumnElement[str]:
        """Order names ASCIIbetically, as the spec asks, whatever the PostgreSQL database's collation."""
        return column.collate("C") if self.db.dialect == "postgresql" else column

    # -- repositories --------------------------------------------------------------------------

    async def repository_id(self, conn: AsyncConnection, name: str) -> int | None:
        return (await conn.execute(self._prepared.repository_id, {"name": name})).scalar()

    async def ensure_repository(self, conn: AsyncConnection, name: str) -> int:
        existing = await self.repository_id(conn, name)  # the usual case: one statement, not two
        if existing is not None:
            return existing
        ts = now()
        project = name.partition("/")[0] if "/" in name else None
        project_id = (
            select(projects.c.id).where(projects.c.name == project).scalar_subquery() if project else None
        )
        stmt = self._insert(repos).values(name=name, project_id=project_id, created_at=ts, updated_at=ts,
                                          pull_count=0)
        await conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
        repo_id = await self.repository_id(conn, name)
        assert repo_id is not None
        return repo_id

    async def list_repositories(self, limit: int | None, last: str | None,
                                project_ids: set[int] | None = None) -> list[str]:
        name = self._bytewise(repos.c.name)
        query = select(repos.c.name).order_by(name)
        if project_ids is not None:
            query = query.where(repos.c.project_id.in_(sorted(project_ids)))
        if last:
            query = query.where(name > last)
        if limit is not None:
            query = query.limit(limit)
        async with self.db.read() as conn:
            return list((await conn.execute(query)).scalars())

    # -- blobs ---------------------------------------------------------------------------------

    async def blob_size_in_repository(self, name: str, digest: str) -> int | None:
        key = ("blob_size_in_repository", name, digest)
        return await self.cache.get_or_load(key, lambda: self._blob_size_in_repository(name, digest))

    async def _blob_size_in_repository(self, name: str, digest: str) -> int | None:
        query = (
            select(blobs.c.size)
            .select_from(repos.join(links, links.c.repository_id == repos.c.id).join(
                blobs, blobs.c.digest == links.c.digest))
            .where(repos.c.name == name, links.c.digest == digest)
        )
        async with self.db.read() as conn:
            return (await conn.execute(query)).scalar()

    async def blob_size(self, conn: AsyncConnection, digest: str) -> int | None:
        return (await conn.execute(select(blobs.c.size).where(blobs.c.digest == digest))).scalar()

    async def link_blob(self, conn: AsyncConnection, name: str, digest: str, size: int) -> None:
        ts = now()
        # Upsert: on an existing row this takes its lock (PostgreSQL), which garbage collection
        # also takes before deleting, so linking and collecting one digest never interleave.
        await conn.execute(self._prepared.upsert_blob, {"digest": digest, "size": size, "ts": ts})
        link = {"name": name, "digest": digest, "ts": ts}
        if (await conn.execute(self._prepared.link_by_name, link)).rowcount == 0:  # a new repository
            await self.ensure_repository(conn, name)
            await conn.execute(self._prepared.link_by_name, link)

    async def unlink_blob(self, conn: AsyncConnection, repo_id: int, digest: str) -> bool:
        result = await conn.execute(
            delete(links).where(links.c.repository_id == repo_id, links.c.digest == digest)
        )
        return bool(result.rowcount)

    async def blob_users(self, conn: AsyncConnection, repo_id: int, digest: str) -> list[str]:
        """Digests of manifests in the repository that name this blob."""
        query = (
            select(manifests.c.digest)
            .select_from(refs.join(manifests, manifests.c.id == refs.c.manifest_id))
            .where(manifests.c.repository_id == repo_id, refs.c.digest == digest, refs.c.kind == "blob")
            .limit(5)
        )
        return list((await conn.execute(query)).scalars())

    async def lock_blobs(self, conn: AsyncConnection, digests: Iterable[str], *, exclusive: bool = False) -> None:
        """Lock blob rows until the transaction ends (PostgreSQL; SQLite runs one writer at a time):
        shared to hold off garbage collection, which takes them FOR UPDATE before it drops a link or
        deletes a blob; exclusive (NO KEY UPDATE) for a caller that will update the row itself, so
        that two of them never both hold it shared and deadlock upgrading. Sorted, for one order."""
        if self.db.dialect != "postgresql":
            return
        query = select(blobs.c.digest).where(blobs.c.digest.in_(sorted(set(digests)))).order_by(blobs.c.digest)
        await conn.execute(query.with_for_update(key_share=True) if exclusive else query.with_for_update(read=True))

    async def linked_digests(
        self, conn: AsyncConnection, repo_id: int, digests: Iterable[str], *, exclusive: bool = False
    ) -> dict[str, int]:
        """Of these digests, the ones linked into the repository (with their sizes), their blob rows
        locked until the transaction ends so garbage collection cannot take them meanwhile.

        Lock first, then read the links in a statement of its own: a single locking join that waited
        for garbage collection would re-check the blob row alone and still return the link the
        collection just dropped (from the join's older snapshot), and the push would name a blob its
        repository no longer holds."""
        wanted = sorted(set(digests))
        if not wanted:
            return {}
        await self.lock_blobs(conn, wanted, exclusive=exclusive)
        query = (
            select(blobs.c.digest, blobs.c.size)
            .select_from(links.join(blobs, blobs.c.digest == links.c.digest))
            .where(links.c.repository_id == repo_id, links.c.digest.in_(wanted))
        )
        return {row.digest: row.size for row in await conn.execute(query)}

    # -- manifests -----------------------------------------------------------------------------

    async def manifest_by_tag(self, name: str, tag: str) -> StoredManifest | None:
        key = ("manifest_by_tag", name, tag)
        return await self.cache.get_or_load(key, lambda: self._manifest_by_tag(name, tag))

    async def _manifest_by_tag(self, name: str, tag: str) -> StoredManifest | None:
        query = (
            select(manifests.c.id, manifests.c.digest, manifests.c.media_type, manifests.c.content)
            .select_from(repos.join(tags, tags.c.repository_id == repos.c.id).join(
                manifests, manifests.c.id == tags.c.manifest_id))
            .where(repos.c.name == name, tags.c.name == tag)
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        return StoredManifest(row.id, row.digest, row.media_type, row.content) if row else None

    async def manifest_by_digest(self, name: str, digest: str) -> StoredManifest | None:
        key = ("manifest_by_digest", name, digest)
        return await self.cache.get_or_load(key, lambda: self._manifest_by_digest(name, digest))

    async def _manifest_by_digest(self, name: str, digest: str) -> StoredManifest | None:
        query = (
            select(manifests.c.id, manifests.c.digest, manifests.c.media_type, manifests.c.content)
            .select_from(repos.join(manifests, manifests.c.repository_id == repos.c.id))
            .where(repos.c.name == name, manifests.c.digest == digest)
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        return StoredManifest(row.id, row.digest, row.media_type, row.content) if row else None

    async def existing_manifests(self, conn: AsyncConnection, repo_id: int, digests: Iterable[str]) -> set[str]:
        wanted = list(set(digests))
        if not wanted:
            return set()
        query = select(manifests.c.digest).where(
            manifests.c.repository_id == repo_id, manifests.c.digest.in_(wanted)
        ).with_for_update(read=True, key_share=True)  # KEY SHARE: garbage collection cannot delete them meanwhile
        return set((await conn.execute(query)).scalars())

    async def store_manifest(
        self,
        conn: AsyncConnection,
        repo_id: int,
        *,
        digest: str,
        media_type: str,
        content: bytes,
        artifact_type: str | None,
        subject: str | None,
        annotations: dict[str, str] | None,
        references: Sequence[tuple[str, str]],
    ) -> int:
        """Insert the manifest (a no-op when the same bytes are already there) and return its id."""
        ts = now()
        insert_new = self._insert(manifests).values(
            repository_id=repo_id, digest=digest, media_type=media_type, content=content, size=len(content),
            artifact_type=artifact_type, subject_digest=subject,
            annotations=json.dumps(annotations) if annotations else None, pushed_at=ts,
        ).on_conflict_do_nothing(index_elements=["repository_id", "digest"]).returning(manifests.c.id)
        while True:
            manifest_id = (await conn.execute(insert_new)).scalar()  # None: the same bytes are there already
            if manifest_id is not None:
                break
            existing = (await conn.execute(
                update(manifests).where(manifests.c.repository_id == repo_id, manifests.c.digest == digest)
                .values(pushed_at=ts).returning(manifests.c.id))).scalar()
            if existing is not None:
                return int(existing)
            # Deleted (by garbage collection) between the two statements: store it afresh.
        if references:
            await conn.execute(
                self._insert(refs).on_conflict_do_nothing(),
                [{"manifest_id": manifest_id, "digest": d, "kind": k} for d, k in set(references)],
            )
        await conn.execute(update(repos).where(repos.c.id == repo_id).values(updated_at=ts))
        return int(manifest_id)

    async def set_tag(self, conn: AsyncConnection, repo_id: int, tag: str, manifest_id: int) -> None:
        ts = now()
        stmt = self._insert(tags).values(repository_id=repo_id, name=tag, manifest_id=manifest_id, updated_at=ts)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["repository_id", "name"], set_={"manifest_id": manifest_id, "updated_at": ts}))

    async def delete_tag(self, conn: AsyncConnection, repo_id: int, tag: str) -> bool:
        result = await conn.execute(delete(tags).where(tags.c.repository_id == repo_id, tags.c.name == tag))
        return bool(result.rowcount)

    async def manifest_id(self, conn: AsyncConnection, repo_id: int, digest: str) -> int | None:
        return (await conn.execute(select(manifests.c.id).where(
            manifests.c.repository_id == repo_id, manifests.c.digest == digest))).scalar()

    async def parent_indexes(self, conn: AsyncConnection, repo_id: int, digest: str) -> list[str]:
        query = (
            select(manifests.c.digest)
            .select_from(refs.join(manifests, manifests.c.id == refs.c.manifest_id))
            .where(manifests.c.repository_id == repo_id, refs.c.digest == digest, refs.c.kind == "manifest")
            .limit(5)
        )
        return list((await conn.execute(query)).scalars())

    async def delete_manifest(self, conn: AsyncConnection, manifest_id: int) -> None:
        # Explicit child deletes: SQLite only cascades with foreign_keys on, and we do not rely on it.
        await conn.execute(delete(tags).where(tags.c.manifest_id == manifest_id))
        await conn.execute(delete(refs).where(refs.c.manifest_id == manifest_id))
        await conn.execute(delete(manifests).where(manifests.c.id == manifest_id))

    async def record_pulls(self, pulls: dict[int, datetime]) -> None:
        async with self.db.write(content=False) as conn:
            for manifest_id, ts in sorted(pulls.items()):
                await conn.execute(update(manifests).where(manifests.c.id == manifest_id).values(pulled_at=ts))

    # -- tags and referrers --------------------------------------------------------------------

    async def list_tags(self, name: str, limit: int | None, last: str | None) -> list[str] | None:
        async with self.db.read() as conn:
            repo_id = await self.repository_id(conn, name)
            if repo_id is None:
                return None
            tag = self._bytewise(tags.c.name)
            query = select(tags.c.name).where(tags.c.repository_id == repo_id).order_by(tag)
            if last:
                query = query.where(tag > last)
            if limit is not None:
                query = query.limit(limit)
            return list((await conn.execute(query)).scalars())

    async def referrers(self, name: str, subject: str, artifact_type: str | None) -> list[ReferrerRow]:
        conds: list[Any] = [repos.c.name == name, manifests.c.subject_digest == subject]
        if artifact_type is not None:
            conds.append(manifests.c.artifact_type == artifact_type)
        query = (
            select(manifests.c.digest, manifests.c.media_type, manifests.c.size, manifests.c.artifact_type,
                   manifests.c.annotations)
            .select_from(repos.join(manifests, manifests.c.repository_id == repos.c.id))
            .where(and_(*conds))
            .order_by(manifests.c.digest)
        )
        async with self.db.read() as conn:
            rows = await conn.execute(query)
            return [
                ReferrerRow(r.digest, r.media_type, r.size, r.artifact_type,
                            json.loads(r.annotations) if r.annotations else None)
                for r in rows
            ]

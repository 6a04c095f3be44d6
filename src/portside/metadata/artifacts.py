"""Reads and writes behind the management API's repositories, artifacts and tags (SQLAlchemy Core).

An *artifact* is a manifest row; a *top-level* artifact is one that no index in its repository lists
and that is not an accessory (a referrer whose subject is in the repository) - Harbor lists only
those unless asked for `base=*`. Write methods take the open transaction from `Database.write()`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, exists, func, insert, not_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from portside.metadata.database import Database
from portside.metadata.models import Manifest, ManifestReference, Repository, RepositoryBlob, Tag, table
from portside.metadata.queries import now

repos = table(Repository)
manifests = table(Manifest)
refs = table(ManifestReference)
tags = table(Tag)
links = table(RepositoryBlob)

CHUNK = 500  # keep IN (...) lists well under every backend's bound-parameter limit


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    id: int
    name: str
    project_id: int | None
    description: str
    pull_count: int
    created_at: datetime
    updated_at: datetime
    artifact_count: int


@dataclass(frozen=True, slots=True)
class ArtifactRow:
    """A manifest without its bytes."""

    id: int
    repository_id: int
    repository_name: str
    project_id: int | None
    digest: str
    manifest_media_type: str
    artifact_type: str | None
    subject_digest: str | None
    annotations: dict[str, str]
    manifest_size: int
    pushed_at: datetime
    pulled_at: datetime | None


@dataclass(frozen=True, slots=True)
class TagRow:
    repository_id: int
    name: str
    manifest_id: int
    updated_at: datetime


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), CHUNK):
        yield values[i:i + CHUNK]


def top_level(m: Any) -> ColumnElement[bool]:
    """SQL condition on a manifests table (or alias) `m`: neither listed by an index in its repository
    nor an accessory of an artifact in its repository."""
    parent = manifests.alias("parent_manifest")
    subject = manifests.alias("subject_manifest")
    is_child = exists().where(
        refs.c.kind == "manifest", refs.c.digest == m.c.digest, refs.c.manifest_id == parent.c.id,
        parent.c.repository_id == m.c.repository_id,
    )
    is_accessory = and_(m.c.subject_digest.is_not(None), exists().where(
        subject.c.repository_id == m.c.repository_id, subject.c.digest == m.c.subject_digest))
    return and_(not_(is_child), not_(is_accessory))


def _artifact(row: Any) -> ArtifactRow:
    return ArtifactRow(
        row.id, row.repository_id, row.repository_name, row.project_id, row.digest, row.media_type,
        row.artifact_type, row.subject_digest, json.loads(row.annotations) if row.annotations else {},
        row.size, row.pushed_at, row.pulled_at,
    )


def _repository(row: Any) -> RepositoryRow:
    return RepositoryRow(row.id, row.name, row.project_id, row.description or "", int(row.pull_count or 0),
                         row.created_at, row.updated_at, int(row.artifact_count or 0))


class ArtifactQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- repositories --------------------------------------------------------------------------

    def _repositories(self) -> Select[Any]:
        m = manifests.alias("counted")
        count = (select(func.count()).select_from(m)
                 .where(m.c.repository_id == repos.c.id, top_level(m)).scalar_subquery())
        return select(repos.c.id, repos.c.name, repos.c.project_id, repos.c.description, repos.c.pull_count,
                      repos.c.created_at, repos.c.updated_at, count.label("artifact_count"))

    async def repositories(self, conn: AsyncConnection, project_id: int) -> list[RepositoryRow]:
        query = self._repositories().where(repos.c.project_id == project_id).order_by(repos.c.id)
        return [_repository(r) for r in await conn.execute(query)]

    async def repositories_in(self, conn: AsyncConnection, project_ids: Collection[int] | None) -> list[RepositoryRow]:
        """Repositories of the given projects (None: of every project)."""
        query = self._repositories().where(repos.c.project_id.is_not(None))
        if project_ids is not None:
            query = query.where(repos.c.project_id.in_(sorted(project_ids)))
        return [_repository(r) for r in await conn.execute(query.order_by(repos.c.id))]

    async def repository(self, conn: AsyncConnection, name: str) -> RepositoryRow | None:
        row = (await conn.execute(self._repositories().where(repos.c.name == name))).first()
        return _repository(row) if row else None

    async def set_description(self, conn: AsyncConnection, repo_id: int, description: str) -> None:
        await conn.execute(update(repos).where(repos.c.id == repo_id).values(description=description,
                                                                              updated_at=now()))

    async def delete_repository(self, conn: AsyncConnection, repo_id: int) -> None:
        """The repository row and everything in it (explicitly: SQLite cascades are not relied on)."""
        in_repo = select(manifests.c.id).where(manifests.c.repository_id == repo_id)
        await conn.execute(delete(tags).where(tags.c.repository_id == repo_id))
        await conn.execute(delete(refs).where(refs.c.manifest_id.in_(in_repo)))
        await conn.execute(delete(manifests).where(manifests.c.repository_id == repo_id))
        await conn.execute(delete(links).where(links.c.repository_id == repo_id))
        await conn.execute(delete(repos).where(repos.c.id == repo_id))

    # -- artifacts -----------------------------------------------------------------------------

    def _artifacts(self) -> Select[Any]:
        return (
            select(manifests.c.id, manifests.c.repository_id, repos.c.name.label("repository_name"),
                   repos.c.project_id, manifests.c.digest, manifests.c.media_type, manifests.c.artifact_type,
                   manifests.c.subject_digest, manifests.c.annotations, manifests.c.size, manifests.c.pushed_at,
                   manifests.c.pulled_at)
            .select_from(manifests.join(repos, repos.c.id == manifests.c.repository_id))
        )

    async def artifacts(self, conn: AsyncConnection, *, repository_id: int | None = None,
                        project_id: int | None = None, only_top_level: bool = True) -> list[ArtifactRow]:
        query = self._artifacts().order_by(manifests.c.id)
        if repository_id is not None:
            query = query.where(manifests.c.repository_id == repository_id)
        if project_id is not None:
            query = query.where(repos.c.project_id == project_id)
        if only_top_level:
            query = query.where(top_level(manifests))
        return [_artifact(r) for r in await conn.execute(query)]

    async def artifact_by_digest(self, conn: AsyncConnection, repo_id: int, digest: str) -> ArtifactRow | None:
        row = (await conn.execute(self._artifacts().where(
            manifests.c.repository_id == repo_id, manifests.c.digest == digest))).first()
        return _artifact(row) if row else None

    async def artifacts_with_digest(self, conn: AsyncConnection, project_id: int, digest: str) -> list[ArtifactRow]:
        """The manifests with this digest in any repository of the project."""
        query = self._artifacts().where(repos.c.project_id == project_id, manifests.c.digest == digest)
        return [_artifact(r) for r in await conn.execute(query.order_by(manifests.c.id))]

    async def artifact_by_tag(self, conn: AsyncConnection, repo_id: int, tag: str) -> ArtifactRow | None:
        query = self._artifacts().join(tags, tags.c.manifest_id == manifests.c.id).where(
            tags.c.repository_id == repo_id, tags.c.name == tag)
        row = (await conn.execute(query)).first()
        return _artifact(row) if row else None

    async def artifacts_by_digests(self, conn: AsyncConnection, repo_id: int,
                                   digests: Iterable[str]) -> list[ArtifactRow]:
        wanted = sorted(set(digests))
        found: list[ArtifactRow] = []
        for part in _chunks(wanted):
            query = self._artifacts().where(manifests.c.repository_id == repo_id, manifests.c.digest.in_(part))
            found.extend(_artifact(r) for r in await conn.execute(query))
        return found

    async def contents(self, conn: AsyncConnection, ids: Iterable[int]) -> dict[int, bytes]:
        wanted = sorted(set(ids))
        found: dict[int, bytes] = {}
        for part in _chunks(wanted):
            query = select(manifests.c.id, manifests.c.content).where(manifests.c.id.in_(part))
            found.update({r.id: bytes(r.content) for r in await conn.execute(query)})
        return found

    async def accessories(self, conn: AsyncConnection, repo_ids: Iterable[int],
                          subjects: Iterable[str]) -> list[ArtifactRow]:
        """Manifests in these repositories whose subject is one of these digests."""
        repo_list, subject_list = sorted(set(repo_ids)), sorted(set(subjects))
        if not repo_list or not subject_list:
            return []
        found: list[ArtifactRow] = []
        for part in _chunks(subject_list):
            query = self._artifacts().where(manifests.c.repository_id.in_(repo_list),
                                            manifests.c.subject_digest.in_(part)).order_by(manifests.c.id)
            found.extend(_artifact(r) for r in await conn.execute(query))
        return found

    async def parents(self, conn: AsyncConnection, repo_id: int, digest: str) -> list[str]:
        """Digests of indexes in the repository that list this manifest."""
        query = (
            select(manifests.c.digest)
            .select_from(refs.join(manifests, manifests.c.id == refs.c.manifest_id))
            .where(manifests.c.repository_id == repo_id, refs.c.digest == digest, refs.c.kind == "manifest")
            .order_by(manifests.c.digest)
        )
        return list((await conn.execute(query)).scalars())

    async def delete_reference(self, conn: AsyncConnection, parent_id: int, child_digest: str) -> None:
        await conn.execute(delete(refs).where(refs.c.manifest_id == parent_id, refs.c.digest == child_digest,
                                              refs.c.kind == "manifest"))

    async def delete_artifact(self, conn: AsyncConnection, manifest_id: int) -> None:
        await conn.execute(delete(tags).where(tags.c.manifest_id == manifest_id))
        await conn.execute(delete(refs).where(refs.c.manifest_id == manifest_id))
        await conn.execute(delete(manifests).where(manifests.c.id == manifest_id))

    # -- tags ----------------------------------------------------------------------------------

    async def tags(self, conn: AsyncConnection, *, repository_id: int | None = None,
                   project_id: int | None = None, manifest_id: int | None = None) -> list[TagRow]:
        query = select(tags.c.repository_id, tags.c.name, tags.c.manifest_id, tags.c.updated_at).order_by(
            tags.c.repository_id, tags.c.name)
        if project_id is not None:
            query = query.select_from(tags.join(repos, repos.c.id == tags.c.repository_id)).where(
                repos.c.project_id == project_id)
        if repository_id is not None:
            query = query.where(tags.c.repository_id == repository_id)
        if manifest_id is not None:
            query = query.where(tags.c.manifest_id == manifest_id)
        return [TagRow(r.repository_id, r.name, r.manifest_id, r.updated_at) for r in await conn.execute(query)]

    async def tags_of(self, conn: AsyncConnection, manifest_ids: Iterable[int]) -> list[TagRow]:
        wanted = sorted(set(manifest_ids))
        found: list[TagRow] = []
        for part in _chunks(wanted):
            query = (select(tags.c.repository_id, tags.c.name, tags.c.manifest_id, tags.c.updated_at)
                     .where(tags.c.manifest_id.in_(part)).order_by(tags.c.name))
            found.extend(TagRow(r.repository_id, r.name, r.manifest_id, r.updated_at)
                         for r in await conn.execute(query))
        return found

    async def tag(self, conn: AsyncConnection, repo_id: int, name: str) -> TagRow | None:
        row = (await conn.execute(select(tags).where(tags.c.repository_id == repo_id, tags.c.name == name))).first()
        return TagRow(row.repository_id, row.name, row.manifest_id, row.updated_at) if row else None

    async def create_tag(self, conn: AsyncConnection, repo_id: int, name: str, manifest_id: int) -> None:
        """A plain insert: raises WriteConflict (from `Database.write`) when the repository already has the tag."""
        await conn.execute(insert(tags).values(repository_id=repo_id, name=name, manifest_id=manifest_id,
                                               updated_at=now()))

    async def delete_tag(self, conn: AsyncConnection, repo_id: int, name: str) -> bool:
        result = await conn.execute(delete(tags).where(tags.c.repository_id == repo_id, tags.c.name == name))
        return bool(result.rowcount)

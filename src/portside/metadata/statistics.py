"""Read-only counts and searches across projects and repositories (for /statistics and /search)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import ScalarSelect, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from portside.metadata.database import Database
from portside.metadata.models import Blob, Manifest, ManifestReference, Repository, table

repos = table(Repository)
blobs = table(Blob)
manifests = table(Manifest)
refs = table(ManifestReference)


@dataclass(frozen=True, slots=True)
class RepositoryHit:
    project_id: int | None
    name: str
    pull_count: int
    artifact_count: int


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def top_level_artifact_count() -> ScalarSelect[int]:
    """Manifests of a repository that are artifacts of their own: not a child of an index in the same
    repository and not an accessory (signature, SBOM...) attached to another manifest by `subject`."""
    parent = aliased(manifests)
    child_of_index = exists().where(
        refs.c.manifest_id == parent.c.id, parent.c.repository_id == manifests.c.repository_id,
        refs.c.digest == manifests.c.digest, refs.c.kind == "manifest")
    return (select(func.count()).select_from(manifests)
            .where(manifests.c.repository_id == repos.c.id, manifests.c.subject_digest.is_(None), ~child_of_index)
            .correlate(repos).scalar_subquery())


class StatisticsQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def repository_counts(self, conn: AsyncConnection) -> dict[int | None, int]:
        """Number of repositories in each project (None: repositories outside any project)."""
        rows = await conn.execute(select(repos.c.project_id, func.count()).group_by(repos.c.project_id))
        return {r[0]: int(r[1]) for r in rows}

    async def storage_consumption(self, conn: AsyncConnection) -> int:
        """Bytes of all stored blobs (each counted once however many repositories link it)."""
        return int((await conn.execute(select(func.coalesce(func.sum(blobs.c.size), 0)))).scalar_one())

    async def search_repositories(self, conn: AsyncConnection, text: str, project_ids: Collection[int] | None,
                                  limit: int = 100) -> list[RepositoryHit]:
        """Repositories whose name contains `text`, in the given projects (None: in any project)."""
        count = top_level_artifact_count()
        conds = [repos.c.name.like(f"%{_escape_like(text)}%", escape="\\"), repos.c.project_id.is_not(None)]
        if project_ids is not None:
            conds.append(repos.c.project_id.in_(sorted(project_ids)))
        query = (select(repos.c.project_id, repos.c.name, repos.c.pull_count, count.label("artifact_count"))
                 .where(and_(*conds)).order_by(repos.c.name).limit(limit))
        return [RepositoryHit(r.project_id, r.name, int(r.pull_count or 0), int(r.artifact_count or 0))
                for r in await conn.execute(query)]

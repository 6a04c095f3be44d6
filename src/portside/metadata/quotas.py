"""Project storage quotas: the limit (projects.storage_limit) and the usage, always counted afresh.

Usage is the size of every distinct digest the project holds: the blobs linked into any of its
repositories plus its manifests, each digest once however many repositories or manifests share it.
There is no counter to drift: the sum is computed from the links and manifests themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal, select, union, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.selectable import Subquery

from portside.metadata.database import Database
from portside.metadata.models import Blob, Manifest, Project, Repository, RepositoryBlob, User, table
from portside.metadata.queries import now

projects = table(Project)
repos = table(Repository)
blobs = table(Blob)
links = table(RepositoryBlob)
manifests = table(Manifest)
users = table(User)


@dataclass(frozen=True, slots=True)
class QuotaRow:
    project_id: int
    project_name: str
    owner_name: str
    hard: int  # bytes; -1 = unlimited
    used: int
    created_at: datetime
    updated_at: datetime


def _holdings(project_id: int | None = None) -> Subquery:
    """(project_id, digest, size) of everything each project holds; UNION drops duplicates, so a
    digest counts once per project."""
    linked = (select(repos.c.project_id, blobs.c.digest, blobs.c.size)
              .select_from(links.join(repos, repos.c.id == links.c.repository_id)
                           .join(blobs, blobs.c.digest == links.c.digest)))
    stored = (select(repos.c.project_id, manifests.c.digest, manifests.c.size)
              .select_from(manifests.join(repos, repos.c.id == manifests.c.repository_id)))
    if project_id is not None:
        linked = linked.where(repos.c.project_id == project_id)
        stored = stored.where(repos.c.project_id == project_id)
    else:
        linked = linked.where(repos.c.project_id.is_not(None))
        stored = stored.where(repos.c.project_id.is_not(None))
    return union(linked, stored).subquery("holdings")


class QuotaQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def limit_for_push(self, conn: AsyncConnection, project_name: str) -> tuple[int, int] | None:
        """(project id, limit) when the project has a limit, locking its row until the transaction ends
        so that pushes into one limited project check and link one at a time. Unlimited (or unknown)
        projects answer None and lock nothing: the WHERE clause filters them out before locking."""
        query = select(projects.c.id, projects.c.storage_limit).where(
            projects.c.name == project_name, projects.c.storage_limit >= 0)
        if self.db.dialect == "postgresql":
            # NO KEY UPDATE: exclusive among pushers, yet no conflict with the KEY SHARE lock a new
            # repository's foreign key takes on the project row.
            query = query.with_for_update(key_share=True)
        row = (await conn.execute(query)).first()
        return (int(row.id), int(row.storage_limit)) if row else None

    async def present(self, conn: AsyncConnection, project_id: int, digests: Iterable[str]) -> set[str]:
        """Which of these digests the project already holds (as a linked blob or a manifest)."""
        wanted = sorted(set(digests))
        if not wanted:
            return set()
        linked = (select(links.c.digest).select_from(links.join(repos, repos.c.id == links.c.repository_id))
                  .where(repos.c.project_id == project_id, links.c.digest.in_(wanted)))
        stored = (select(manifests.c.digest).select_from(manifests.join(repos, repos.c.id == manifests.c.repository_id))
                  .where(repos.c.project_id == project_id, manifests.c.digest.in_(wanted)))
        return {r[0] for r in await conn.execute(union(linked, stored))}

    async def usage(self, conn: AsyncConnection, project_id: int) -> int:
        held = _holdings(project_id)
        return int((await conn.execute(select(func.coalesce(func.sum(held.c.size), 0)))).scalar_one())

    async def usages(self, conn: AsyncConnection) -> dict[int, int]:
        held = _holdings()
        query = select(held.c.project_id, func.sum(held.c.size)).group_by(held.c.project_id)
        return {int(r[0]): int(r[1] or 0) for r in await conn.execute(query)}

    async def quotas(self, project_id: int | None = None) -> list[QuotaRow]:
        query = (select(projects.c.id, projects.c.name, func.coalesce(users.c.username, literal("")),
                        projects.c.storage_limit, projects.c.created_at, projects.c.updated_at)
                 .select_from(projects.outerjoin(users, users.c.id == projects.c.owner_id))
                 .order_by(projects.c.id))
        if project_id is not None:
            query = query.where(projects.c.id == project_id)
        async with self.db.read() as conn:
            rows = list(await conn.execute(query))
            if project_id is not None:
                used = {project_id: await self.usage(conn, project_id)} if rows else {}
            else:
                used = await self.usages(conn)
        return [QuotaRow(int(r[0]), r[1], r[2] or "", int(r[3]), used.get(int(r[0]), 0), r[4], r[5])
                for r in rows]

    async def set_limit(self, project_id: int, storage: int) -> bool:
        async with self.db.write() as conn:
            result = await conn.execute(update(projects).where(projects.c.id == project_id)
                                        .values(storage_limit=storage, updated_at=now()))
            return bool(result.rowcount)

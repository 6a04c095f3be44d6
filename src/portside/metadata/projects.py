"""Projects and their members."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, false, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from portside.metadata.changes import ACCESS
from portside.metadata.database import Database
from portside.metadata.models import Project, ProjectMember, Repository, User, table
from portside.metadata.queries import now
from portside.metadata.readcache import ReadCache

projects = table(Project)
members = table(ProjectMember)
repos = table(Repository)
users = table(User)


@dataclass(frozen=True, slots=True)
class ProjectRow:
    id: int
    name: str
    public: bool
    owner_id: int | None
    storage_limit: int
    created_at: datetime
    updated_at: datetime
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MemberRow:
    id: int
    project_id: int
    user_id: int
    username: str
    role_id: int


@dataclass(frozen=True, slots=True)
class ProjectDetails:
    """What a project's JSON shows beyond its row, for one caller."""
    owner_name: str
    repo_count: int
    role_id: int | None


def _project(row: Any) -> ProjectRow:
    return ProjectRow(row.id, row.name, bool(row.public), row.owner_id, row.storage_limit, row.created_at,
                      row.updated_at, json.loads(row.settings or "{}"))


class ProjectQueries:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.cache = ReadCache(db.changes, slot=ACCESS)  # projects and members: pushes leave them alone

    async def by_name(self, name: str, conn: AsyncConnection | None = None) -> ProjectRow | None:
        if conn is None:  # outside a transaction: the hot path of every registry request
            return await self.cache.get_or_load(("project", name), lambda: self._one(projects.c.name == name, None))
        return await self._one(projects.c.name == name, conn)

    async def by_id(self, project_id: int, conn: AsyncConnection | None = None) -> ProjectRow | None:
        return await self._one(projects.c.id == project_id, conn)

    async def _one(self, cond: Any, conn: AsyncConnection | None) -> ProjectRow | None:
        query = select(projects).where(cond)
        if conn is not None:
            row = (await conn.execute(query)).first()
        else:
            async with self.db.read() as c:
                row = (await c.execute(query)).first()
        return _project(row) if row else None

    async def create(self, conn: AsyncConnection, name: str, *, public: bool, owner_id: int | None,
                     settings: dict[str, Any] | None = None, storage_limit: int = -1) -> int:
        ts = now()
        result = await conn.execute(insert(projects).values(
            name=name, public=public, owner_id=owner_id, settings=json.dumps(settings or {}),
            storage_limit=storage_limit, created_at=ts, updated_at=ts,
        ).returning(projects.c.id))
        project_id = int(result.scalar_one())
        # Repositories pushed before the project existed (open mode) join it now.
        await conn.execute(update(repos).where(
            repos.c.project_id.is_(None), repos.c.name.like(f"{name}/%")).values(project_id=project_id))
        return project_id

    async def update(self, conn: AsyncConnection, project_id: int, **values: Any) -> None:
        if "settings" in values:
            values["settings"] = json.dumps(values["settings"])
        await conn.execute(update(projects).where(projects.c.id == project_id).values(updated_at=now(), **values))

    async def delete(self, conn: AsyncConnection, project_id: int) -> None:
        await conn.execute(delete(members).where(members.c.project_id == project_id))
        await conn.execute(delete(projects).where(projects.c.id == project_id))

    async def all(self, conn: AsyncConnection) -> list[ProjectRow]:
        return [_project(r) for r in await conn.execute(select(projects).order_by(projects.c.name))]

    async def visible(self, conn: AsyncConnection, *, everything: bool, member_id: int | None,
                      names: frozenset[str]) -> list[ProjectRow]:
        """Projects by name: every one, or the public ones, those `member_id` is a member of and those named."""
        query = select(projects).order_by(projects.c.name)
        if not everything:
            member_of = select(members.c.project_id).where(members.c.user_id == member_id)
            query = query.where(or_(projects.c.public.is_(True),
                                    projects.c.id.in_(member_of) if member_id is not None else false(),
                                    projects.c.name.in_(sorted(names)) if names else false()))
        return [_project(r) for r in await conn.execute(query)]

    async def details(self, conn: AsyncConnection, project_ids: list[int],
                      member_id: int | None) -> dict[int, ProjectDetails]:
        """Owner name, repository count and `member_id`'s role of each project, in one query."""
        if not project_ids:
            return {}
        repo_count = (select(func.count()).select_from(repos).where(repos.c.project_id == projects.c.id)
                      .correlate(projects).scalar_subquery())
        role = (select(members.c.role_id).where(members.c.project_id == projects.c.id,
                                                members.c.user_id == member_id)
                .correlate(projects).scalar_subquery())
        query = (select(projects.c.id, users.c.username, repo_count.label("repo_count"), role.label("role_id"))
                 .select_from(projects.outerjoin(users, users.c.id == projects.c.owner_id))
                 .where(projects.c.id.in_(project_ids)))
        return {r.id: ProjectDetails(r.username or "", int(r.repo_count or 0),
                                     r.role_id if member_id is not None else None)
                for r in await conn.execute(query)}

    async def repository_count(self, conn: AsyncConnection, project_id: int) -> int:
        q = select(func.count()).select_from(repos).where(repos.c.project_id == project_id)
        return int((await conn.execute(q)).scalar_one())

    # -- members -------------------------------------------------------------------------------

    async def role_of(self, project_id: int, user_id: int) -> int | None:
        return await self.cache.get_or_load(("role", project_id, user_id), lambda: self._role_of(project_id, user_id))

    async def _role_of(self, project_id: int, user_id: int) -> int | None:
        q = select(members.c.role_id).where(members.c.project_id == project_id, members.c.user_id == user_id)
        async with self.db.read() as conn:
            return (await conn.execute(q)).scalar()

    async def roles_of_user(self, user_id: int) -> dict[int, int]:
        q = select(members.c.project_id, members.c.role_id).where(members.c.user_id == user_id)
        async with self.db.read() as conn:
            return {r.project_id: r.role_id for r in await conn.execute(q)}

    async def add_member(self, conn: AsyncConnection, project_id: int, user_id: int, role_id: int) -> int:
        ts = now()
        result = await conn.execute(insert(members).values(
            project_id=project_id, user_id=user_id, role_id=role_id, created_at=ts, updated_at=ts,
        ).returning(members.c.id))
        return int(result.scalar_one())

    async def list_members(self, conn: AsyncConnection, project_id: int) -> list[MemberRow]:
        q = (select(members.c.id, members.c.project_id, members.c.user_id, users.c.username, members.c.role_id)
             .select_from(members.join(users, users.c.id == members.c.user_id))
             .where(members.c.project_id == project_id).order_by(members.c.id))
        return [MemberRow(r.id, r.project_id, r.user_id, r.username, r.role_id) for r in await conn.execute(q)]

    async def update_member(self, conn: AsyncConnection, member_id: int, role_id: int) -> None:
        await conn.execute(update(members).where(members.c.id == member_id).values(role_id=role_id,
                                                                                 updated_at=now()))

    async def remove_member(self, conn: AsyncConnection, member_id: int) -> None:
        await conn.execute(delete(members).where(members.c.id == member_id))

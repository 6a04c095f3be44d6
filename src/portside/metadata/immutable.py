"""Immutable tag rules and the tag lookups that enforce them (SQLAlchemy Core).

Methods that take a connection run inside the caller's transaction, so a check and the write it
guards commit (or fail) together.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from portside.metadata.database import Database
from portside.metadata.models import ImmutableTagRule, Repository, Tag, table
from portside.metadata.queries import now

rules = table(ImmutableTagRule)
repos = table(Repository)
tags = table(Tag)


@dataclass(frozen=True, slots=True)
class ImmutableRuleRow:
    id: int
    project_id: int
    priority: int
    disabled: bool
    body: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _row(r: Any) -> ImmutableRuleRow:
    return ImmutableRuleRow(r.id, r.project_id, int(r.priority or 0), bool(r.disabled), json.loads(r.rule or "{}"),
                            r.created_at, r.updated_at)


class ImmutableQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def rules(self, conn: AsyncConnection, project_id: int) -> list[ImmutableRuleRow]:
        query = select(rules).where(rules.c.project_id == project_id).order_by(rules.c.priority, rules.c.id)
        return [_row(r) for r in await conn.execute(query)]

    async def rule(self, conn: AsyncConnection, rule_id: int) -> ImmutableRuleRow | None:
        row = (await conn.execute(select(rules).where(rules.c.id == rule_id))).first()
        return _row(row) if row else None

    async def count(self, conn: AsyncConnection, project_id: int) -> int:
        query = select(func.count()).select_from(rules).where(rules.c.project_id == project_id)
        return int((await conn.execute(query)).scalar_one())

    async def create(self, conn: AsyncConnection, project_id: int, *, priority: int, disabled: bool,
                     body: dict[str, Any]) -> int:
        ts = now()
        result = await conn.execute(insert(rules).values(
            project_id=project_id, priority=priority, disabled=disabled, rule=json.dumps(body),
            created_at=ts, updated_at=ts).returning(rules.c.id))
        return int(result.scalar_one())

    async def update(self, conn: AsyncConnection, rule_id: int, *, priority: int, disabled: bool,
                     body: dict[str, Any]) -> None:
        await conn.execute(update(rules).where(rules.c.id == rule_id).values(
            priority=priority, disabled=disabled, rule=json.dumps(body), updated_at=now()))

    async def delete(self, conn: AsyncConnection, rule_id: int) -> None:
        await conn.execute(delete(rules).where(rules.c.id == rule_id))

    # -- what the checks look at ---------------------------------------------------------------

    async def project_of_repository(self, conn: AsyncConnection, repo_id: int) -> int | None:
        return (await conn.execute(select(repos.c.project_id).where(repos.c.id == repo_id))).scalar()

    async def tags_elsewhere(self, conn: AsyncConnection, repo_id: int, names: Iterable[str],
                             manifest_id: int) -> list[str]:
        """Which of these tags exist in the repository and point at another manifest."""
        wanted = sorted(set(names))
        if not wanted:
            return []
        query = select(tags.c.name).where(tags.c.repository_id == repo_id, tags.c.name.in_(wanted),
                                          tags.c.manifest_id != manifest_id).order_by(tags.c.name)
        return list((await conn.execute(query)).scalars())

    async def tags_of_manifest(self, conn: AsyncConnection, manifest_id: int) -> list[str]:
        query = select(tags.c.name).where(tags.c.manifest_id == manifest_id).order_by(tags.c.name)
        return list((await conn.execute(query)).scalars())

    async def tags_of_repository(self, conn: AsyncConnection, repo_id: int) -> list[tuple[str, int]]:
        query = select(tags.c.name, tags.c.manifest_id).where(tags.c.repository_id == repo_id).order_by(tags.c.name)
        return [(r.name, int(r.manifest_id)) for r in await conn.execute(query)]

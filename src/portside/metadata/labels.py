"""Labels and the labels on artifacts (SQLAlchemy Core). Write methods take the open transaction from
`Database.write()`; deletes of labels, artifacts and projects drop the links by foreign-key cascade."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from portside.metadata.database import Database
from portside.metadata.models import ArtifactLabel, Label, table
from portside.metadata.queries import now

labels = table(Label)
links = table(ArtifactLabel)
GLOBAL, PROJECT = "g", "p"
CHUNK = 500


@dataclass(frozen=True, slots=True)
class LabelRow:
    id: int
    name: str
    description: str
    color: str
    scope: str
    project_id: int | None
    created_at: datetime
    updated_at: datetime


def _row(r: Any) -> LabelRow:
    return LabelRow(r.id, r.name, r.description or "", r.color or "", r.scope, r.project_id, r.created_at,
                    r.updated_at)


class LabelQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def label(self, conn: AsyncConnection, label_id: int) -> LabelRow | None:
        row = (await conn.execute(select(labels).where(labels.c.id == label_id))).first()
        return _row(row) if row else None

    async def by_name(self, conn: AsyncConnection, name: str, project_id: int | None) -> LabelRow | None:
        owner = labels.c.project_id.is_(None) if project_id is None else labels.c.project_id == project_id
        row = (await conn.execute(select(labels).where(labels.c.name == name, owner))).first()
        return _row(row) if row else None

    async def labels(self, conn: AsyncConnection, *, scope: str, project_id: int | None) -> list[LabelRow]:
        """Global labels, or one project's (every project's when `project_id` is None)."""
        query = select(labels).where(labels.c.scope == scope).order_by(labels.c.id)
        if scope == PROJECT and project_id is not None:
            query = query.where(labels.c.project_id == project_id)
        return [_row(r) for r in await conn.execute(query)]

    async def create(self, conn: AsyncConnection, *, name: str, description: str, color: str, scope: str,
                     project_id: int | None) -> int:
        ts = now()
        result = await conn.execute(insert(labels).values(
            name=name, description=description, color=color, scope=scope, project_id=project_id,
            created_at=ts, updated_at=ts).returning(labels.c.id))
        return int(result.scalar_one())

    async def update(self, conn: AsyncConnection, label_id: int, *, name: str, description: str,
                     color: str) -> None:
        await conn.execute(update(labels).where(labels.c.id == label_id).values(
            name=name, description=description, color=color, updated_at=now()))

    async def delete(self, conn: AsyncConnection, label_id: int) -> None:
        await conn.execute(delete(labels).where(labels.c.id == label_id))

    # -- on artifacts --------------------------------------------------------------------------

    async def is_on(self, conn: AsyncConnection, manifest_id: int, label_id: int) -> bool:
        query = select(links.c.label_id).where(links.c.manifest_id == manifest_id, links.c.label_id == label_id)
        return (await conn.execute(query)).first() is not None

    async def add_to(self, conn: AsyncConnection, manifest_id: int, label_id: int) -> None:
        """A plain insert: raises WriteConflict (from `Database.write`) when the artifact carries the label already."""
        await conn.execute(insert(links).values(manifest_id=manifest_id, label_id=label_id, created_at=now()))

    async def remove_from(self, conn: AsyncConnection, manifest_id: int, label_id: int) -> bool:
        result = await conn.execute(delete(links).where(links.c.manifest_id == manifest_id,
                                                        links.c.label_id == label_id))
        return bool(result.rowcount)

    async def of_artifacts(self, conn: AsyncConnection, manifest_ids: Iterable[int]) -> dict[int, list[LabelRow]]:
        """The labels each of these artifacts carries, in the order they were added."""
        wanted = sorted(set(manifest_ids))
        found: dict[int, list[LabelRow]] = {}
        for i in range(0, len(wanted), CHUNK):
            query = (select(links.c.manifest_id, labels)
                     .select_from(links.join(labels, labels.c.id == links.c.label_id))
                     .where(links.c.manifest_id.in_(wanted[i:i + CHUNK]))
                     .order_by(links.c.created_at, labels.c.id))
            for r in await conn.execute(query):
                found.setdefault(r.manifest_id, []).append(_row(r))
        return found

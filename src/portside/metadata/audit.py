"""Reading the audit log: filtered, sorted, paged queries over `audit_logs` (the recorder writes it)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from portside.listquery import ListQuery
from portside.metadata.database import Database
from portside.metadata.listing import Field, Listing, fetch_page
from portside.metadata.models import AuditLog, table

audit_logs = table(AuditLog)

# What a caller may filter and sort on.
TEXT_COLUMNS = ("operation", "resource", "resource_type", "username")
LISTING = Listing(
    "audit logs",
    fields={**{name: Field(audit_logs.c[name], ranges=False) for name in TEXT_COLUMNS},
            "op_time": Field(audit_logs.c.op_time, kind="time")},
    sortable={name: audit_logs.c[name] for name in ("id", "op_time", *TEXT_COLUMNS)},
    default_sort=(("op_time", True),),
    unique=audit_logs.c.id,
)


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    project_id: int | None
    operation: str
    resource_type: str
    resource: str
    username: str
    client_ip: str
    success: bool
    op_time: datetime


def _row(r: Any) -> AuditRow:
    return AuditRow(r.id, r.project_id, r.operation, r.resource_type, r.resource, r.username, r.client_ip,
                    bool(r.success), r.op_time)


class AuditQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def search(self, query: ListQuery, project_ids: Collection[int] | None = None,
                     ) -> tuple[list[AuditRow], int]:
        """One page of matching entries and the number of all matching entries; `project_ids` None means
        every entry, otherwise only these projects'."""
        extra = [] if project_ids is None else [audit_logs.c.project_id.in_(sorted(project_ids))]
        async with self.db.read() as conn:
            rows, total = await fetch_page(conn, LISTING, select(audit_logs), query, extra)
            return [_row(r) for r in rows], total

    async def count(self, conn: AsyncConnection | None = None) -> int:
        query = select(func.count()).select_from(audit_logs)
        if conn is not None:
            return int((await conn.execute(query)).scalar_one())
        async with self.db.read() as c:
            return int((await c.execute(query)).scalar_one())

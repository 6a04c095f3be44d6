"""Reading the audit log: filtered, sorted, paged queries over `audit_logs` (the recorder writes it)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from portside.metadata.database import Database
from portside.metadata.models import AuditLog, table

audit_logs = table(AuditLog)

# Columns a caller may filter and sort on.
TEXT_COLUMNS = ("operation", "resource", "resource_type", "username")
SORTABLE = ("id", "op_time", *TEXT_COLUMNS)


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


@dataclass(frozen=True, slots=True)
class TextFilter:
    """exact: value == column; fuzzy: value is a substring; any: column is one of `values`."""

    kind: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AuditFilter:
    text: dict[str, TextFilter] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None
    project_ids: Collection[int] | None = None  # None: every entry; otherwise only these projects'


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(f: AuditFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    for name, term in f.text.items():
        if name not in TEXT_COLUMNS:
            raise ValueError(f"cannot filter the audit log on {name!r}")
        column = audit_logs.c[name]
        if term.kind == "fuzzy":
            conds.append(column.like(f"%{_escape_like(term.values[0])}%", escape="\\"))
        elif term.kind == "any":
            conds.append(column.in_(term.values))
        else:
            conds.append(column == term.values[0])
    if f.since is not None:
        conds.append(audit_logs.c.op_time >= f.since)
    if f.until is not None:
        conds.append(audit_logs.c.op_time <= f.until)
    if f.project_ids is not None:
        conds.append(audit_logs.c.project_id.in_(sorted(f.project_ids)))
    return conds


def _row(r: Any) -> AuditRow:
    return AuditRow(r.id, r.project_id, r.operation, r.resource_type, r.resource, r.username, r.client_ip,
                    bool(r.success), r.op_time)


class AuditQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def search(self, f: AuditFilter, *, sort: str = "-op_time", offset: int = 0,
                     limit: int = 10) -> tuple[list[AuditRow], int]:
        """One page of matching entries and the number of all matching entries."""
        key = sort.lstrip("-")
        if key not in SORTABLE:
            raise ValueError(f"cannot sort the audit log by {key!r}")
        column = audit_logs.c[key]
        order = [column.desc(), audit_logs.c.id.desc()] if sort.startswith("-") else [column.asc(), audit_logs.c.id]
        where = and_(true(), *_conditions(f))
        async with self.db.read() as conn:
            total = int((await conn.execute(select(func.count()).select_from(audit_logs).where(where))).scalar_one())
            rows = await conn.execute(select(audit_logs).where(where).order_by(*order).offset(offset).limit(limit))
            return [_row(r) for r in rows], total

    async def count(self, conn: AsyncConnection | None = None) -> int:
        query = select(func.count()).select_from(audit_logs)
        if conn is not None:
            return int((await conn.execute(query)).scalar_one())
        async with self.db.read() as c:
            return int((await c.execute(query)).scalar_one())

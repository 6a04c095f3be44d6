"""Buffered audit writes: requests append in memory, a background task inserts them in batches."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert

from portside.metadata.database import Database
from portside.metadata.models import AuditLog, table

log = logging.getLogger("portside.audit")
audit_logs = table(AuditLog)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    operation: str  # create, delete, pull, push, login, update ...
    resource_type: str  # artifact, repository, project, user, robot, member, policy, login
    resource: str
    username: str
    project_id: int | None = None
    client_ip: str = ""
    success: bool = True
    detail: str = ""
    op_time: datetime = field(default_factory=lambda: datetime.now(UTC))


_COLUMNS = tuple(f.name for f in fields(AuditEvent))
FLUSH_BATCH = 250  # rows per transaction: a second of pulls at full speed must not stall the event loop


class AuditRecorder:
    def __init__(self, db: Database, *, retention_days: int, log_pulls: bool = True) -> None:
        self.db = db
        self.retention = timedelta(days=retention_days)
        self.log_pulls = log_pulls
        self._pending: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        if event.operation == "pull" and not self.log_pulls:
            return
        self._pending.append(event)

    async def flush(self) -> None:
        """Write what is pending in batches, each its own short transaction, so requests keep being
        served between them (a busy worker logs thousands of pulls a second)."""
        while self._pending:
            batch, self._pending = self._pending[:FLUSH_BATCH], self._pending[FLUSH_BATCH:]
            rows = [{name: getattr(e, name) for name in _COLUMNS} for e in batch]
            async with self.db.write(content=False) as conn:
                await conn.execute(insert(audit_logs), rows)

    async def purge_expired(self) -> int:
        cutoff = datetime.now(UTC) - self.retention
        async with self.db.write(content=False) as conn:
            result = await conn.execute(delete(audit_logs).where(audit_logs.c.op_time < cutoff))
        return int(result.rowcount or 0)

    async def run(self, interval: float) -> None:
        """Flush every `interval` seconds; purge entries older than the retention window hourly."""
        ticks_per_purge = max(1, int(3600 / interval))
        tick = 0
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
                tick += 1
                if tick % ticks_per_purge == 1:
                    await self.purge_expired()
            except Exception:
                log.exception("could not write audit events")

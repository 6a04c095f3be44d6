"""Buffered audit writes: requests append in memory, a background task inserts them in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from portside.metadata.bulk import BulkInsert
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
FLUSH_BATCH = 1000  # rows per transaction: a few ms of work, so requests keep being served between batches
PURGE_SECONDS = 3600


class AuditRecorder:
    def __init__(self, db: Database, *, retention_days: int, log_pulls: bool = True) -> None:
        self.db = db
        self.retention = timedelta(days=retention_days)
        self.log_pulls = log_pulls
        self._pending: list[AuditEvent] = []
        self._batch_ready = asyncio.Event()
        self._insert = BulkInsert(db, audit_logs, _COLUMNS)

    def record(self, event: AuditEvent) -> None:
        if event.operation == "pull" and not self.log_pulls:
            return
        self._pending.append(event)
        if len(self._pending) == FLUSH_BATCH:
            # Write a full batch now rather than at the next tick: a busy worker would otherwise
            # hold a whole interval of events (thousands) in memory.
            self._batch_ready.set()

    async def flush(self) -> None:
        """Write what is pending in batches, each its own short transaction, so requests keep being
        served between them (a busy worker logs thousands of pulls a second). The inserts must keep
        up with that rate: events that wait pile up in memory."""
        while self._pending:
            batch, self._pending = self._pending[:FLUSH_BATCH], self._pending[FLUSH_BATCH:]
            async with self.db.write(content=False) as conn:
                await self._insert.execute(conn, ([getattr(e, name) for name in _COLUMNS] for e in batch))

    async def purge_expired(self) -> int:
        cutoff = datetime.now(UTC) - self.retention
        async with self.db.write(content=False) as conn:
            result = await conn.execute(delete(audit_logs).where(audit_logs.c.op_time < cutoff))
        return int(result.rowcount or 0)

    async def run(self, interval: float) -> None:
        """Flush every `interval` seconds, or as soon as a batch is full; purge entries older than the
        retention window hourly."""
        next_purge = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._batch_ready.wait(), interval)
            self._batch_ready.clear()
            try:
                await self.flush()
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + PURGE_SECONDS
                    await self.purge_expired()
            except Exception:
                log.exception("could not write audit events")

"""The cron scheduler: each due schedule fires exactly once per tick, however many replicas run it.

Firing is a conditional UPDATE of `next_run_at` from the value read to the next one; only the replica
whose UPDATE changed the row launches the execution.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from portside.jobs.cron import CronSchedule, parse_schedule
from portside.metadata.database import Database
from portside.metadata.models import Schedule, table

log = logging.getLogger("portside.jobs")
schedules = table(Schedule)

# vendor_type -> launch(vendor_id, params, trigger) -> execution id
Launcher = Callable[[int, dict[str, Any], str], Awaitable[int | None]]


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    id: int
    vendor_type: str
    vendor_id: int
    schedule_type: str
    cron: str
    params: dict[str, Any]
    next_run_at: datetime
    created_at: datetime
    updated_at: datetime


def _row(r: Any) -> ScheduleRow:
    return ScheduleRow(r.id, r.vendor_type, r.vendor_id, r.schedule_type, r.cron, json.loads(r.params or "{}"),
                       _aware(r.next_run_at), r.created_at, r.updated_at)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


class Scheduler:
    def __init__(self, db: Database, launchers: dict[str, Launcher]) -> None:
        self.db = db
        self.launchers = launchers

    async def set(self, vendor_type: str, vendor_id: int, schedule_type: str | None, cron: str | None,
                  params: dict[str, Any] | None = None) -> ScheduleRow | None:
        """Create, replace or (for None/Manual) remove the schedule of one vendor object."""
        parsed = parse_schedule(schedule_type, cron)
        async with self.db.write(content=False) as conn:
            await conn.execute(delete(schedules).where(
                schedules.c.vendor_type == vendor_type, schedules.c.vendor_id == vendor_id))
            if parsed is None:
                return None
            ts = datetime.now(UTC)
            await conn.execute(insert(schedules).values(
                vendor_type=vendor_type, vendor_id=vendor_id, schedule_type=parsed.type, cron=parsed.cron,
                params=json.dumps(params or {}), next_run_at=parsed.next_after(ts), created_at=ts, updated_at=ts))
        return await self.get(vendor_type, vendor_id)

    async def get(self, vendor_type: str, vendor_id: int) -> ScheduleRow | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(schedules).where(
                schedules.c.vendor_type == vendor_type, schedules.c.vendor_id == vendor_id))).first()
        return _row(row) if row else None

    async def launch(self, vendor_type: str, vendor_id: int, params: dict[str, Any], trigger: str) -> int | None:
        """Start an execution now (a manual trigger, or a schedule firing)."""
        launcher = self.launchers.get(vendor_type)
        if launcher is None:
            raise KeyError(f"no launcher for {vendor_type}")
        return await launcher(vendor_id, params, trigger)

    async def tick(self, moment: datetime | None = None) -> list[int]:
        """Fire every due schedule once; returns the executions launched here."""
        moment = moment or datetime.now(UTC)
        async with self.db.read() as conn:
            due = [_row(r) for r in await conn.execute(select(schedules).where(schedules.c.next_run_at <= moment))]
        launched = []
        for s in due:
            following = CronSchedule(s.schedule_type, s.cron).next_after(moment)
            async with self.db.write(content=False) as conn:
                won = await conn.execute(update(schedules).where(
                    schedules.c.id == s.id, schedules.c.next_run_at == s.next_run_at).values(
                    next_run_at=following, updated_at=moment))
            if won.rowcount != 1:
                continue  # another replica fired this tick
            try:
                execution_id = await self.launch(s.vendor_type, s.vendor_id, s.params, "SCHEDULE")
            except KeyError:
                log.error("no launcher for scheduled %s", s.vendor_type)
                continue
            if execution_id is not None:
                launched.append(execution_id)
        return launched

    async def run(self, interval: float = 1.0) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler tick failed; retrying")
            await asyncio.sleep(interval)

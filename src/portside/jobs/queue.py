"""Executions and tasks in the database.

A task moves Pending -> Running -> Success | Error | Stopped. A failed attempt goes back to Pending
with an exponential backoff until `max_attempts`; a Running task whose heartbeat is older than the
stale limit (its worker died) goes back to Pending too. Claiming is one conditional UPDATE
(`WHERE status = 'Pending'`), so two workers never run the same task; on PostgreSQL the candidate
is picked with `FOR UPDATE SKIP LOCKED` so workers do not queue behind each other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, select, update

from portside.errors import Conflict
from portside.metadata.database import Database
from portside.metadata.models import Execution, Task, table

executions = table(Execution)
tasks = table(Task)

PENDING, RUNNING, SUCCESS, ERROR, STOPPED = "Pending", "Running", "Success", "Error", "Stopped"
FINAL = frozenset({SUCCESS, ERROR, STOPPED})


class AlreadyRunning(Conflict):
    """An execution of a kind that runs one at a time was asked for while another is unfinished."""

    def __init__(self, vendor_type: str, execution_id: int) -> None:
        super().__init__(f"{vendor_type} {execution_id} is still running")
        self.execution_id = execution_id


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: int
    execution_id: int
    kind: str
    params: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    log: str
    status_message: str
    start_time: datetime | None
    end_time: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    id: int
    vendor_type: str
    vendor_id: int
    status: str
    trigger: str
    params: dict[str, Any]
    result: dict[str, Any]
    status_message: str
    cancel_requested: bool
    created_at: datetime
    start_time: datetime | None
    end_time: datetime | None


def _task(r: Any) -> TaskRow:
    return TaskRow(r.id, r.execution_id, r.kind, json.loads(r.params or "{}"), r.status, r.attempts,
                   r.max_attempts, r.log, r.status_message, r.start_time, r.end_time, r.created_at)


def _execution(r: Any) -> ExecutionRow:
    return ExecutionRow(r.id, r.vendor_type, r.vendor_id, r.status, r.trigger, json.loads(r.params or "{}"),
                        json.loads(r.result or "{}"), r.status_message, bool(r.cancel_requested), r.created_at,
                        r.start_time, r.end_time)


class JobQueue:
    def __init__(self, db: Database, *, stale_after: float = 120, backoff_base: float = 2.0) -> None:
        self.db = db
        self.stale_after = timedelta(seconds=stale_after)
        self.backoff_base = backoff_base

    async def submit(self, vendor_type: str, *, vendor_id: int = 0, trigger: str = "MANUAL",
                     params: dict[str, Any] | None = None,
                     work: Sequence[tuple[str, dict[str, Any]]] = (), max_attempts: int = 3,
                     alone: bool = False) -> int:
        """Create an execution and its tasks in one transaction; returns the execution id. With
        `alone`, AlreadyRunning while an execution of `vendor_type` is unfinished: the check and the
        insert hold the database's lock for that type (SQLite: the write lock), so of two racing
        submits exactly one creates its execution."""
        ts = now()
        async with self.db.write(content=False) as conn:
            if alone:
                if self.db.dialect != "sqlite":
                    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"alone:{vendor_type}"))))
                running = (await conn.execute(select(executions.c.id).where(
                    executions.c.vendor_type == vendor_type, executions.c.status.notin_(list(FINAL)))
                    .order_by(executions.c.id).limit(1))).scalar()
                if running is not None:
                    raise AlreadyRunning(vendor_type, int(running))
            execution_id = int((await conn.execute(insert(executions).values(
                vendor_type=vendor_type, vendor_id=vendor_id, status=PENDING if work else SUCCESS,
                trigger=trigger, params=json.dumps(params or {}), result="{}", status_message="",
                cancel_requested=False, created_at=ts, end_time=None if work else ts,
            ).returning(executions.c.id))).scalar_one())
            if work:
                await conn.execute(insert(tasks), [{
                    "execution_id": execution_id, "kind": kind, "params": json.dumps(p), "status": PENDING,
                    "attempts": 0, "max_attempts": max_attempts, "run_after": ts, "log": "", "result": "{}",
                    "status_message": "", "created_at": ts,
                } for kind, p in work])
        return execution_id

    async def has_due(self, kinds: Sequence[str]) -> bool:
        """A cheap read, so idle workers poll without taking the write lock."""
        async with self.db.read() as conn:
            found = (await conn.execute(select(tasks.c.id).where(
                tasks.c.status == PENDING, tasks.c.run_after <= now(), tasks.c.kind.in_(list(kinds))).limit(1))).first()
        return found is not None

    async def claim(self, worker: str, limits: dict[str, int]) -> TaskRow | None:
        """Take the oldest due task of a kind this worker handles and whose concurrency limit allows."""
        if not await self.has_due(list(limits)):
            return None
        async with self.db.write(content=False) as conn:
            running: dict[str, int] = dict((await conn.execute(
                select(tasks.c.kind, func.count()).where(tasks.c.status == RUNNING).group_by(tasks.c.kind)
            )).all())
            kinds = [k for k, limit in limits.items() if running.get(k, 0) < limit]
            if not kinds:
                return None
            query = (select(tasks.c.id).where(tasks.c.status == PENDING, tasks.c.run_after <= now(),
                                              tasks.c.kind.in_(kinds))
                     .order_by(tasks.c.id).limit(1))
            if self.db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            task_id = (await conn.execute(query)).scalar()
            if task_id is None:
                return None
            ts = now()
            claimed = await conn.execute(update(tasks).where(tasks.c.id == task_id, tasks.c.status == PENDING).values(
                status=RUNNING, claimed_by=worker, heartbeat_at=ts, start_time=ts, attempts=tasks.c.attempts + 1))
            if claimed.rowcount != 1:
                return None
            row = (await conn.execute(select(tasks).where(tasks.c.id == task_id))).one()
            await conn.execute(update(executions).where(
                executions.c.id == row.execution_id, executions.c.status == PENDING).values(
                status=RUNNING, start_time=ts))
            return _task(row)

    async def heartbeat(self, task_id: int, log: str | None = None) -> bool:
        """Keep a running task's claim fresh; False when its execution was asked to stop."""
        values: dict[str, Any] = {"heartbeat_at": now()}
        if log is not None:
            values["log"] = log
        async with self.db.write(content=False) as conn:
            await conn.execute(update(tasks).where(tasks.c.id == task_id, tasks.c.status == RUNNING).values(**values))
            stop = (await conn.execute(select(executions.c.cancel_requested).select_from(
                tasks.join(executions, executions.c.id == tasks.c.execution_id)).where(tasks.c.id == task_id))).scalar()
        return not stop

    async def finish(self, task: TaskRow, *, status: str, log: str, result: dict[str, Any] | None = None,
                     message: str = "") -> None:
        """Record a task's outcome; a failure with attempts left is rescheduled with backoff."""
        ts = now()
        values: dict[str, Any] = {"log": log, "status_message": message, "end_time": ts,
                                  "result": json.dumps(result or {})}
        if status == ERROR and task.attempts < task.max_attempts:
            delay = self.backoff_base * 2 ** (task.attempts - 1)
            values.update(status=PENDING, run_after=ts + timedelta(seconds=delay), claimed_by=None, end_time=None)
        else:
            values["status"] = status
        async with self.db.write(content=False) as conn:
            await conn.execute(update(tasks).where(tasks.c.id == task.id).values(**values))
            await self._settle(conn, task.execution_id)

    async def _settle(self, conn: Any, execution_id: int) -> None:
        """Derive the execution's status from its tasks once none is left to run."""
        # Lock the execution first, so two tasks finishing at once do not each miss the other's end.
        await conn.execute(select(executions.c.id).where(executions.c.id == execution_id).with_for_update())
        query = select(tasks.c.status).where(tasks.c.execution_id == execution_id)
        statuses = [r[0] for r in await conn.execute(query)]
        if any(s not in FINAL for s in statuses):
            return
        status = ERROR if ERROR in statuses else STOPPED if STOPPED in statuses else SUCCESS
        await conn.execute(update(executions).where(
            executions.c.id == execution_id, executions.c.status.notin_(list(FINAL))).values(
            status=status, end_time=now()))

    async def stop(self, execution_id: int) -> None:
        """Ask an execution to stop: pending tasks stop now, running ones at their next heartbeat."""
        async with self.db.write(content=False) as conn:
            await conn.execute(update(executions).where(executions.c.id == execution_id).values(cancel_requested=True))
            await conn.execute(update(tasks).where(tasks.c.execution_id == execution_id,
                                                   tasks.c.status == PENDING).values(status=STOPPED, end_time=now()))
            await self._settle(conn, execution_id)

    async def reclaim_stale(self) -> int:
        """Tasks whose worker stopped heart-beating (crashed) go back to the queue."""
        cutoff = now() - self.stale_after
        async with self.db.write(content=False) as conn:
            result = await conn.execute(update(tasks).where(
                tasks.c.status == RUNNING, tasks.c.heartbeat_at < cutoff).values(
                status=PENDING, claimed_by=None, run_after=now()))
        return int(result.rowcount or 0)

    async def set_result(self, execution_id: int, result: dict[str, Any]) -> None:
        async with self.db.write(content=False) as conn:
            await conn.execute(update(executions).where(executions.c.id == execution_id).values(
                result=json.dumps(result)))

    async def execution(self, execution_id: int) -> ExecutionRow | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(executions).where(executions.c.id == execution_id))).first()
        return _execution(row) if row else None

    async def executions(self, vendor_type: str, vendor_id: int | None = None) -> list[ExecutionRow]:
        conds = [executions.c.vendor_type == vendor_type]
        if vendor_id is not None:
            conds.append(executions.c.vendor_id == vendor_id)
        async with self.db.read() as conn:
            rows = await conn.execute(select(executions).where(and_(*conds)).order_by(executions.c.id.desc()))
            return [_execution(r) for r in rows]

    async def tasks_of(self, execution_id: int) -> list[TaskRow]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(tasks).where(tasks.c.execution_id == execution_id).order_by(tasks.c.id))
            return [_task(r) for r in rows]

    async def task(self, task_id: int) -> TaskRow | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(tasks).where(tasks.c.id == task_id))).first()
        return _task(row) if row else None

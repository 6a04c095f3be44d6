"""The job system in-process on both databases: claiming, retries with backoff, stop, stale reclaim,
and the scheduler firing a due schedule exactly once however many schedulers race for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from portside.errors import Invalid
from portside.jobs.queue import ERROR, PENDING, RUNNING, STOPPED, SUCCESS, JobQueue, tasks
from portside.jobs.scheduler import Scheduler
from portside.jobs.worker import JobContext, Worker
from portside.metadata.database import Database, migrate
from tests.servers import database_url


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    url = database_url(backend, tmp_path)
    migrate(url)
    yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_tasks_run_once_and_settle_the_execution(db_url: str) -> None:
    async def scenario() -> None:
        db = Database(db_url)
        queue = JobQueue(db)
        seen: list[int] = []

        async def handler(ctx: JobContext) -> dict[str, Any]:
            seen.append(ctx.params["n"])
            ctx.log(f"handled {ctx.params['n']}")
            return {"n": ctx.params["n"]}

        execution = await queue.submit("TEST", work=[("t", {"n": i}) for i in range(5)])
        workers = [Worker(queue, {"t": handler}, {"t": 2}) for _ in range(3)]
        await asyncio.gather(*(w.run_once() for w in workers))
        assert sorted(seen) == [0, 1, 2, 3, 4], "every task ran exactly once"
        e = await queue.execution(execution)
        assert e is not None and e.status == SUCCESS and e.end_time is not None
        logs = [t.log for t in await queue.tasks_of(execution)]
        assert all("handled" in line for line in logs)
        await db.close()

    run(scenario())


def test_failures_retry_with_backoff_then_error(db_url: str) -> None:
    async def scenario() -> None:
        db = Database(db_url)
        queue = JobQueue(db, backoff_base=1.0)
        attempts = 0

        async def flaky(ctx: JobContext) -> None:
            nonlocal attempts
            attempts += 1
            raise RuntimeError("boom")

        execution = await queue.submit("TEST", work=[("t", {})], max_attempts=3)
        worker = Worker(queue, {"t": flaky}, {"t": 1})
        assert await worker.run_once() == 1
        task = (await queue.tasks_of(execution))[0]
        assert task.status == PENDING and task.attempts == 1, "a failed attempt is re-queued"
        assert await worker.run_once() == 0, "not before its backoff"
        for _ in range(100):  # backoff 1 s, then 2 s
            await asyncio.sleep(0.1)
            await worker.run_once()
            if attempts == 3:
                break
        task = (await queue.tasks_of(execution))[0]
        assert attempts == 3 and task.status == ERROR and "boom" in task.status_message
        e = await queue.execution(execution)
        assert e is not None and e.status == ERROR
        await db.close()

    run(scenario())


def test_stop_ends_pending_and_running_tasks(db_url: str) -> None:
    async def scenario() -> None:
        db = Database(db_url)
        queue = JobQueue(db)
        started = asyncio.Event()

        async def slow(ctx: JobContext) -> None:
            started.set()
            for _ in range(200):
                await asyncio.sleep(0.02)
                await ctx.checkpoint()

        execution = await queue.submit("TEST", work=[("t", {}), ("t", {})])
        worker = Worker(queue, {"t": slow}, {"t": 1})
        job = asyncio.create_task(worker.run_once())
        await started.wait()
        await queue.stop(execution)
        await asyncio.wait_for(job, 10)
        statuses = {t.status for t in await queue.tasks_of(execution)}
        assert statuses == {STOPPED}
        e = await queue.execution(execution)
        assert e is not None and e.status == STOPPED
        await db.close()

    run(scenario())


def test_tasks_of_a_dead_worker_are_reclaimed(db_url: str) -> None:
    async def scenario() -> None:
        db = Database(db_url)
        queue = JobQueue(db, stale_after=10)
        execution = await queue.submit("TEST", work=[("t", {})])
        claimed = await queue.claim("dead-worker", {"t": 1})
        assert claimed is not None
        async with db.write() as conn:  # the worker died a while ago: its heartbeat is old
            await conn.execute(update(tasks).where(tasks.c.id == claimed.id).values(
                heartbeat_at=datetime.now(UTC) - timedelta(seconds=60)))
        assert await queue.reclaim_stale() == 1
        done: list[int] = []

        async def handler(ctx: JobContext) -> None:
            done.append(ctx.task.attempts)

        assert await Worker(queue, {"t": handler}, {"t": 1}).run_once() == 1
        assert done == [2], "the crashed attempt counts"
        e = await queue.execution(execution)
        assert e is not None and e.status == SUCCESS
        await db.close()

    run(scenario())


def test_concurrency_limit_per_kind(db_url: str) -> None:
    async def scenario() -> None:
        db = Database(db_url)
        queue = JobQueue(db)
        await queue.submit("TEST", work=[("t", {}) for _ in range(3)])
        first = await queue.claim("w", {"t": 1})
        assert first is not None and first.status == RUNNING
        assert await queue.claim("w", {"t": 1}) is None, "the limit of 1 running task is reached"
        assert await queue.claim("w", {"t": 2}) is not None
        await db.close()

    run(scenario())


def test_schedule_fires_once_per_tick_across_racing_schedulers(db_url: str) -> None:
    async def scenario() -> None:
        db = Database(db_url)
        queue = JobQueue(db)
        launched: list[str] = []

        async def launch(vendor_id: int, params: dict[str, Any], trigger: str) -> int:
            launched.append(trigger)
            return await queue.submit("TICK", vendor_id=vendor_id, trigger=trigger, work=[("t", params)])

        # Separate engines, as separate replicas would have.
        schedulers = [Scheduler(Database(db_url), {"TICK": launch}) for _ in range(4)]
        row = await schedulers[0].set("TICK", 7, "Hourly", "0 * * * *", {"x": 1})
        assert row is not None and row.next_run_at.minute == 0
        moment = row.next_run_at + timedelta(seconds=1)
        results = await asyncio.gather(*(s.tick(moment) for s in schedulers))
        assert sum(len(r) for r in results) == 1 and launched == ["SCHEDULE"]
        again = await asyncio.gather(*(s.tick(moment) for s in schedulers))
        assert sum(len(r) for r in again) == 0, "the next run is an hour later"
        after = await schedulers[1].get("TICK", 7)
        assert after is not None and after.next_run_at == row.next_run_at + timedelta(hours=1)
        for s in schedulers:
            await s.db.close()
        await db.close()

    run(scenario())


def test_schedule_validation(db_url: str) -> None:
    async def scenario() -> None:
        db = Database(db_url)
        scheduler = Scheduler(db, {})
        with pytest.raises(Invalid, match="cron"):
            await scheduler.set("X", 1, "Custom", "61 * * * *")
        with pytest.raises(Invalid, match="type"):
            await scheduler.set("X", 1, "Fortnightly", None)
        assert await scheduler.set("X", 1, "Daily", None) is not None
        assert await scheduler.set("X", 1, "None", None) is None
        assert await scheduler.get("X", 1) is None, "type None removes the schedule"
        await db.close()

    run(scenario())

"""One garbage collection at a time, decided by the database: launches racing from several replicas
(API calls and the cron tick) start exactly one collection; the API's losers get Conflict."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from portside.errors import Conflict
from portside.jobs.queue import STOPPED, JobQueue
from portside.jobs.scheduler import Scheduler
from portside.lifecycle.gc_jobs import GC_VENDOR, GcService, gc_launcher
from portside.metadata.database import Database, migrate
from tests.servers import database_url


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    url = database_url(backend, tmp_path)
    migrate(url)
    yield url


def test_concurrent_launches_start_one_collection(db_url: str) -> None:
    async def scenario() -> None:
        # Separate engines, as separate replicas would have; no worker runs, so the winner stays unfinished.
        dbs = [Database(db_url) for _ in range(4)]
        for _ in range(3):  # connections open before the race, so the launches overlap
            await asyncio.gather(*(db.ping() for db in dbs for _ in range(3)))
        schedulers = [Scheduler(db, {GC_VENDOR: gc_launcher(JobQueue(db))}) for db in dbs]
        services = [GcService(JobQueue(db), scheduler) for db, scheduler in zip(dbs, schedulers, strict=True)]
        row = await schedulers[0].set(GC_VENDOR, 0, "Hourly", "0 * * * *", {})
        assert row is not None
        moment = row.next_run_at + timedelta(seconds=1)
        outcomes = await asyncio.gather(*(s.launch_manual({}) for s in services for _ in range(3)),
                                        *(s.tick(moment) for s in schedulers), return_exceptions=True)
        manual, ticks = outcomes[:12], outcomes[12:]
        started = [o for o in manual if isinstance(o, int)] + [i for t in ticks if isinstance(t, list) for i in t]
        assert len(started) == 1, outcomes
        refused = [o for o in manual if isinstance(o, Conflict)]
        assert len(refused) == len(manual) - sum(isinstance(o, int) for o in manual), outcomes
        assert all(f"garbage collection {started[0]} is still running" == str(c.message) for c in refused)
        queue = services[0].queue
        assert [e.id for e in await queue.executions(GC_VENDOR)] == started

        # Once it is over the next launch starts.
        await queue.stop(started[0])
        finished = await queue.execution(started[0])
        assert finished is not None and finished.status == STOPPED
        assert await services[1].launch_manual({}) > started[0]
        for db in dbs:
            await db.close()

    asyncio.run(scenario())

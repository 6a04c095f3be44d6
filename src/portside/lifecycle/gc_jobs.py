"""Garbage collection as a job: the task handler and the launcher the scheduler and API use."""

from __future__ import annotations

import logging
from typing import Any

from portside.errors import Conflict, NotFound
from portside.jobs.queue import AlreadyRunning, ExecutionRow, JobQueue
from portside.jobs.scheduler import Scheduler, ScheduleRow
from portside.jobs.worker import Handler, JobContext
from portside.lifecycle.gc import GarbageCollector, GcOptions

GC_VENDOR = "GARBAGE_COLLECTION"
GC_TASK = "gc"

log = logging.getLogger(__name__)


def gc_handler(collector: GarbageCollector) -> Handler:
    async def handle(ctx: JobContext) -> dict[str, Any]:
        report = await collector.run(GcOptions.from_params(ctx.params), ctx.log, ctx.checkpoint)
        await ctx.queue.set_result(ctx.task.execution_id, report.as_dict())
        return report.as_dict()

    return handle


async def _submit(queue: JobQueue, params: dict[str, Any], trigger: str) -> int:
    """A collection, unless one is unfinished (AlreadyRunning): one at a time, decided by the database.
    One attempt: a failed collection is simply run again at the next schedule or by hand."""
    return await queue.submit(GC_VENDOR, trigger=trigger, params=params, work=[(GC_TASK, params)],
                              max_attempts=1, alone=True)


def gc_launcher(queue: JobQueue) -> Any:
    """What the cron scheduler fires: a tick while a collection runs is skipped."""
    async def launch(vendor_id: int, params: dict[str, Any], trigger: str) -> int | None:
        try:
            return await _submit(queue, params, trigger)
        except AlreadyRunning as running:
            log.info("scheduled garbage collection skipped: %s is still running", running.execution_id)
            return None

    return launch


class GcService:
    """Garbage collection runs and their schedule, as the API sees them."""

    def __init__(self, queue: JobQueue, scheduler: Scheduler) -> None:
        self.queue = queue
        self.scheduler = scheduler

    async def runs(self) -> list[ExecutionRow]:
        """Every collection, newest first."""
        return await self.queue.executions(GC_VENDOR)

    async def run(self, gc_id: int) -> ExecutionRow:
        e = await self.queue.execution(gc_id)
        if e is None or e.vendor_type != GC_VENDOR:
            raise NotFound(f"garbage collection {gc_id} not found")
        return e

    async def log(self, gc_id: int) -> str:
        await self.run(gc_id)
        return "".join(t.log for t in await self.queue.tasks_of(gc_id))

    async def stop(self, gc_id: int) -> None:
        await self.run(gc_id)
        await self.queue.stop(gc_id)

    async def schedule(self) -> ScheduleRow | None:
        return await self.scheduler.get(GC_VENDOR, 0)

    async def set_schedule(self, schedule_type: str, cron: str | None, params: dict[str, Any]) -> None:
        await self.scheduler.set(GC_VENDOR, 0, schedule_type, cron, params)

    async def launch_manual(self, params: dict[str, Any]) -> int:
        """Start a collection now; Conflict while another (manual or scheduled) is unfinished."""
        try:
            return await _submit(self.queue, params, "MANUAL")
        except AlreadyRunning as running:
            raise Conflict(f"garbage collection {running.execution_id} is still running") from None

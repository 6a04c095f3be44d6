"""Garbage collection as a job: the task handler and the launcher the scheduler and API use."""

from __future__ import annotations

import logging
from typing import Any

from portside.errors import Conflict
from portside.jobs.queue import AlreadyRunning, JobQueue
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
    """Garbage collection runs as the API sees them."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    async def launch_manual(self, params: dict[str, Any]) -> int:
        """Start a collection now; Conflict while another (manual or scheduled) is unfinished."""
        try:
            return await _submit(self.queue, params, "MANUAL")
        except AlreadyRunning as running:
            raise Conflict(f"garbage collection {running.execution_id} is still running") from None

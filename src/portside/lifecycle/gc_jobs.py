"""Garbage collection as a job: the task handler and the launcher the scheduler and API use."""

from __future__ import annotations

from typing import Any

from portside.jobs.queue import JobQueue
from portside.jobs.worker import Handler, JobContext
from portside.lifecycle.gc import GarbageCollector, GcOptions

GC_VENDOR = "GARBAGE_COLLECTION"
GC_TASK = "gc"


def gc_handler(collector: GarbageCollector) -> Handler:
    async def handle(ctx: JobContext) -> dict[str, Any]:
        report = await collector.run(GcOptions.from_params(ctx.params), ctx.log, ctx.checkpoint)
        await ctx.queue.set_result(ctx.task.execution_id, report.as_dict())
        return report.as_dict()

    return handle


def gc_launcher(queue: JobQueue) -> Any:
    async def launch(vendor_id: int, params: dict[str, Any], trigger: str) -> int:
        # One attempt: a failed collection is simply run again at the next schedule or by hand.
        return await queue.submit(GC_VENDOR, trigger=trigger, params=params, work=[(GC_TASK, params)],
                                  max_attempts=1)

    return launch

"""Workers: claim tasks, run their handlers, heart-beat while they run, record the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from portside.jobs.queue import ERROR, STOPPED, SUCCESS, JobQueue, TaskRow

log = logging.getLogger("portside.jobs")


class JobStopped(Exception):
    """Raised inside a handler when its execution was asked to stop."""


@dataclass
class JobContext:
    task: TaskRow
    queue: JobQueue
    lines: list[str] = field(default_factory=list)
    stop_requested: bool = False

    @property
    def params(self) -> dict[str, Any]:
        return self.task.params

    def log(self, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.lines.append(f"{stamp} {message}")

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")

    async def checkpoint(self) -> None:
        """Heart-beat, save the log so far, and stop here if the execution was cancelled."""
        if not await self.queue.heartbeat(self.task.id, self.text):
            self.stop_requested = True
        if self.stop_requested:
            raise JobStopped()


Handler = Callable[[JobContext], Awaitable[dict[str, Any] | None]]


class Worker:
    def __init__(self, queue: JobQueue, handlers: dict[str, Handler], limits: dict[str, int], *,
                 poll_seconds: float = 1.0, heartbeat_seconds: float = 10.0) -> None:
        self.queue = queue
        self.handlers = handlers
        self.limits = {kind: limits.get(kind, limits.get("default", 5)) for kind in handlers}
        self.poll = poll_seconds
        self.heartbeat = heartbeat_seconds
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._running: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        ticks = 0
        while True:
            try:
                if ticks % 30 == 0:
                    reclaimed = await self.queue.reclaim_stale()
                    if reclaimed:
                        log.warning("re-queued %d task(s) whose worker stopped responding", reclaimed)
                ticks += 1
                while len(self._running) < sum(self.limits.values()):
                    task = await self.queue.claim(self.name, self.limits)
                    if task is None:
                        break
                    job = asyncio.create_task(self._execute(task))
                    self._running.add(job)
                    job.add_done_callback(self._running.discard)
            except Exception:
                log.exception("job worker loop error; retrying")
            await asyncio.sleep(self.poll)

    async def run_once(self) -> int:
        """Claim and run due tasks until none is left (for tests and `portside worker --once`)."""
        done = 0
        while (task := await self.queue.claim(self.name, self.limits)) is not None:
            await self._execute(task)
            done += 1
        return done

    async def _execute(self, task: TaskRow) -> None:
        ctx = JobContext(task, self.queue)
        beat = asyncio.create_task(self._beat(ctx))
        status, message, result = SUCCESS, "", None
        try:
            result = await self.handlers[task.kind](ctx)
        except JobStopped:
            status, message = STOPPED, "stopped on request"
            ctx.log("stopped on request")
        except Exception as exc:
            status, message = ERROR, f"{type(exc).__name__}: {exc}"
            ctx.log(f"failed (attempt {task.attempts} of {task.max_attempts}): {message}")
            log.warning("task %d (%s) failed: %s\n%s", task.id, task.kind, message, traceback.format_exc())
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        await self.queue.finish(task, status=status, log=ctx.text, result=result or {}, message=message)

    async def _beat(self, ctx: JobContext) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            if not await self.queue.heartbeat(ctx.task.id, ctx.text):
                ctx.stop_requested = True

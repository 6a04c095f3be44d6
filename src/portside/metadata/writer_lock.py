"""One SQLite write transaction at a time, handed from writer to writer without sleeping.

SQLite admits one writer anyway. But a `BEGIN IMMEDIATE` that finds the database locked waits in
SQLite's busy handler, which sleeps 1, 2, 5, 10, 15 ... ms between tries: under concurrent pushes a
waiter routinely woke several milliseconds after the lock was free. Here writers queue instead: on
an asyncio lock among the tasks of this process, then on an flock(2) of a file beside the database
among processes, and the kernel wakes the next one the moment the lock is released.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path


class WriterLock:
    def __init__(self, path: Path | None) -> None:
        self._tasks = asyncio.Lock()
        self._owner: asyncio.Task[object] | None = None
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600) if path is not None else -1

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        me = asyncio.current_task()
        if me is not None and me is self._owner:
            # It would wait for itself forever (SQLite alone would have failed after its busy timeout).
            raise RuntimeError("a write transaction was opened inside another one in the same task")
        async with self._tasks:
            self._owner = me
            try:
                if self._fd < 0:
                    yield
                    return
                await self._lock_file()
                try:
                    yield
                finally:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                self._owner = None

    async def _lock_file(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass  # another process is writing: wait in a thread, where blocking is harmless
        fd = self._fd
        taken = asyncio.get_running_loop().run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)

        def give_back(done: asyncio.Future[None]) -> None:
            if not done.cancelled() and done.exception() is None:
                fcntl.flock(fd, fcntl.LOCK_UN)

        try:
            await asyncio.shield(taken)
        except BaseException:
            taken.add_done_callback(give_back)  # cancelled: the thread takes the lock when it can
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

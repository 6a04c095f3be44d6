"""The SQLite writer lock: writers in different processes (here: two locks on one file, which flock
treats the same way) take turns, a waiter runs as soon as the holder lets go, and a waiter that is
cancelled leaves the lock free."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from portside.metadata.writer_lock import WriterLock


def test_writers_take_turns_and_the_next_starts_at_once(tmp_path: Path) -> None:
    first, second = WriterLock(tmp_path / "db.writer-lock"), WriterLock(tmp_path / "db.writer-lock")
    events: list[tuple[str, float]] = []

    async def writer(lock: WriterLock, name: str, hold: float) -> None:
        async with lock.hold():
            events.append((f"{name} in", time.monotonic()))
            await asyncio.sleep(hold)
            events.append((f"{name} out", time.monotonic()))

    async def scenario() -> None:
        holder = asyncio.create_task(writer(first, "a", 0.3))
        await asyncio.sleep(0.05)
        await asyncio.gather(holder, writer(second, "b", 0), writer(first, "c", 0))

    asyncio.run(scenario())
    order = [name for name, _ in events]
    assert order[:2] == ["a in", "a out"]  # nobody entered while a held it
    assert sorted(order[2:]) == ["b in", "b out", "c in", "c out"]
    assert order[2][0] == order[3][0]  # and the next one ran alone too
    released, next_in = events[1][1], events[2][1]
    assert next_in - released < 0.1  # woken by the release, not by polling


def test_a_cancelled_waiter_leaves_the_lock_free(tmp_path: Path) -> None:
    holder, waiter = WriterLock(tmp_path / "db.writer-lock"), WriterLock(tmp_path / "db.writer-lock")

    async def scenario() -> bool:
        entered = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            async with holder.hold():
                entered.set()
                await release.wait()

        async def wait() -> None:
            async with waiter.hold():
                raise AssertionError("the waiter must not get in while the lock is held")

        holding = asyncio.create_task(hold())
        await entered.wait()
        waiting = asyncio.create_task(wait())
        await asyncio.sleep(0.1)
        waiting.cancel()
        release.set()  # the waiter's thread takes the file lock now, then gives it back
        await holding
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        async with asyncio.timeout(2):  # free again, for either lock
            async with holder.hold():
                pass
            async with waiter.hold():
                return True

    assert asyncio.run(scenario())


def test_a_write_inside_a_write_fails_at_once_instead_of_waiting_forever(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "db.writer-lock")

    async def scenario() -> str:
        async with lock.hold():
            try:
                async with asyncio.timeout(2), lock.hold():
                    return "entered twice"
            except RuntimeError as exc:
                return str(exc)

    assert "inside another" in asyncio.run(scenario())

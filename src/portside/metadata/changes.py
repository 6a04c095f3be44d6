"""Change counters that tell read caches when metadata may have changed.

Every committed metadata write that can change what the registry serves bumps the EVERYTHING
counter; writes that may also change projects, members or accounts (what authorization reads on
every request) bump ACCESS too. Pushes bump only the first, so project lookups stay cached while
images stream in. A cached answer is used only while its counter still holds the value read before
the answer was fetched. The counters live in a memory-mapped file under the data directory, so every worker
process on a host sees a bump the moment it happens (an aligned 8-byte read is atomic). Other
replicas learn of writes through PostgreSQL LISTEN/NOTIFY; while that channel is down, `usable`
is False and caches are bypassed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import struct
from pathlib import Path

log = logging.getLogger("portside.cache")
CHANNEL = "portside_changes"
CONTENT_ONLY = "content"  # NOTIFY payload of a write that left access data alone
EVERYTHING, ACCESS = 0, 1  # counter slots
_SLOTS = 2
_COUNTER = struct.Struct("<Q")


class ChangeCounter:
    def __init__(self, path: Path | None = None) -> None:
        self._local = [0] * _SLOTS
        self._mm: mmap.mmap | None = None
        self._fd = -1
        self.usable = True
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(self._fd).st_size < _COUNTER.size * _SLOTS:
                os.ftruncate(self._fd, _COUNTER.size * _SLOTS)
            self._mm = mmap.mmap(self._fd, _COUNTER.size * _SLOTS)

    def current(self, slot: int = EVERYTHING) -> int:
        if self._mm is None:
            return self._local[slot]
        return int(_COUNTER.unpack_from(self._mm, slot * _COUNTER.size)[0])

    def bump(self, *, access: bool = True) -> None:
        """Count a committed write; `access=False` when it cannot have changed access data."""
        slots = (EVERYTHING, ACCESS) if access else (EVERYTHING,)
        if self._mm is None:
            for slot in slots:
                self._local[slot] += 1
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            for slot in slots:
                _COUNTER.pack_into(self._mm, slot * _COUNTER.size, (self.current(slot) + 1) % (1 << 63))
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            os.close(self._fd)
            self._mm = None


async def listen_for_changes(conninfo: str, counter: ChangeCounter) -> None:
    """Bump the counter on every NOTIFY from any replica; caches stay off while not listening."""
    import psycopg

    while True:
        counter.usable = False
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                counter.bump()  # whatever happened while we were not listening
                counter.usable = True
                async for note in conn.notifies():
                    counter.bump(access=note.payload != CONTENT_ONLY)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("change notifications interrupted (%s); read caches off until reconnected", exc)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(1)

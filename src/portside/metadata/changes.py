"""A change counter that tells read caches when metadata may have changed.

Every committed metadata write that can change what the registry serves bumps the counter; a
cached answer is used only while the counter still holds the value read before the answer was
fetched. The counter lives in a memory-mapped file under the data directory, so every worker
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
_COUNTER = struct.Struct("<Q")


class ChangeCounter:
    def __init__(self, path: Path | None = None) -> None:
        self._local = 0
        self._mm: mmap.mmap | None = None
        self._fd = -1
        self.usable = True
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(self._fd).st_size < _COUNTER.size:
                os.ftruncate(self._fd, _COUNTER.size)
            self._mm = mmap.mmap(self._fd, _COUNTER.size)

    def current(self) -> int:
        if self._mm is None:
            return self._local
        return int(_COUNTER.unpack_from(self._mm, 0)[0])

    def bump(self) -> None:
        if self._mm is None:
            self._local += 1
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            _COUNTER.pack_into(self._mm, 0, (self.current() + 1) % (1 << 63))
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
                async for _ in conn.notifies():
                    counter.bump()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("change notifications interrupted (%s); read caches off until reconnected", exc)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(1)

"""A process-local cache for hot metadata reads (tag -> manifest, blob sizes, project lookups).

An entry is valid only while the change counter still holds the value read *before* the entry was
fetched, so a write committed anywhere (this process, another worker, another replica) makes every
older entry a miss. Misses are cached too: clients HEAD blobs they are about to push.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from portside.metadata.changes import EVERYTHING, ChangeCounter

T = TypeVar("T")


class ReadCache:
    def __init__(self, changes: ChangeCounter, *, slot: int = EVERYTHING, max_entries: int = 50_000) -> None:
        self.changes = changes
        self.slot = slot  # which counter invalidates this cache (see portside.metadata.changes)
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[int, Any]] = {}
        self.hits = 0
        self.misses = 0

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        if not self.changes.usable:
            return await load()
        generation = self.changes.current(self.slot)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == generation:
            self.hits += 1
            value: T = entry[1]
            return value
        self.misses += 1
        value = await load()
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (generation, value)
        return value

"""What receives events after commit. A feature lists its subscribers on its `Feature`; the events
room hands each one the committed events it wants, in batches, from a job (so a crash after commit
loses nothing: the batch is handed again). Delivery is at least once: `handle` must tolerate seeing
an event twice (events carry a unique `id`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from portside.events.types import Event


class Subscriber(Protocol):
    # Stable and unique: it names the subscriber's jobs and where it has got to.
    name: str

    def wants(self, event: Event) -> bool:
        """Cheap and without I/O: is this event of a kind this subscriber handles at all?"""
        ...

    async def handle(self, events: Sequence[Event]) -> None:
        """Act on a batch, in publishing order. Raising hands the same batch again later."""
        ...

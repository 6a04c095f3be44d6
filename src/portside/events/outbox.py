"""Publishing: events join the caller's write transaction, so they exist if and only if the change
they describe committed. Handing them on to subscribers happens after commit, elsewhere."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from portside.events.models import OutboxEvent
from portside.events.types import Event
from portside.metadata.models import table

outbox = table(OutboxEvent)


async def publish(conn: AsyncConnection, events: Iterable[Event]) -> None:
    """Add `events` to the outbox inside the open transaction `conn` (from `Database.write`)."""
    rows = [{"event_id": e.id, "type": e.type.value, "project_id": e.project_id, "occurred_at": e.occurred_at,
             "payload": e.to_json()} for e in events]
    if rows:
        await conn.execute(insert(outbox), rows)

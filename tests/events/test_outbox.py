"""Events join the transaction of the change they describe: a rolled-back change leaves no event,
a committed one leaves exactly its events, read back as they were published."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from portside.events.outbox import outbox, publish
from portside.events.types import Event, EventType, Resource
from portside.metadata.database import Database, migrate
from tests.servers import database_url


def test_events_exist_if_and_only_if_their_transaction_commits(backend: str, tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    migrate(url)
    pushed = Event(EventType.PUSH_ARTIFACT, "alice", project="library", project_id=1, repository="library/app",
                   resources=(Resource(digest="sha256:" + "a" * 64, tag="v1", size=1234),), detail={"n": 1})
    lost = Event(EventType.DELETE_ARTIFACT, "bob", project="library", project_id=1)

    async def scenario() -> list[Event]:
        db = Database(url)
        try:
            async with db.write() as conn:
                await publish(conn, [pushed])
            with pytest.raises(RuntimeError):
                async with db.write() as conn:
                    await publish(conn, [lost])
                    raise RuntimeError("the change failed")
            async with db.read() as conn:
                rows = (await conn.execute(select(outbox.c.payload).order_by(outbox.c.id))).scalars().all()
            return [Event.from_json(p) for p in rows]
        finally:
            await db.close()

    assert asyncio.run(scenario()) == [pushed]

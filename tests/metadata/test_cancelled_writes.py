"""A write cancelled in the middle of a statement (a graceful stop cancels the background tasks that
may be writing) ends its transaction, lets the cancellation through, and leaves the database open to
the next writer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from portside.metadata.database import Database, migrate
from tests.servers import database_url

# Long enough to be cancelled in its middle on any machine, short enough to finish in the thread.
SLOW = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) SELECT count(*) FROM n"
PG_SLOW = "SELECT pg_sleep(1)"


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    url = database_url(backend, tmp_path)
    migrate(url)
    yield url


def test_a_write_cancelled_mid_statement_lets_the_next_writer_in(db_url: str) -> None:
    async def scenario() -> tuple[BaseException | None, int]:
        db = Database(db_url)
        try:
            async def slow_write() -> None:
                async with db.write(content=False) as conn:
                    await conn.execute(text("SELECT 1"))
                    await conn.exec_driver_sql(PG_SLOW if db.dialect == "postgresql" else SLOW)

            task = asyncio.create_task(slow_write())
            await asyncio.sleep(0.05)
            task.cancel()
            outcome: BaseException | None = None
            try:
                await task
            except BaseException as exc:  # the test looks at which one
                outcome = exc
            # The next writer gets in well within SQLite's busy timeout.
            async with asyncio.timeout(10), db.write(content=False) as conn:
                value = (await conn.execute(text("SELECT 42"))).scalar_one()
            return outcome, value
        finally:
            with contextlib.suppress(Exception):
                await db.close()

    outcome, value = asyncio.run(scenario())
    assert isinstance(outcome, asyncio.CancelledError), repr(outcome)
    assert value == 42

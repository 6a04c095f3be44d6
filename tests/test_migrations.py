"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from portside.metadata.database import migrate, sync_url
from portside.schema import all_tables
from tests.servers import new_postgres_database


def test_migrated_schema_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'portside.db'}"
    migrate(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert "uploads" not in inspect(conn).get_table_names()  # sessions live in the blob store
            differences = compare_metadata(MigrationContext.configure(conn), all_tables())
    finally:
        engine.dispose()
    assert differences == []


def test_replicas_migrating_at_once_all_succeed() -> None:
    """Several replicas start together on one fresh PostgreSQL database: one migrates, the others wait
    for it and find the schema current, instead of failing on tables created meanwhile."""
    url = new_postgres_database()
    # Each waits for the same moment once its imports are done, so the migrations really overlap.
    code = ("import sys, time; from portside.metadata.database import migrate;"
            " time.sleep(max(0.0, float(sys.argv[2]) - time.time())); migrate(sys.argv[1])")
    start = str(time.time() + 4)
    replicas = [subprocess.Popen([sys.executable, "-c", code, url, start], stderr=subprocess.PIPE) for _ in range(4)]
    outcomes = [(p.wait(120), p.stderr.read().decode() if p.stderr else "") for p in replicas]
    assert [rc for rc, _ in outcomes] == [0] * 4, outcomes
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            assert "event_outbox" in inspect(conn).get_table_names()
    finally:
        engine.dispose()

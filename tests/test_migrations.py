"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from portside.metadata.database import migrate
from portside.schema import all_tables


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

"""Alembic environment: runs migrations on a sync connection to the URL `migrate()` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from portside.schema import all_tables

config = context.config
url = config.attributes["url"]
engine = create_engine(url, poolclass=pool.NullPool)
# Replicas starting together all migrate: on PostgreSQL the first takes this lock for its transaction,
# the others wait and then find the schema current (any constant works; this one spells "portside").
MIGRATION_LOCK = 0x706F72747369646

with engine.connect() as connection:
    if url.get_backend_name() == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=all_tables(),
        render_as_batch=url.get_backend_name() == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
engine.dispose()

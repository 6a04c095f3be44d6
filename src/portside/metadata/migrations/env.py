"""Alembic environment: runs migrations on a sync connection to the URL `migrate()` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from portside.schema import all_tables

config = context.config
url = config.attributes["url"]
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
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

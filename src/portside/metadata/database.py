"""The database handle: one async engine, read and write connections, and migrations.

SQLite runs in WAL mode with write transactions opened as `BEGIN IMMEDIATE`, so a writer never fails
to upgrade a read lock; writers queue on a `WriterLock` first, which wakes the next one as soon as the
database is free; reads run outside transactions.
PostgreSQL uses ordinary transactions through psycopg 3.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from portside.errors import WriteConflict
from portside.metadata.changes import CHANNEL, CONTENT_ONLY, ChangeCounter
from portside.metadata.writer_lock import WriterLock

if TYPE_CHECKING:
    # PostgreSQL's INSERT has the same ON CONFLICT methods; one name keeps the callers' types simple.
    from sqlalchemy.dialects.sqlite import Insert

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_IDLE_CONNECTIONS = 2


def async_url(url: str) -> URL:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        from portside.metadata import sqlite_driver  # registers the dialect

        return u.set(drivername=f"sqlite+{sqlite_driver.DRIVER}")
    if u.get_backend_name() == "postgresql":
        return u.set(drivername="postgresql+psycopg")
    raise ValueError(f"unsupported database URL scheme {u.drivername!r}: use sqlite:/// or postgresql://")


def sync_url(url: str) -> URL:
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        return u.set(drivername="postgresql+psycopg")
    return u.set(drivername="sqlite")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let us issue BEGIN ourselves (pysqlite's implicit transactions would defeat BEGIN IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, changes: ChangeCounter | None = None) -> None:
        self.url = url
        self.changes = changes or ChangeCounter()
        target = async_url(url)
        self.dialect = target.get_backend_name()
        self._writers: WriterLock | None = None
        if self.dialect == "sqlite":
            on_disk = bool(target.database) and target.database != ":memory:"
            if on_disk:
                Path(str(target.database)).parent.mkdir(parents=True, exist_ok=True)
            self._writers = WriterLock(Path(f"{target.database}.writer-lock") if on_disk else None)
            # Each aiosqlite connection is a thread with its own page cache: keep few idle, burst as before.
            idle = min(pool_size, SQLITE_IDLE_CONNECTIONS)
            # Autocommit on every connection, set once: we issue BEGIN IMMEDIATE/COMMIT ourselves, so
            # no per-checkout isolation switch and no reset on return (each a trip to aiosqlite's thread).
            self.engine: AsyncEngine = create_async_engine(
                target, pool_size=idle, max_overflow=2 * pool_size - idle,
                isolation_level="AUTOCOMMIT", pool_reset_on_return=None,
            )
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_async_engine(
                target, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )

    @property
    def insert(self) -> Callable[[Any], Insert]:
        """This dialect's INSERT, which has ON CONFLICT. Only the dialect in use is imported (the
        other costs each worker about 2 MiB)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert  # type: ignore[return-value]
        from sqlalchemy.dialects.sqlite import insert

        return insert

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads that need no transaction (each statement sees committed data)."""
        async with self.engine.connect() as conn:
            if self.dialect != "sqlite":  # SQLite connections are autocommit already
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    @asynccontextmanager
    async def write(self, *, content: bool = True, access: bool = True,
                    conflict: str = "the change conflicts with one made meanwhile") -> AsyncIterator[AsyncConnection]:
        """A transaction: committed when the block ends, rolled back when it raises. A broken unique or
        reference rule raises WriteConflict with the `conflict` message, so callers never see the driver's
        IntegrityError.

        `content=False` marks bookkeeping writes (pull times, audit, jobs) that change nothing the
        read caches hold, so they do not invalidate them. `access=False` marks writes of content
        only (blobs, manifests, tags): they leave projects, members and accounts alone, so the
        caches of those stay valid."""
        try:
            async with self._transaction(content, access) as conn:
                yield conn
        except IntegrityError:
            raise WriteConflict(conflict) from None

    @asynccontextmanager
    async def _transaction(self, content: bool, access: bool) -> AsyncIterator[AsyncConnection]:
        if self.dialect != "sqlite":
            async with self.engine.begin() as conn:
                yield conn
                if content:
                    payload = "" if access else f", '{CONTENT_ONLY}'"
                    await conn.exec_driver_sql(f"NOTIFY {CHANNEL}{payload}")
            if content:
                self.changes.bump(access=access)
        else:
            assert self._writers is not None
            async with self._writers.hold(), self.engine.connect() as conn:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    await _roll_back(conn)
                    raise
                await conn.exec_driver_sql("COMMIT")
                if content:  # before the next writer starts: it may decide from cached reads
                    self.changes.bump(access=access)

    def listen_url(self) -> str | None:
        """A libpq connection string for LISTEN, on PostgreSQL."""
        if self.dialect != "postgresql":
            return None
        return sync_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
        if self._writers is not None:
            self._writers.close()


async def _roll_back(conn: AsyncConnection) -> None:
    """End a failed SQLite transaction without hiding why it failed. A statement cancelled midway (a
    graceful stop cancels background writers) makes SQLAlchemy invalidate the connection, and a plain
    ROLLBACK then raises instead: closing the connection is what ends the transaction there. Masking
    the CancelledError would also let the cancelled task carry on as if nothing had happened."""
    try:
        await conn.exec_driver_sql("ROLLBACK")
    except Exception:
        await conn.invalidate()  # closes the SQLite connection, which rolls back and frees the lock


def migrate(url: str) -> None:
    """Bring the schema to the newest revision (Alembic), creating the database file if needed."""
    from alembic import command
    from alembic.config import Config

    target = sync_url(url)
    if target.get_backend_name() == "sqlite" and target.database and target.database != ":memory:":
        Path(target.database).parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["url"] = target
    command.upgrade(config, "head")

"""SQLAlchemy's aiosqlite dialect, with one trip to the connection's thread per statement.

aiosqlite runs each SQLite connection on a thread of its own; every call is a hand-off to that
thread and back (about 0.1 ms here). SQLAlchemy's adapter makes three or four per statement (open a
cursor, execute, fetch the rows, close), so a five-statement push transaction spent ~2 ms just
crossing threads. This cursor does all of it in one call on the connection's thread and keeps the
rows; the rest of the dialect is SQLAlchemy's. Registered as `sqlite+portside_aiosqlite`.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util import await_only as await_

DRIVER = "portside_aiosqlite"


class _NotExecuted:
    """What the cursor reports before its first statement ran."""

    description = None
    rowcount = -1
    lastrowid = None
    arraysize = 1

    def close(self) -> None:
        pass


_NOT_EXECUTED = _NotExecuted()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()
    _awaitable_cursor_close = False  # the SQLite cursor is closed on its thread, right after the rows are read

    def _make_new_cursor(self, connection: Any) -> Any:
        return _NOT_EXECUTED

    def _aenter_cursor(self, cursor: Any) -> Any:
        return cursor

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        return await self._one_trip(lambda cursor: cursor.execute(operation, () if parameters is None else parameters))

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        return await self._one_trip(lambda cursor: cursor.executemany(operation, seq_of_parameters))

    async def _one_trip(self, call: Callable[[sqlite3.Cursor], object]) -> sqlite3.Cursor:
        """Open a cursor, run `call` on it, read any rows and close it, all on the connection's thread."""
        conn = self._connection

        def run() -> tuple[sqlite3.Cursor, list[Any] | None]:
            cursor: sqlite3.Cursor = conn._conn.cursor()
            try:
                call(cursor)
                return cursor, cursor.fetchall() if cursor.description else None
            finally:
                cursor.close()  # description, rowcount and lastrowid stay readable

        async with self._adapt_connection._execute_mutex:
            done: tuple[sqlite3.Cursor, list[Any] | None] = await conn._execute(run)
        cursor, rows = done
        self._cursor = cast(Any, cursor)  # closed already: only its description and counts are read
        if rows is not None:
            self._rows = collections.deque(rows)
        return cursor


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor

    def rollback(self) -> None:
        # SQLAlchemy rolls back what it thinks it began whenever a connection goes back to the pool,
        # autocommit or not: after every read, and after our own COMMIT. With no transaction open
        # in SQLite there is nothing to undo, and skipping it saves a trip to the connection's thread.
        if self._connection.in_transaction:
            super().rollback()


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _Connection:
        connection = self.aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True
        return _Connection(self, await_(connection))


class PortsideSQLiteDialect(SQLiteDialect_aiosqlite):
    driver = DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> _DBAPI:
        return _DBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(f"sqlite.{DRIVER}", __name__, "PortsideSQLiteDialect")

"""Many-row INSERTs through the driver's own executemany.

SQLAlchemy's executemany converts every row dict to its parameter form in Python (about 20 us a
row here); for a table that takes thousands of rows a second (the audit log under pulls) that was
most of the cost. This compiles the statement once for the database in use, converts each value
with its column type's own bind processor, and hands the driver plain rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from portside.metadata.database import Database


class BulkInsert:
    def __init__(self, db: Database, table: Table, columns: Sequence[str]) -> None:
        dialect = db.engine.dialect
        statement = insert(table).values({name: bindparam(name, type_=table.c[name].type) for name in columns})
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.columns = tuple(columns)
        positions = {name: i for i, name in enumerate(self.columns)}
        # The driver's order for positional styles (SQLite's ?), names for named ones (psycopg's %(x)s).
        order = compiled.positiontup if compiled.positional else None
        self._order = [positions[name] for name in order] if order else None
        self._convert: list[tuple[int, Callable[[Any], Any]]] = [
            (i, processor) for i, name in enumerate(self.columns)
            if (processor := table.c[name].type.bind_processor(dialect)) is not None
        ]

    def _driver_row(self, values: Sequence[Any]) -> tuple[Any, ...] | dict[str, Any]:
        row = list(values)
        for i, convert in self._convert:
            row[i] = convert(row[i])
        if self._order is None:
            return dict(zip(self.columns, row, strict=True))
        return tuple(row[i] for i in self._order)

    async def execute(self, conn: AsyncConnection, rows: Iterable[Sequence[Any]]) -> None:
        """Insert rows given as values in `columns` order, inside the caller's transaction."""
        prepared = [self._driver_row(values) for values in rows]
        if prepared:
            await conn.exec_driver_sql(self.sql, prepared)

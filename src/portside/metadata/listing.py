"""One query language for list endpoints: Harbor's `q` terms, `sort` and paging turned into SQL.

A `Listing` declares, per list endpoint, the columns a caller may filter (`q`) and sort on; `ListQuery`
is what the caller asked for. `conditions`/`order_by` build the WHERE and ORDER BY (always ending on a
unique column, so pages never overlap), `fetch_page` adds LIMIT/OFFSET and a COUNT for X-Total-Count.
Keys a listing does not declare are refused (400) naming the allowed ones: ignoring them would widen
a selection that a cleanup script may be about to delete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, cast, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from portside.errors import Invalid
from portside.listquery import ListQuery, Term
from portside.numbers import parse_int

TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


Condition = Callable[[Term], ColumnElement[bool]]


@dataclass(frozen=True, slots=True)
class Field:
    """A filterable column: `kind` says how q values compare ("text", "int" or "time"); `condition`
    replaces the generic comparison (a join, an EXISTS); `ranges` False refuses `[a~b]` on it."""

    column: ColumnElement[Any] | None = None
    kind: str = "text"
    condition: Condition | None = None
    ranges: bool = True


@dataclass(frozen=True, slots=True)
class Listing:
    what: str  # "audit logs": for error messages
    fields: Mapping[str, Field]
    sortable: Mapping[str, ColumnElement[Any]]
    default_sort: tuple[tuple[str, bool], ...]
    unique: ColumnElement[Any]  # the tiebreaker
    passive: frozenset[str] = field(default_factory=frozenset)  # q keys the caller handles itself

    def check(self, query: ListQuery) -> None:
        allowed = sorted({*self.fields, *self.passive})
        for term in query.terms:
            if term.key not in self.fields and term.key not in self.passive:
                raise Invalid(f"cannot filter {self.what} by {term.key!r}: use one of {', '.join(allowed)}")
        for key, _ in query.sort:
            if key not in self.sortable:
                raise Invalid(f"cannot sort {self.what} by {key!r}: use one of {', '.join(sorted(self.sortable))}")

    def conditions(self, query: ListQuery) -> list[ColumnElement[bool]]:
        self.check(query)
        return [condition(self.fields[t.key], t) for t in query.terms if t.key in self.fields]

    def order_by(self, query: ListQuery) -> list[ColumnElement[Any]]:
        self.check(query)
        keys = query.sort or self.default_sort
        out: list[ColumnElement[Any]] = []
        for key, desc in keys:  # NULLs first ascending and last descending, the same on every backend
            column = self.sortable[key]
            out.append(column.desc().nulls_last() if desc else column.asc().nulls_first())
        if not any(self.sortable[key] is self.unique for key, _ in keys):
            out.append(self.unique.desc() if keys[0][1] else self.unique.asc())
        return out


def parse_time(text: str) -> datetime:
    """`2006-01-02 15:04:05` (Harbor's form, UTC), ISO 8601 with an offset or `Z`, a date, or unix seconds."""
    text = text.strip()
    try:
        return _parse_time(text)
    except (OverflowError, OSError, ValueError):  # a number of seconds or an offset beyond datetime's years
        raise Invalid(f"time {text!r} is out of range") from None


def _parse_time(text: str) -> datetime:
    seconds = parse_int(text, low=0)
    if seconds is not None:
        return datetime.fromtimestamp(seconds, UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    for fmt in TIME_FORMATS:
        if parsed is not None:
            break
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
    if parsed is None:
        raise Invalid(f"invalid time {text!r}: use 'YYYY-MM-DD hh:mm:ss' (UTC) or ISO 8601")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _int(term: Term, text: str) -> int:
    number = parse_int(text)
    if number is None:
        raise Invalid(f"{term.key}: {text!r} is not a 64-bit integer")
    return number


def condition(f: Field, term: Term) -> ColumnElement[bool]:
    """`term` as a SQL condition on the field."""
    if f.condition is not None:
        return f.condition(term)
    assert f.column is not None
    column = f.column
    if term.kind == "range" and not f.ranges:
        raise Invalid(f"{term.key} cannot be filtered by a range")
    if f.kind == "time":
        return _time_condition(column, term)
    if f.kind == "int":
        if term.kind == "fuzzy":  # digits anywhere in the number
            return cast(column, String).like(f"%{escape_like(term.values[0])}%", escape="\\")
        if term.kind == "range":
            low, high = term.values
            conds = [*([column >= _int(term, low)] if low else []), *([column <= _int(term, high)] if high else [])]
            return and_(true(), *conds)
        numbers = [_int(term, v) for v in term.values]
        return column.in_(numbers) if term.kind == "any" else column == numbers[0]
    if term.kind == "fuzzy":
        return column.like(f"%{escape_like(term.values[0])}%", escape="\\")
    if term.kind == "any":
        return column.in_(term.values) if term.values else false()
    if term.kind == "range":
        low, high = term.values
        return and_(true(), *([column >= low] if low else []), *([column <= high] if high else []))
    return column == term.values[0]


def _time_condition(column: ColumnElement[Any], term: Term) -> ColumnElement[bool]:
    if term.kind == "range":
        low, high = term.values
        return and_(true(), *([column >= parse_time(low)] if low else []),
                    *([column <= parse_time(high)] if high else []))
    if term.kind == "exact":  # to the second, as Harbor writes times
        moment = parse_time(term.values[0])
        return and_(column >= moment, column < moment + timedelta(seconds=1))
    if term.kind == "any":
        return or_(false(), *(_time_condition(column, Term(term.key, "exact", (v,))) for v in term.values))
    raise Invalid(f"{term.key} takes a range: {term.key}=[2006-01-02 15:04:05~2006-01-03 15:04:05]")


def ordered(listing: Listing, query: Select[Any], request: ListQuery,
            extra: Sequence[ColumnElement[bool]] = ()) -> Select[Any]:
    """`query` filtered by `request` (and `extra` conditions) and sorted, not paged."""
    return query.where(and_(true(), *listing.conditions(request), *extra)).order_by(*listing.order_by(request))


async def fetch_page(conn: AsyncConnection, listing: Listing, query: Select[Any], request: ListQuery,
                     extra: Sequence[ColumnElement[bool]] = ()) -> tuple[list[Any], int]:
    """One page of `query` filtered by `request` (and `extra` conditions), and the number of all matches."""
    filtered = ordered(listing, query, request, extra)
    counted = filtered.order_by(None).with_only_columns(listing.unique, maintain_column_froms=True).subquery()
    total = int((await conn.execute(select(func.count()).select_from(counted))).scalar_one())
    rows = await conn.execute(filtered.offset(request.offset).limit(request.limit))
    return list(rows), total

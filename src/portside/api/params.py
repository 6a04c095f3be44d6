"""Bounded types for the integers a request carries (ids, paging), used by every /api/v2.0 route.

An id is a database key: a positive 32-bit integer (PostgreSQL's `integer`). Anything outside that
range is refused with 400 before it reaches a query, where it would overflow the column's or the
driver's integer type.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field
from starlette.convertors import Convertor, register_url_convertor

MAX_ID = 2**31 - 1
MAX_PAGE_SIZE = 100  # Harbor's maximum
MAX_PAGE = (2**63 - 1) // MAX_PAGE_SIZE  # so that the row offset (a 64-bit OFFSET) cannot overflow

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int, Query(ge=1, le=MAX_ID)]  # an id given as a query parameter
# numbers in JSON bodies, as wide as the columns they are stored in
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Page = Annotated[int, Query(ge=1, le=MAX_PAGE)]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]


class RepositoryNameConvertor(Convertor[str]):
    """A repository name in a path: one or more segments (Harbor clients send one, its slashes encoded
    twice, `a%252Fb`; bare slashes are accepted too), no segment after the first being `artifacts`.
    A path that goes on past `.../artifacts/...` is a sub-resource, not a nested repository name: a route
    Portside lacks answers 404 for the path instead of "repository .../artifacts/x/labels not found"."""

    regex = r"[^/]+(?:/(?!artifacts(?:/|$))[^/]+)*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("repository", RepositoryNameConvertor())
REPOSITORY_NAME = "{repository_name:repository}"  # use in route paths (importing this registers the convertor)

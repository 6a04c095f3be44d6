"""`n`/`last` query parameters and the RFC 5988 `Link` header for paged listings."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request

from portside.content.listing import Page
from portside.errors import Invalid
from portside.numbers import parse_int


class PaginationInvalid(Invalid):
    pass


def page_params(request: Request) -> tuple[int | None, str | None]:
    raw = request.query_params.get("n")
    n: int | None = None
    if raw is not None and raw != "":
        n = parse_int(raw, low=0)
        if n is None:
            raise PaginationInvalid(f"n must be a non-negative 64-bit integer, not {raw!r}")
    last = request.query_params.get("last") or None
    if last is not None and "\x00" in last:  # no name or tag holds one, and PostgreSQL refuses it in a query
        raise PaginationInvalid("last must not contain a NUL character")
    return n, last


def link_header(path: str, page: Page, n: int | None) -> dict[str, str]:
    if not page.more or not page.items:
        return {}
    params = {"last": page.items[-1]}
    if n is not None:
        params = {"n": str(n), **params}
    return {"Link": f'<{path}?{urlencode(params)}>; rel="next"'}

"""`n`/`last` query parameters and the RFC 5988 `Link` header for paged listings."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request

from portside.content.listing import Page
from portside.errors import Invalid


class PaginationInvalid(Invalid):
    pass


def page_params(request: Request) -> tuple[int | None, str | None]:
    raw = request.query_params.get("n")
    n: int | None = None
    if raw is not None and raw != "":
        if not raw.isdigit():
            raise PaginationInvalid(f"n must be a non-negative integer, not {raw!r}")
        n = int(raw)
    return n, request.query_params.get("last") or None


def link_header(path: str, page: Page, n: int | None) -> dict[str, str]:
    if not page.more or not page.items:
        return {}
    params = {"last": page.items[-1]}
    if n is not None:
        params = {"n": str(n), **params}
    return {"Link": f'<{path}?{urlencode(params)}>; rel="next"'}

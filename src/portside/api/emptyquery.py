"""Empty query values mean "the default" on every /api/v2.0 endpoint, as in Harbor: `?page=&q=`
is `?` (portals and scripts send parameters they have no value for)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


def without_empty_values(query: bytes) -> bytes:
    """`query` without its `name=` and bare `name` parameters; the others byte for byte."""
    return b"&".join(p for p in query.split(b"&") if p.partition(b"=")[2])


class EmptyQueryMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            scope = {**scope, "query_string": without_empty_values(scope["query_string"])}
        await self.app(scope, receive, send)

"""Who is on the other end of a request, as the audit log and the login throttle record it."""

from __future__ import annotations

from starlette.requests import HTTPConnection


def client_ip(request: HTTPConnection) -> str:
    return request.client.host if request.client else ""

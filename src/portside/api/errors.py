"""The only place /api/v2.0 learns about status codes: domain error -> Harbor error code and status.

Harbor answers errors as {"errors": [{"code": "...", "message": "..."}]}.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from portside import errors as e

HARBOR_ERRORS: dict[type[e.PortsideError], tuple[str, int]] = {
    e.Invalid: ("BAD_REQUEST", 400),
    e.InvalidName: ("BAD_REQUEST", 400),
    e.InvalidTag: ("BAD_REQUEST", 400),
    e.InvalidDigest: ("BAD_REQUEST", 400),
    e.Unauthorized: ("UNAUTHORIZED", 401),
    e.Denied: ("FORBIDDEN", 403),
    e.TagImmutable: ("PRECONDITION", 412),  # Harbor's API answers 412 here; /v2 keeps 403 DENIED
    e.QuotaExceeded: ("FORBIDDEN", 403),
    e.NotFound: ("NOT_FOUND", 404),
    e.RepositoryUnknown: ("NOT_FOUND", 404),
    e.ManifestUnknown: ("NOT_FOUND", 404),
    e.BlobUnknown: ("NOT_FOUND", 404),
    e.Conflict: ("CONFLICT", 409),
    e.InUse: ("PRECONDITION", 412),
    e.TooManyRequests: ("TOO_MANY_REQUEST", 429),
    e.Unsupported: ("METHOD_NOT_ALLOWED", 405),
    e.PortsideError: ("BAD_REQUEST", 400),
}


def harbor_error(code: str, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"errors": [{"code": code, "message": message}]}, status_code=status, headers=headers)


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, e.PortsideError)
    for cls in type(exc).__mro__:
        if cls in HARBOR_ERRORS:
            code, status = HARBOR_ERRORS[cls]
            break
    headers = {"WWW-Authenticate": 'Basic realm="portside"'} if status == 401 else None
    return harbor_error(code, status, exc.message, headers)


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"] if p != "body")
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return harbor_error("BAD_REQUEST", 400, "; ".join(parts) or "invalid request")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
             405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 412: "PRECONDITION", 415: "UNSUPPORTED_MEDIA_TYPE"}
    message = str(exc.detail)
    if exc.status_code == 405:  # the router's own answer for a known path
        message = f"{request.method} is not allowed on {request.url.path}"
    return harbor_error(codes.get(exc.status_code, "INTERNAL_SERVER_ERROR"), exc.status_code, message,
                        dict(exc.headers) if exc.headers else None)


async def unknown_path(scope: Scope, receive: Receive, send: Send) -> None:
    """What the router answers for a path no route has, naming it as the client sent it."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else Request(scope).url.path
    await harbor_error("NOT_FOUND", 404, f"{path} not found: no such API path")(scope, receive, send)

"""The gate in front of the management mounts (/api/v2.0 and /c): a request body is read only from
someone signed in, and never beyond `api.max_body_bytes`.

Anonymous or wrongly signed requests that carry a body get 401 before a byte of it is read (the
sign-in form at /c/login is the exception: it is capped only). A declared Content-Length over the cap
gets 413 at once; a chunked body is counted as it arrives and refused at the cap, so a worker holds at
most the cap per request. Bodies under the cap are buffered here and handed on whole.

Plain ASGI over Starlette only: the FastAPI apps behind it are built on their first use, and a request
refused here does not build them.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portside.auth.sessions import COOKIE as SESSION_COOKIE
from portside.clientinfo import client_ip
from portside.errors import TooManyRequests, Unauthorized
from portside.numbers import parse_int
from portside.services import Services

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _error(code: str, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [{"code": code, "message": message}]}, status_code=status, headers=headers)


class BodyGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int, *, require_sign_in: bool) -> None:
        self.app = app
        self.require_sign_in = require_sign_in
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if not chunked and (length is None or length.strip() == "0"):
            await self.app(scope, receive, send)
            return
        if self.require_sign_in:
            refusal = await self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        if length is not None and not chunked:
            size = parse_int(length, low=0)
            if size is None:
                await _error("BAD_REQUEST", 400, "invalid Content-Length")(scope, receive, send)
                return
            if size > self.limit:
                await self._too_large()(scope, receive, send)
                return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.limit:
                await self._too_large()(scope, receive, send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    def _too_large(self) -> JSONResponse:
        return _error("PAYLOAD_TOO_LARGE", 413, f"the request body is larger than {self.limit} bytes")

    async def _refusal(self, scope: Scope) -> JSONResponse | None:
        """None when the request's credentials hold; otherwise the answer (401, or 429 when throttled)."""
        connection = HTTPConnection(scope)
        try:
            if await self._signed_in(connection):
                return None
            message = "sign in to do this"
        except Unauthorized as exc:
            message = exc.message
        except TooManyRequests as exc:
            return _error("TOO_MANY_REQUEST", 429, exc.message, {"Retry-After": str(exc.retry_after)})
        return _error("UNAUTHORIZED", 401, message, {"WWW-Authenticate": 'Basic realm="portside"'})

    async def _signed_in(self, connection: HTTPConnection) -> bool:
        """The same credentials the routes accept (portside.api.deps), checked the same way."""
        services: Services = connection.app.state.services  # built in the app's lifespan
        access, sessions = services.access, services.sessions
        header = connection.headers.get("authorization")
        if header:
            if not header.lower().startswith("basic "):
                return False
            principal, _ = await access.identify(header, client_ip(connection))
            return not principal.is_anonymous
        cookie = connection.cookies.get(SESSION_COOKIE)
        if cookie and sessions is not None:
            session = sessions.verify(cookie)
            return session is not None and \
                await access.principal_for_session(session.user_id, session.generation) is not None
        return False


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read already, then whatever the connection says next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

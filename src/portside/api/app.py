"""Assemble the /api/v2.0 FastAPI application from the routers the features bring (see `portside.app`)."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portside import __version__
from portside.api import errors, session
from portside.api.deps import CSRF_HEADER
from portside.api.emptyquery import EmptyQueryMiddleware
from portside.api.textguard import TextGuardMiddleware
from portside.errors import PortsideError
from portside.services import Services


class CsrfHeaderMiddleware:
    """Echo the session's CSRF token on every response, so the portal can send it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and state.get("csrf"):
                message["headers"] = [*message.get("headers", []), (CSRF_HEADER.lower().encode(),
                                                                    state["csrf"].encode())]
            await send(message)

        await self.app(scope, receive, send_wrapper)


def build_api(services: Services, routers: Iterable[APIRouter]) -> FastAPI:
    api = FastAPI(title="Portside management API", version=__version__,
                  description="Harbor-compatible /api/v2.0", docs_url="/docs", openapi_url="/openapi.json")
    api.state.services = services
    api.add_exception_handler(PortsideError, errors.domain_error)
    api.add_exception_handler(RequestValidationError, errors.validation_error)
    api.add_exception_handler(HTTPException, errors.http_error)
    for router in routers:  # in order: the first whose path and method match answers
        api.include_router(router)
    api.router.default = errors.unknown_path
    api.add_middleware(CsrfHeaderMiddleware)
    api.add_middleware(EmptyQueryMiddleware)
    api.add_middleware(TextGuardMiddleware)
    return api


def build_portal_session_api(services: Services) -> FastAPI:
    """Harbor's portal sign-in endpoints, mounted at /c."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.services = services
    app.add_exception_handler(PortsideError, errors.domain_error)
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    app.include_router(session.router)
    app.add_middleware(TextGuardMiddleware)
    return app

"""Portal sign-in and sign-out (Harbor's /c/login and /c/log_out), setting the session cookie."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request, Response

from portside.api.deps import CSRF_HEADER, SESSION_COOKIE, ServicesDep
from portside.audit.recorder import AuditEvent
from portside.clientinfo import client_ip
from portside.errors import Unauthorized, Unsupported

router = APIRouter(tags=["session"])


@router.post("/login")
async def login(request: Request, services: ServicesDep, principal: str = Form(...),
                password: str = Form(...)) -> Response:
    if services.sessions is None:
        raise Unsupported("this registry runs without authentication")
    ip = client_ip(request)
    try:
        who = await services.access.login(principal, password, ip)
    except Unauthorized:
        services.audit.record(AuditEvent("login", "login", "portal", principal, client_ip=ip, success=False))
        raise
    if who.kind != "user":
        raise Unauthorized("robot accounts cannot sign in to the portal")
    services.audit.record(AuditEvent("login", "login", "portal", who.name, client_ip=ip))
    token, session = services.sessions.issue(who.name)
    response = Response(status_code=200, headers={CSRF_HEADER: session.csrf})
    response.set_cookie(SESSION_COOKIE, token, max_age=services.sessions.ttl, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.get("/log_out")
async def log_out() -> Response:
    response = Response(status_code=200)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response

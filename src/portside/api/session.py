"""Portal sign-in and sign-out (Harbor's /c/login and /c/log_out), setting the session cookie."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request, Response

from portside.api.deps import CSRF_HEADER, ServicesDep
from portside.audit.recorder import AuditEvent
from portside.auth.sessions import COOKIE as SESSION_COOKIE
from portside.clientinfo import client_ip
from portside.errors import NotFound, Unauthorized, Unsupported

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
    try:
        user = await services.user_admin.get(who.id or 0)
    except NotFound:  # deleted while signing in
        raise Unauthorized("invalid username or password") from None
    services.audit.record(AuditEvent("login", "login", "portal", who.name, client_ip=ip))
    token, session = services.sessions.issue(user.id, user.session_generation)
    response = Response(status_code=200, headers={CSRF_HEADER: session.csrf})
    response.set_cookie(SESSION_COOKIE, token, max_age=services.sessions.ttl, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.get("/log_out")
async def log_out(request: Request, services: ServicesDep) -> Response:
    """Ends every portal session of the signed-in user, not only this browser's."""
    cookie = request.cookies.get(SESSION_COOKIE)
    session = services.sessions.verify(cookie) if cookie and services.sessions is not None else None
    if session is not None and await services.access.principal_for_session(session.user_id, session.generation):
        await services.user_admin.end_sessions(session.user_id)
    response = Response(status_code=200)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response

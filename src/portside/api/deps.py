"""Request-scoped dependencies: the caller (Basic auth or portal session cookie), CSRF, permissions."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from portside.audit.recorder import AuditEvent
from portside.auth.principal import ANONYMOUS, Principal
from portside.auth.sessions import COOKIE as SESSION_COOKIE
from portside.clientinfo import client_ip
from portside.errors import Denied, NotFound, Unauthorized
from portside.management.projects import ProjectRow
from portside.services import Services

CSRF_HEADER = "X-Harbor-CSRF-Token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(request: Request, services: ServicesDep) -> Principal:
    """Basic credentials win; otherwise a portal session cookie (unsafe methods must echo its CSRF
    token); otherwise anonymous. Bearer registry tokens are not accepted here."""
    header = request.headers.get("authorization")
    ip = client_ip(request)
    if header:
        if not header.lower().startswith("basic "):
            raise Unauthorized("use Basic credentials or a portal session for /api/v2.0")
        principal, _ = await services.access.identify(header, ip)
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and services.sessions is not None:
        session = services.sessions.verify(cookie)
        who = None
        if session is not None:
            who = await services.access.principal_for_session(session.user_id, session.generation)
        if session is None or who is None:
            raise Unauthorized("the session has ended; sign in again")
        if request.method in UNSAFE and not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), session.csrf):
            raise Denied("CSRF token missing or wrong: send the X-Harbor-CSRF-Token header from your session")
        request.state.csrf = session.csrf
        return who
    return ANONYMOUS


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_signed_in(principal: Principal) -> Principal:
    if principal.is_anonymous:
        raise Unauthorized("sign in to do this")
    return principal


def require_sysadmin(principal: Principal) -> Principal:
    require_signed_in(principal)
    if not principal.sysadmin:
        raise Denied("only system administrators may do this")
    return principal


async def require_project_permission(services: Services, principal: Principal, project: ProjectRow,
                                     permission: str) -> None:
    """Refuse with 401/403, or 404 when the caller may not even see the project (so that private
    projects do not reveal they exist)."""
    granted = await services.access.permissions(principal, project)
    if permission in granted:
        return
    if "project:read" not in granted:
        if principal.is_anonymous:
            raise Unauthorized("sign in to do this")
        raise NotFound(f"project {project.name} not found")
    if principal.is_anonymous:
        raise Unauthorized("sign in to do this")
    raise Denied(f"{principal.name} may not {permission.replace(':', ' ')} in project {project.name}")


async def project_for(services: Services, principal: Principal, name_or_id: str, permission: str,
                      is_resource_name: str | None = None) -> ProjectRow:
    is_name = None if is_resource_name is None else is_resource_name.lower() == "true"
    try:
        project = await services.project_admin.get(name_or_id, is_name=is_name)
    except NotFound:
        if principal.is_anonymous:
            raise Unauthorized("sign in to do this") from None
        raise
    await require_project_permission(services, principal, project, permission)
    return project


def audit(services: Services, request: Request, principal: Principal, operation: str, resource_type: str,
          resource: str, project_id: int | None) -> None:
    """One audit entry for a change made through the API, with the caller's address."""
    services.audit.record(AuditEvent(operation, resource_type, resource, principal.name, project_id,
                                     client_ip=client_ip(request)))


IsResourceName = Annotated[str | None, Header(alias="X-Is-Resource-Name")]
ResourceNameInLocation = Annotated[bool, Header(alias="X-Resource-Name-In-Location")]

"""Authorization for /v2: which action a request needs, and the 401/403 answers when it is missing."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from starlette.requests import Request

from portside.audit.recorder import AuditEvent
from portside.auth.access import parse_authorization, project_of
from portside.auth.principal import Principal
from portside.clientinfo import client_ip
from portside.errors import Denied, InvalidName, RepositoryUnknown, Unauthorized
from portside.services import Services

OPEN = Principal("user", "anonymous", sysadmin=True)

REQUIRED: dict[tuple[str, str], str] = {
    ("blobs", "GET"): "pull", ("blobs", "HEAD"): "pull", ("blobs", "DELETE"): "delete",
    ("manifests", "GET"): "pull", ("manifests", "HEAD"): "pull", ("manifests", "PUT"): "push",
    ("manifests", "DELETE"): "delete", ("tags", "GET"): "pull", ("referrers", "GET"): "pull",
}


def required_action(resource: str, method: str) -> str:
    return "push" if resource == "uploads" else REQUIRED.get((resource, method), "pull")


async def authenticate(request: Request, services: Services) -> Principal:
    """Who the request acts as (401 for bad credentials); the result is kept on request.state."""
    if services.settings.open_registry:
        request.state.principal, request.state.claims = OPEN, None
        return OPEN
    try:
        principal, claims = await services.access.identify(request.headers.get("authorization"),
                                                            client_ip(request))
    except Unauthorized:
        services.audit.record(AuditEvent("login", "login", request.url.path, claimed_user(request),
                                         client_ip=client_ip(request), success=False))
        raise
    request.state.principal, request.state.claims = principal, claims
    return principal


async def allowed(request: Request, services: Services, repository: str, action: str) -> bool:
    if services.settings.open_registry:
        return True
    claims = request.state.claims
    if claims is not None:
        return bool(claims.allows("repository", repository, action))
    return action in await services.access.repository_actions(request.state.principal, repository)


async def authorize(request: Request, services: Services, repository: str, action: str) -> Principal:
    principal = await authenticate(request, services)
    project = project_of(repository)
    if not services.settings.open_registry and project is None:
        raise InvalidName(f"repository {repository!r} must be named <project>/<repository>")
    if not await allowed(request, services, repository, action):
        scope = f"repository:{repository}:{action}"
        if principal.is_anonymous or request.state.claims is not None:
            raise Unauthorized(f"authentication required to {action} {repository}", scope=scope,
                               error="insufficient_scope" if request.state.claims is not None else None)
        raise Denied(f"{principal.name} may not {action} {repository}")
    if action == "push" and project is not None:
        await ensure_project(services, project, principal)
    return principal


async def ensure_project(services: Services, name: str, principal: Principal) -> None:
    if await services.projects.by_name(name) is not None:
        return
    if services.settings.open_registry or services.settings.auth.auto_create_projects:
        try:
            async with services.db.write() as conn:
                if await services.projects.by_name(name, conn) is None:
                    await services.projects.create(conn, name, public=False, owner_id=principal.id)
        except IntegrityError:  # a concurrent first push created it (PostgreSQL does not lock the check)
            async with services.db.read() as conn:
                if await services.projects.by_name(name, conn) is None:
                    raise
        return
    raise RepositoryUnknown(
        f"project {name!r} does not exist: create it first (POST /api/v2.0/projects or `portside project create`)"
    )


def challenge(request: Request, services: Services, exc: Unauthorized) -> dict[str, str]:
    realm = services.settings.auth.realm or f"{request.base_url}service/token"
    value = f'Bearer realm="{realm}",service="{services.settings.auth.service}"'
    if exc.scope:
        value += f',scope="{exc.scope}"'
    if exc.error:
        value += f',error="{exc.error}"'
    return {"WWW-Authenticate": value}


def claimed_user(request: Request) -> str:
    try:
        creds = parse_authorization(request.headers.get("authorization"))
    except Unauthorized:
        return "unknown"
    return creds.username or ("bearer-token" if creds.scheme == "bearer" else "anonymous")

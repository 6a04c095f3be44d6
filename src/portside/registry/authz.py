"""Authorization for /v2: which action a request needs, and the 401/403 answers when it is missing."""

from __future__ import annotations

from starlette.requests import Request

from portside.audit.recorder import AuditEvent
from portside.auth.access import parse_authorization, project_of
from portside.auth.principal import Principal
from portside.clientinfo import client_ip
from portside.errors import Denied, InvalidName, RepositoryUnknown, Unauthorized
from portside.services import Services

OPEN = Principal("user", "anonymous", sysadmin=True)

PULL, PUSH, DELETE = frozenset({"pull"}), frozenset({"pull", "push"}), frozenset({"delete"})
ORDER = ("pull", "push", "delete")  # how a scope lists its actions, as the token spec's examples do

# Every action a request needs, so a 401 challenge names them all and a client that asks for exactly the
# challenged scope gets a token good for the whole request. A push also reads (HEADs of blobs and
# manifests before and after uploading), so it always needs pull too, as in Distribution. Deletes need
# delete alone, as Distribution and Harbor ask.
REQUIRED: dict[tuple[str, str], frozenset[str]] = {
    ("blobs", "DELETE"): DELETE, ("manifests", "PUT"): PUSH, ("manifests", "DELETE"): DELETE,
}


def required_actions(resource: str, method: str) -> frozenset[str]:
    return PUSH if resource == "uploads" else REQUIRED.get((resource, method), PULL)


def scope(repository: str, actions: frozenset[str]) -> str:
    return f"repository:{repository}:{','.join(a for a in ORDER if a in actions)}"


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
    return not await missing(request, services, repository, frozenset({action}))


async def missing(request: Request, services: Services, repository: str, actions: frozenset[str]) -> set[str]:
    """The actions of `actions` this request's credentials do not carry."""
    if services.settings.open_registry:
        return set()
    claims = request.state.claims
    if claims is not None:
        return {a for a in actions if not claims.allows("repository", repository, a)}
    return set(actions - await services.access.repository_actions(request.state.principal, repository))


async def authorize(request: Request, services: Services, repository: str, actions: frozenset[str]) -> Principal:
    principal = await authenticate(request, services)
    project = project_of(repository)
    if not services.settings.open_registry and project is None:
        raise InvalidName(f"repository {repository!r} must be named <project>/<repository>")
    lacking = await missing(request, services, repository, actions)
    if lacking:
        wanted = " and ".join(a for a in ORDER if a in lacking)
        if principal.is_anonymous or request.state.claims is not None:
            raise Unauthorized(f"authentication required to {wanted} {repository}", scope=scope(repository, actions),
                               error="insufficient_scope" if request.state.claims is not None else None)
        raise Denied(f"{principal.name} may not {wanted} {repository}")
    if "push" in actions and project is not None:
        await ensure_project(services, project, principal)
    return principal


CATALOG_SCOPE = "registry:catalog:*"


async def authorize_catalog(request: Request, services: Services) -> Principal:
    """Listing every repository is for system administrators, as in Harbor. A token must carry the catalog
    scope, which the token service grants to them alone; everyone else is refused, not shown a subset."""
    principal = await authenticate(request, services)
    claims = request.state.claims
    if claims is not None:
        if claims.allows("registry", "catalog", "*"):
            return principal
        raise Unauthorized("this token does not allow listing the catalog", scope=CATALOG_SCOPE,
                           error="insufficient_scope")
    if principal.is_anonymous:
        raise Unauthorized("authentication required to list repositories", scope=CATALOG_SCOPE)
    if not principal.sysadmin:
        raise Denied(f"{principal.name} may not list the catalog: only system administrators may")
    return principal


async def ensure_project(services: Services, name: str, principal: Principal) -> None:
    if await services.project_admin.find(name) is not None:
        return
    if services.settings.open_registry or services.settings.auth.auto_create_projects:
        await services.project_admin.create_on_push(name, principal.id)
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

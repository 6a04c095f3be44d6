"""/permissions: the resource/action pairs robot accounts may be granted (Harbor's `Permissions`, for
administrators). /users/current/permissions: what the caller may do within a scope (`/project/{id}` or `/system`), as
Harbor's `Permission` list ({"resource": "/project/1/repository", "action": "push"}); with `relative=true`
the resources are given relative to the scope ("repository", or "." for the project itself).
"""

from __future__ import annotations

import re

from fastapi import APIRouter

from portside.api.deps import PrincipalDep, ServicesDep, require_signed_in
from portside.auth.principal import Principal
from portside.auth.roles import Role
from portside.errors import Denied, Invalid, NotFound
from portside.management.robots import RESOURCES
from portside.services import Services

router = APIRouter(tags=["user"])

SCOPE = re.compile(r"^/(?:project/(?P<project>[^/]+)|(?P<system>system))/?$")
# System-wide actions a system administrator has (those Portside implements).
SYSADMIN = frozenset({
    "audit-log:list", "catalog:read", "project:create", "project:list", "system-volumes:read",
    "garbage-collection:create", "garbage-collection:read", "garbage-collection:list",
    "garbage-collection:update", "garbage-collection:stop", "quota:read", "quota:list", "quota:update",
    "robot:create", "robot:read", "robot:update", "robot:delete", "robot:list",
    "user:create", "user:read", "user:update", "user:delete", "user:list",
})
EVERYONE = frozenset({"project:create"})  # any signed-in user may create projects


@router.get("/permissions")
async def grantable_permissions(services: ServicesDep, principal: PrincipalDep) -> dict[str, list[dict[str, str]]]:
    require_signed_in(principal)
    if not principal.sysadmin and not await _administers_a_project(services, principal):
        raise Denied("only system and project administrators may list the grantable permissions")
    pairs = [{"resource": resource, "action": action}
             for resource in sorted(RESOURCES) for action in sorted(RESOURCES[resource])]
    return {"system": pairs, "project": pairs}


async def _administers_a_project(services: Services, principal: Principal) -> bool:
    return Role.PROJECT_ADMIN in (await services.project_admin.roles_of(principal)).values()


@router.get("/users/current/permissions")
async def current_permissions(services: ServicesDep, principal: PrincipalDep, scope: str | None = None,
                              relative: bool = False) -> list[dict[str, str]]:
    require_signed_in(principal)
    if not scope:
        return []  # as Harbor: permissions only exist within a scope
    match = SCOPE.match(scope)
    if match is None:
        raise Invalid(f"scope {scope!r}: expected /project/{{project id}} or /system")
    base = scope.rstrip("/")
    if match["system"]:
        granted = _system(principal)
        project_level = False
    else:
        granted = await _project(services, principal, match["project"])
        project_level = True
    out = []
    for permission in sorted(granted):
        resource, _, action = permission.partition(":")
        if project_level and resource == "project":
            path, rel = base, "."  # the project itself
        else:
            path, rel = f"{base}/{resource}", resource
        out.append({"resource": rel if relative else path, "action": action})
    return out


def _system(principal: Principal) -> frozenset[str]:
    if principal.sysadmin:
        return SYSADMIN
    robot = frozenset().union(*(g.permissions for g in principal.grants if g.kind == "system"))
    return (EVERYONE if principal.kind == "user" else frozenset()) | robot


async def _project(services: Services, principal: Principal, name_or_id: str) -> frozenset[str]:
    """The caller's permissions in the project; none for a project it cannot see (or that does not exist)."""
    try:
        project = await services.project_admin.get(name_or_id)
    except NotFound:
        return frozenset()
    granted = await services.access.permissions(principal, project)
    return granted if "project:read" in granted else frozenset()

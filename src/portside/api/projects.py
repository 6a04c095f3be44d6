"""/projects: create, list, read, update, delete (Harbor's `Project` and `ProjectReq` shapes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from portside.api.deps import (
    IsResourceName,
    PrincipalDep,
    ResourceNameInLocation,
    ServicesDep,
    project_for,
    require_signed_in,
)
from portside.api.pagination import PagingDep, set_page_headers
from portside.api.params import Int32, Int64
from portside.api.query import parse_q
from portside.api.timefmt import iso
from portside.audit.recorder import AuditEvent
from portside.auth.principal import Principal
from portside.clientinfo import client_ip
from portside.errors import Denied, Invalid, NotFound
from portside.management.projects import ProjectDetails, ProjectRow
from portside.services import Services

router = APIRouter(tags=["project"])


class ProjectReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    project_name: str | None = None
    public: bool | None = None
    metadata: dict[str, Any] | None = None
    storage_limit: Int64 | None = None
    cve_allowlist: dict[str, Any] | None = None
    registry_id: Int32 | None = None


def project_json(principal: Principal, project: ProjectRow, details: ProjectDetails) -> dict[str, Any]:
    role = details.role_id
    return {
        "project_id": project.id,
        "name": project.name,
        "owner_id": project.owner_id,
        "owner_name": details.owner_name,
        "creation_time": iso(project.created_at),
        "update_time": iso(project.updated_at),
        "deleted": False,
        "togglable": role == 1 or principal.sysadmin,
        "current_user_role_id": role or 0,
        "current_user_role_ids": [role] if role else [],
        "repo_count": details.repo_count,
        "registry_id": 0,
        "metadata": {**project.settings, "public": str(project.public).lower()},
        "cve_allowlist": {"id": 0, "project_id": project.id, "items": [], "expires_at": None},
    }


async def projects_json(services: Services, principal: Principal, page: list[ProjectRow]) -> list[dict[str, Any]]:
    """A page of projects, at a constant number of queries."""
    details = await services.project_admin.details(principal, page)
    return [project_json(principal, p, details[p.id]) for p in page]


def _audit(services: Services, request: Request, principal: Principal, operation: str, project: ProjectRow) -> None:
    services.audit.record(AuditEvent(operation, "project", project.name, principal.name, project.id,
                                     client_ip=client_ip(request)))


@router.head("/projects")
async def project_exists(services: ServicesDep, principal: PrincipalDep,
                         project_name: str = Query(...)) -> Response:
    require_signed_in(principal)
    if await services.project_admin.find(project_name) is None:
        raise NotFound(f"project {project_name} not found")
    return Response(status_code=200)


@router.get("/projects")
async def list_projects(request: Request, response: Response, services: ServicesDep, principal: PrincipalDep,
                        paging: PagingDep, q: str | None = None, sort: str | None = None,
                        name: str | None = None, public: bool | None = None, owner: str | None = None,
                        with_detail: bool = True) -> list[dict[str, Any]]:
    terms = parse_q(q)
    visible = await services.project_admin.list_visible(principal)
    details = await services.project_admin.details(principal, visible)
    selected = []
    for p in visible:
        owner_name = details[p.id].owner_name
        if name is not None and name not in p.name:
            continue
        if public is not None and p.public != public:
            continue
        if owner is not None and owner_name != owner:
            continue
        fields = {"name": p.name, "public": str(p.public).lower(), "project_id": str(p.id), "owner": owner_name}
        if any(not term.matches(fields.get(key)) for key, term in terms.items() if key in fields):
            continue
        selected.append(p)
    selected = _sorted(selected, sort)
    set_page_headers(request, response, paging, len(selected))
    return [project_json(principal, p, details[p.id]) for p in paging.slice(selected)]


def _sorted(items: list[ProjectRow], sort: str | None) -> list[ProjectRow]:
    if not sort:
        return sorted(items, key=lambda p: p.name)
    key = sort.lstrip("-")
    attr = {"name": "name", "creation_time": "created_at", "update_time": "updated_at",
            "project_id": "id"}.get(key, "name")
    return sorted(items, key=lambda p: getattr(p, attr), reverse=sort.startswith("-"))


@router.post("/projects", status_code=201)
async def create_project(request: Request, body: ProjectReq, services: ServicesDep, principal: PrincipalDep,
                         name_in_location: ResourceNameInLocation = False) -> Response:
    require_signed_in(principal)
    if not body.project_name:
        raise Invalid("project_name is required")
    # Like Harbor, only system administrators choose a project's storage limit; others get the default.
    limit = body.storage_limit if principal.sysadmin else None
    project = await services.project_admin.create(body.project_name, public=body.public, metadata=body.metadata,
                                                  storage_limit=limit, owner=principal)
    _audit(services, request, principal, "create", project)
    named = project.name if name_in_location else project.id
    return Response(status_code=201, headers={"Location": f"/api/v2.0/projects/{named}"})


@router.get("/projects/{project_name_or_id}")
async def get_project(project_name_or_id: str, services: ServicesDep, principal: PrincipalDep,
                      x_is_resource_name: IsResourceName = None) -> dict[str, Any]:
    project = await project_for(services, principal, project_name_or_id, "project:read", x_is_resource_name)
    return (await projects_json(services, principal, [project]))[0]


@router.put("/projects/{project_name_or_id}")
async def update_project(request: Request, project_name_or_id: str, body: ProjectReq, services: ServicesDep,
                         principal: PrincipalDep, x_is_resource_name: IsResourceName = None) -> Response:
    project = await project_for(services, principal, project_name_or_id, "project:update", x_is_resource_name)
    if body.storage_limit is not None and not principal.sysadmin:
        raise Denied("only system administrators may change a project's storage quota")
    project = await services.project_admin.update(project, public=body.public, metadata=body.metadata,
                                                  storage_limit=body.storage_limit)
    _audit(services, request, principal, "update", project)
    return Response(status_code=200)


@router.delete("/projects/{project_name_or_id}")
async def delete_project(request: Request, project_name_or_id: str, services: ServicesDep,
                         principal: PrincipalDep, x_is_resource_name: IsResourceName = None) -> Response:
    project = await project_for(services, principal, project_name_or_id, "project:delete", x_is_resource_name)
    await services.project_admin.delete(project)
    _audit(services, request, principal, "delete", project)
    return Response(status_code=200)


@router.get("/projects/{project_name_or_id}/_deletable")
async def project_deletable(project_name_or_id: str, services: ServicesDep, principal: PrincipalDep,
                            x_is_resource_name: IsResourceName = None) -> dict[str, Any]:
    project = await project_for(services, principal, project_name_or_id, "project:delete", x_is_resource_name)
    count = await services.project_admin.repository_count(project)
    if count:
        return {"deletable": False, "message": f"the project has {count} repositories"}
    return {"deletable": True, "message": ""}


@router.get("/projects/{project_name_or_id}/summary")
async def project_summary(project_name_or_id: str, services: ServicesDep, principal: PrincipalDep,
                          x_is_resource_name: IsResourceName = None) -> dict[str, Any]:
    project = await project_for(services, principal, project_name_or_id, "project:read", x_is_resource_name)
    count, by_role = await services.project_admin.summary(project)
    used = await services.quotas.usage(project.id)
    return {
        "repo_count": count,
        "project_admin_count": by_role[1], "maintainer_count": by_role[4], "developer_count": by_role[2],
        "guest_count": by_role[3], "limited_guest_count": by_role[5],
        "quota": {"hard": {"storage": project.storage_limit}, "used": {"storage": used}},
    }

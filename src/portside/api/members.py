"""/projects/{project_name_or_id}/members: who holds which role in a project (Harbor's
`ProjectMember`, `ProjectMemberEntity` and `RoleRequest` shapes; user members only, no groups)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from portside.api.deps import IsResourceName, PrincipalDep, ServicesDep, project_for
from portside.api.pagination import PagingDep, set_page_headers
from portside.api.params import Id, Int32
from portside.audit.recorder import AuditEvent
from portside.auth.principal import Principal
from portside.auth.roles import Role
from portside.clientinfo import client_ip
from portside.errors import Invalid
from portside.management.projects import MemberRow, ProjectRow
from portside.services import Services

router = APIRouter(tags=["member"])


class UserEntity(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_id: Int32 | None = None
    username: str | None = None


class ProjectMember(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role_id: Int32 | None = None
    member_user: UserEntity | None = None
    member_group: dict[str, Any] | None = None


class RoleRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role_id: Int32 | None = None


def role_name(role_id: int) -> str:
    return Role(role_id).harbor_name if role_id in Role._value2member_map_ else str(role_id)


def member_json(member: MemberRow) -> dict[str, Any]:
    return {
        "id": member.id,
        "project_id": member.project_id,
        "entity_name": member.username,
        "role_name": role_name(member.role_id),
        "role_id": member.role_id,
        "entity_id": member.user_id,
        "entity_type": "u",
    }


def _audit(services: Services, request: Request, principal: Principal, operation: str, project: ProjectRow,
           member: MemberRow) -> None:
    services.audit.record(AuditEvent(operation, "member", f"{project.name}/{member.username}", principal.name,
                                     project.id, client_ip=client_ip(request),
                                     detail=f"role={role_name(member.role_id)}"))


@router.get("/projects/{project_name_or_id}/members")
async def list_members(request: Request, response: Response, project_name_or_id: str, services: ServicesDep,
                       principal: PrincipalDep, paging: PagingDep, entityname: str | None = None,
                       x_is_resource_name: IsResourceName = None) -> list[dict[str, Any]]:
    project = await project_for(services, principal, project_name_or_id, "member:list", x_is_resource_name)
    members = await services.member_admin.members(project, entityname)
    set_page_headers(request, response, paging, len(members))
    return [member_json(m) for m in paging.slice(members)]


@router.post("/projects/{project_name_or_id}/members", status_code=201)
async def create_member(request: Request, project_name_or_id: str, body: ProjectMember, services: ServicesDep,
                        principal: PrincipalDep, x_is_resource_name: IsResourceName = None) -> Response:
    project = await project_for(services, principal, project_name_or_id, "member:create", x_is_resource_name)
    if body.member_group is not None and body.member_user is None:
        raise Invalid("group members are not supported: add users with member_user")
    if body.member_user is None:
        raise Invalid("member_user is required")
    user = await services.member_admin.find_user(user_id=body.member_user.user_id,
                                                 username=body.member_user.username)
    member = await services.member_admin.add(project, user, body.role_id)
    _audit(services, request, principal, "create", project, member)
    return Response(status_code=201,
                    headers={"Location": f"/api/v2.0/projects/{project.id}/members/{member.id}"})


@router.get("/projects/{project_name_or_id}/members/{mid}")
async def get_member(project_name_or_id: str, mid: Id, services: ServicesDep, principal: PrincipalDep,
                     x_is_resource_name: IsResourceName = None) -> dict[str, Any]:
    project = await project_for(services, principal, project_name_or_id, "member:list", x_is_resource_name)
    return member_json(await services.member_admin.get(project, mid))


@router.put("/projects/{project_name_or_id}/members/{mid}")
async def update_member(request: Request, project_name_or_id: str, mid: Id, body: RoleRequest,
                        services: ServicesDep, principal: PrincipalDep,
                        x_is_resource_name: IsResourceName = None) -> Response:
    project = await project_for(services, principal, project_name_or_id, "member:update", x_is_resource_name)
    member = await services.member_admin.get(project, mid)
    member = await services.member_admin.set_role(project, member, body.role_id)
    _audit(services, request, principal, "update", project, member)
    return Response(status_code=200)


@router.delete("/projects/{project_name_or_id}/members/{mid}")
async def delete_member(request: Request, project_name_or_id: str, mid: Id, services: ServicesDep,
                        principal: PrincipalDep, x_is_resource_name: IsResourceName = None) -> Response:
    project = await project_for(services, principal, project_name_or_id, "member:delete", x_is_resource_name)
    member = await services.member_admin.get(project, mid)
    await services.member_admin.remove(member)
    _audit(services, request, principal, "delete", project, member)
    return Response(status_code=200)

"""/audit-logs and /projects/{project_name}/logs: reading the audit log (Harbor's `AuditLog` shape).

System administrators see every entry; other callers see the entries of the projects where they may
list logs (audit-log:list), as Harbor does.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fastapi import APIRouter, Request, Response

from portside.api.deps import PrincipalDep, ServicesDep, project_for, require_signed_in
from portside.api.pagination import ListQueryDep, set_list_headers
from portside.api.timefmt import iso
from portside.auth.principal import Principal
from portside.auth.roles import PERMISSIONS, Role
from portside.listquery import ListQuery
from portside.metadata.audit import AuditRow
from portside.services import Services

router = APIRouter(tags=["auditlog"])
LOG_PERMISSION = "audit-log:list"


def audit_json(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "username": row.username,
        "resource": row.resource,
        "resource_type": row.resource_type,
        "operation": row.operation,
        "op_time": iso(row.op_time),
    }


async def loggable_project_ids(services: Services, principal: Principal) -> set[int] | None:
    """Projects whose audit entries the caller may read; None means all entries."""
    if principal.sysadmin:
        return None
    if principal.kind == "user" and principal.id is not None:
        roles = await services.projects.roles_of_user(principal.id)
        return {pid for pid, role in roles.items() if role in Role._value2member_map_
                and LOG_PERMISSION in PERMISSIONS[Role(role)]}
    async with services.db.read() as conn:
        every = await services.projects.all(conn)
    return {p.id for p in every if LOG_PERMISSION in await services.access.permissions(principal, p)}


async def _page(request: Request, response: Response, services: Services, query: ListQuery,
                project_ids: Collection[int] | None) -> list[dict[str, Any]]:
    rows, total = await services.audit_log.search(query, project_ids)
    set_list_headers(request, response, query, total)
    return [audit_json(r) for r in rows]


@router.get("/audit-logs")
async def list_audit_logs(request: Request, response: Response, services: ServicesDep, principal: PrincipalDep,
                          query: ListQueryDep) -> list[dict[str, Any]]:
    require_signed_in(principal)
    return await _page(request, response, services, query, await loggable_project_ids(services, principal))


@router.get("/projects/{project_name}/logs")
async def project_logs(request: Request, response: Response, project_name: str, services: ServicesDep,
                       principal: PrincipalDep, query: ListQueryDep) -> list[dict[str, Any]]:
    project = await project_for(services, principal, project_name, LOG_PERMISSION, "true")
    return await _page(request, response, services, query, {project.id})

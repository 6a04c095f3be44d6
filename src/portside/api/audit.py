"""/audit-logs and /projects/{project_name}/logs: reading the audit log (Harbor's `AuditLog` shape);
which entries a caller may see is decided by management/audit_log.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from portside.api.deps import PrincipalDep, ServicesDep, project_for, require_signed_in
from portside.api.pagination import ListQueryDep, set_list_headers
from portside.api.timefmt import iso
from portside.management.audit_log import LOG_PERMISSION, AuditRow

router = APIRouter(tags=["auditlog"])


def audit_json(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "username": row.username,
        "resource": row.resource,
        "resource_type": row.resource_type,
        "operation": row.operation,
        "op_time": iso(row.op_time),
    }


@router.get("/audit-logs")
async def list_audit_logs(request: Request, response: Response, services: ServicesDep, principal: PrincipalDep,
                          query: ListQueryDep) -> list[dict[str, Any]]:
    require_signed_in(principal)
    rows, total = await services.audit_log.page_for(principal, query)
    set_list_headers(request, response, query, total)
    return [audit_json(r) for r in rows]


@router.get("/projects/{project_name}/logs")
async def project_logs(request: Request, response: Response, project_name: str, services: ServicesDep,
                       principal: PrincipalDep, query: ListQueryDep) -> list[dict[str, Any]]:
    project = await project_for(services, principal, project_name, LOG_PERMISSION, "true")
    rows, total = await services.audit_log.page_of_project(project.id, query)
    set_list_headers(request, response, query, total)
    return [audit_json(r) for r in rows]

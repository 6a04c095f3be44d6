"""/quotas: project storage quotas in Harbor's `Quota` shape; the quota id is the project id.

Like Harbor, reading and changing quotas is a system-level action (system administrators); project
members see their project's quota in `GET /projects/{project}/summary`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from portside.api.deps import PrincipalDep, ServicesDep, require_sysadmin
from portside.api.pagination import PagingDep, set_page_headers
from portside.api.params import Id
from portside.api.timefmt import iso
from portside.audit.recorder import AuditEvent
from portside.clientinfo import client_ip
from portside.errors import Invalid
from portside.lifecycle.quotas import QuotaFilter, QuotaRow

router = APIRouter(tags=["quota"])


class QuotaUpdateReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    hard: dict[str, Any] | None = None


def quota_json(q: QuotaRow) -> dict[str, Any]:
    return {
        "id": q.project_id,
        "ref": {"id": q.project_id, "name": q.project_name, "owner_name": q.owner_name},
        "hard": {"storage": q.hard},
        "used": {"storage": q.used},
        "creation_time": iso(q.created_at),
        "update_time": iso(q.updated_at),
    }


@router.get("/quotas")
async def list_quotas(request: Request, response: Response, services: ServicesDep, principal: PrincipalDep,
                      paging: PagingDep, reference: str | None = None, reference_id: str | None = None,
                      sort: str | None = None) -> list[dict[str, Any]]:
    require_sysadmin(principal)
    rows = await services.quotas.list(QuotaFilter(reference, reference_id, sort))
    set_page_headers(request, response, paging, len(rows))
    return [quota_json(q) for q in paging.slice(rows)]


@router.get("/quotas/{quota_id}")
async def get_quota(quota_id: Id, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    require_sysadmin(principal)
    return quota_json(await services.quotas.get(quota_id))


@router.put("/quotas/{quota_id}")
async def update_quota(request: Request, quota_id: Id, body: QuotaUpdateReq, services: ServicesDep,
                       principal: PrincipalDep) -> Response:
    require_sysadmin(principal)
    if body.hard is None:
        raise Invalid("hard is required, e.g. {\"hard\": {\"storage\": 1073741824}}")
    quota = await services.quotas.set_hard(quota_id, body.hard)
    services.audit.record(AuditEvent("update", "quota", quota.project_name, principal.name, quota.project_id,
                                     client_ip=client_ip(request),
                                     detail=f"hard.storage={quota.hard}"))
    return Response(status_code=200)

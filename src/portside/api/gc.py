"""/system/gc: run garbage collection now or on a schedule, list runs, read their logs, stop them."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict

from portside.api.deps import PrincipalDep, ServicesDep, require_sysadmin
from portside.api.pagination import PagingDep, set_page_headers
from portside.api.params import Id
from portside.api.timefmt import iso
from portside.audit.recorder import AuditEvent
from portside.clientinfo import client_ip
from portside.errors import Invalid
from portside.jobs.queue import ExecutionRow
from portside.services import Services

router = APIRouter(tags=["gc"])


class ScheduleObj(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str | None = None
    cron: str | None = None


class ScheduleReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    schedule: ScheduleObj | None = None
    parameters: dict[str, Any] | None = None


def _params(raw: dict[str, Any] | None) -> dict[str, Any]:
    params = dict(raw or {})
    window = params.get("time_window", 2)
    if not isinstance(window, int | float) or isinstance(window, bool) or window < 0:
        raise Invalid("parameters.time_window must be a non-negative number of hours")
    for flag in ("delete_untagged", "dry_run"):
        if flag in params and not isinstance(params[flag], bool):
            raise Invalid(f"parameters.{flag} must be true or false")
    return {"delete_untagged": bool(params.get("delete_untagged", False)),
            "dry_run": bool(params.get("dry_run", False)), "time_window": window,
            "workers": int(params.get("workers", 1) or 1)}


def _history(e: ExecutionRow, schedule: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": e.id, "job_name": "GARBAGE_COLLECTION", "job_kind": "SCHEDULE" if e.trigger == "SCHEDULE" else "MANUAL",
        "job_parameters": json.dumps(e.params), "job_status": e.status, "deleted": False,
        "schedule": schedule or {"type": "Manual" if e.trigger == "MANUAL" else "Custom", "cron": ""},
        "creation_time": iso(e.created_at), "update_time": iso(e.end_time or e.start_time or e.created_at),
        "result": e.result,
    }


async def _schedule_obj(services: Services) -> dict[str, Any] | None:
    s = await services.gc_admin.schedule()
    if s is None:
        return None
    return {"type": s.schedule_type, "cron": s.cron, "next_scheduled_time": iso(s.next_run_at)}


@router.get("/system/gc")
async def list_gc(request: Request, response: Response, services: ServicesDep, principal: PrincipalDep,
                  paging: PagingDep) -> list[dict[str, Any]]:
    require_sysadmin(principal)
    runs = await services.gc_admin.runs()
    set_page_headers(request, response, paging, len(runs))
    return [_history(e) for e in paging.slice(runs)]


@router.get("/system/gc/schedule")
async def get_gc_schedule(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    require_sysadmin(principal)
    s = await services.gc_admin.schedule()
    schedule = await _schedule_obj(services) or {"type": "None", "cron": ""}
    return {"id": s.id if s else 0, "job_name": "GARBAGE_COLLECTION", "schedule": schedule,
            "job_parameters": json.dumps(s.params if s else {}),
            "creation_time": iso(s.created_at) if s else None, "update_time": iso(s.updated_at) if s else None}


async def _set_schedule(request: Request, services: Services, principal: Any, body: ScheduleReq) -> Response:
    require_sysadmin(principal)
    if body.schedule is None or not body.schedule.type:
        raise Invalid("schedule.type is required: Hourly, Daily, Weekly, Custom, Manual or None")
    params = _params(body.parameters)
    services.audit.record(AuditEvent("update", "gc", body.schedule.type, principal.name,
                                     client_ip=client_ip(request)))
    if body.schedule.type == "Manual":
        execution_id = await services.gc_admin.launch_manual(params)
        return Response(status_code=201, headers={"Location": f"/api/v2.0/system/gc/{execution_id}"})
    await services.gc_admin.set_schedule(body.schedule.type, body.schedule.cron, params)
    return Response(status_code=201 if request.method == "POST" else 200)


@router.post("/system/gc/schedule", status_code=201)
async def create_gc_schedule(request: Request, body: ScheduleReq, services: ServicesDep,
                             principal: PrincipalDep) -> Response:
    return await _set_schedule(request, services, principal, body)


@router.put("/system/gc/schedule")
async def update_gc_schedule(request: Request, body: ScheduleReq, services: ServicesDep,
                             principal: PrincipalDep) -> Response:
    return await _set_schedule(request, services, principal, body)


@router.get("/system/gc/{gc_id}")
async def get_gc(gc_id: Id, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    require_sysadmin(principal)
    return _history(await services.gc_admin.run(gc_id))


@router.put("/system/gc/{gc_id}")
async def stop_gc(gc_id: Id, services: ServicesDep, principal: PrincipalDep) -> Response:
    require_sysadmin(principal)
    await services.gc_admin.stop(gc_id)
    return Response(status_code=200)


@router.get("/system/gc/{gc_id}/log", response_class=PlainTextResponse)
async def gc_log(gc_id: Id, services: ServicesDep, principal: PrincipalDep) -> str:
    require_sysadmin(principal)
    return await services.gc_admin.log(gc_id)

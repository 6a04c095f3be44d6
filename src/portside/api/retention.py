"""/retentions: Harbor's tag retention policies, their runs (executions), per-repository tasks and logs;
plus /projects/{project_name_or_id}/retention, the project's policy (also in a shorthand form)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import PlainTextResponse

from portside.api.deps import IsResourceName, PrincipalDep, ServicesDep, project_for, require_project_permission
from portside.api.deps import require_signed_in as signed_in
from portside.api.pagination import PagingDep, set_page_headers
from portside.api.params import Id
from portside.api.timefmt import iso
from portside.audit.recorder import AuditEvent
from portside.auth.principal import Principal
from portside.clientinfo import client_ip
from portside.errors import Invalid, NotFound
from portside.jobs.queue import ExecutionRow, TaskRow
from portside.lifecycle import retention
from portside.lifecycle.retention import Policy
from portside.lifecycle.retention_jobs import RETENTION_VENDOR
from portside.management.projects import ProjectRow
from portside.services import Services

router = APIRouter(tags=["retention"])

# Harbor's numeric job status codes.
STATUS_CODES = {"Pending": 0, "Running": 2, "Stopped": 3, "Error": 3, "Success": 3}


async def _policy_for(services: Services, principal: Principal, policy_id: int,
                      permission: str) -> tuple[Policy, ProjectRow]:
    signed_in(principal)
    policy = await services.retention.get(policy_id)
    project = await services.project_admin.find(policy.project_id)
    if project is None:
        raise NotFound(f"retention policy {policy_id} not found")
    await require_project_permission(services, principal, project, permission)
    return policy, project


async def policy_json(services: Services, policy: Policy) -> dict[str, Any]:
    data = policy.as_json()
    if policy.id is not None and policy.cron:
        data["trigger"]["next_scheduled_time"] = await services.retention.next_run(policy.id)
    return data


def _audit(services: Services, request: Request, principal: Principal, operation: str, resource: str,
           project: ProjectRow) -> None:
    services.audit.record(AuditEvent(operation, "retention", resource, principal.name, project.id,
                                     client_ip=client_ip(request)))


def _body_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    return body


@router.get("/retentions/metadatas")
async def retention_metadata(principal: PrincipalDep) -> dict[str, Any]:
    signed_in(principal)
    return retention.metadata()


@router.post("/retentions", status_code=201)
async def create_retention(request: Request, services: ServicesDep, principal: PrincipalDep,
                           body: Any = Body(None)) -> Response:
    signed_in(principal)
    raw = _body_object(body)
    parsed = retention.parse_policy(raw)  # validate first: the project comes from scope.ref
    project = await services.project_admin.find(parsed.project_id)
    if project is None:
        raise Invalid(f"scope.ref: project {parsed.project_id} not found")
    await require_project_permission(services, principal, project, "tag-retention:create")
    policy = await services.retention.create(raw)
    _audit(services, request, principal, "create", f"retention policy {policy.id}", project)
    return Response(status_code=201, headers={"Location": f"/api/v2.0/retentions/{policy.id}"})


@router.get("/retentions/{policy_id}")
async def get_retention(policy_id: Id, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    policy, _ = await _policy_for(services, principal, policy_id, "tag-retention:read")
    return await policy_json(services, policy)


@router.put("/retentions/{policy_id}")
async def update_retention(request: Request, policy_id: Id, services: ServicesDep, principal: PrincipalDep,
                           body: Any = Body(None)) -> Response:
    _, project = await _policy_for(services, principal, policy_id, "tag-retention:update")
    await services.retention.update(policy_id, _body_object(body))
    _audit(services, request, principal, "update", f"retention policy {policy_id}", project)
    return Response(status_code=200)


@router.delete("/retentions/{policy_id}")
async def delete_retention(request: Request, policy_id: Id, services: ServicesDep,
                           principal: PrincipalDep) -> Response:
    _, project = await _policy_for(services, principal, policy_id, "tag-retention:delete")
    await services.retention.delete(policy_id)
    _audit(services, request, principal, "delete", f"retention policy {policy_id}", project)
    return Response(status_code=200)


# -- executions ------------------------------------------------------------------------------------


def execution_json(e: ExecutionRow) -> dict[str, Any]:
    return {"id": e.id, "policy_id": e.vendor_id, "start_time": iso(e.start_time or e.created_at),
            "end_time": iso(e.end_time), "status": e.status, "trigger": e.trigger,
            "dry_run": bool(e.params.get("dry_run", False))}


def _short(repository: str) -> str:
    """Harbor names a task's repository without its project."""
    return repository.partition("/")[2] or repository


def task_json(t: TaskRow, result: dict[str, Any]) -> dict[str, Any]:
    return {"id": t.id, "execution_id": t.execution_id, "repository": _short(str(t.params.get("repository", ""))),
            "job_id": str(t.id), "status": t.status, "status_code": STATUS_CODES.get(t.status, 0),
            "status_revision": t.attempts, "start_time": iso(t.start_time), "end_time": iso(t.end_time),
            "total": int(result.get("total", 0)), "retained": int(result.get("retained", 0))}


async def _execution(services: Services, policy_id: int, execution_id: int) -> ExecutionRow:
    e = await services.jobs.execution(execution_id)
    if e is None or e.vendor_type != RETENTION_VENDOR or e.vendor_id != policy_id:
        raise NotFound(f"retention execution {execution_id} of policy {policy_id} not found")
    return e


@router.post("/retentions/{policy_id}/executions", status_code=201)
async def run_retention(request: Request, policy_id: Id, services: ServicesDep, principal: PrincipalDep,
                        body: Any = Body(None)) -> Response:
    _, project = await _policy_for(services, principal, policy_id, "tag-retention:update")
    raw = body if body is not None else {}
    dry_run = _body_object(raw).get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise Invalid("dry_run: expected true or false")
    execution_id = await services.retention.run(policy_id, dry_run=dry_run)
    _audit(services, request, principal, "create", f"retention execution {execution_id}", project)
    return Response(status_code=201,
                    headers={"Location": f"/api/v2.0/retentions/{policy_id}/executions/{execution_id}"})


@router.get("/retentions/{policy_id}/executions")
async def list_executions(request: Request, response: Response, policy_id: Id, services: ServicesDep,
                          principal: PrincipalDep, paging: PagingDep) -> list[dict[str, Any]]:
    await _policy_for(services, principal, policy_id, "tag-retention:list")
    runs = await services.jobs.executions(RETENTION_VENDOR, policy_id)
    set_page_headers(request, response, paging, len(runs))
    return [execution_json(e) for e in paging.slice(runs)]


@router.get("/retentions/{policy_id}/executions/{execution_id}")
async def get_execution(policy_id: Id, execution_id: Id, services: ServicesDep,
                        principal: PrincipalDep) -> dict[str, Any]:
    await _policy_for(services, principal, policy_id, "tag-retention:read")
    return execution_json(await _execution(services, policy_id, execution_id))


@router.patch("/retentions/{policy_id}/executions/{execution_id}")
async def operate_execution(request: Request, policy_id: Id, execution_id: Id, services: ServicesDep,
                            principal: PrincipalDep, body: Any = Body(None)) -> Response:
    _, project = await _policy_for(services, principal, policy_id, "tag-retention:update")
    action = _body_object(body).get("action")
    if action != "stop":
        raise Invalid(f"action: {action!r} is not supported; the only action is 'stop'")
    await _execution(services, policy_id, execution_id)
    await services.jobs.stop(execution_id)
    _audit(services, request, principal, "update", f"retention execution {execution_id} (stop)", project)
    return Response(status_code=200)


@router.get("/retentions/{policy_id}/executions/{execution_id}/tasks")
async def list_tasks(request: Request, response: Response, policy_id: Id, execution_id: Id,
                     services: ServicesDep, principal: PrincipalDep, paging: PagingDep) -> list[dict[str, Any]]:
    await _policy_for(services, principal, policy_id, "tag-retention:list")
    await _execution(services, policy_id, execution_id)
    tasks = await services.jobs.tasks_of(execution_id)
    results = await services.retention.queries.task_results(execution_id)
    set_page_headers(request, response, paging, len(tasks))
    return [task_json(t, results.get(t.id, {})) for t in paging.slice(tasks)]


@router.get("/retentions/{policy_id}/executions/{execution_id}/tasks/{task_id}",
            response_class=PlainTextResponse)
async def task_log(policy_id: Id, execution_id: Id, task_id: Id, services: ServicesDep,
                   principal: PrincipalDep) -> str:
    await _policy_for(services, principal, policy_id, "tag-retention:read")
    await _execution(services, policy_id, execution_id)
    task = await services.jobs.task(task_id)
    if task is None or task.execution_id != execution_id:
        raise NotFound(f"task {task_id} of retention execution {execution_id} not found")
    return task.log


# -- the project's policy ----------------------------------------------------------------------------


@router.get("/projects/{project_name_or_id}/retention")
async def get_project_retention(project_name_or_id: str, services: ServicesDep, principal: PrincipalDep,
                                x_is_resource_name: IsResourceName = None) -> dict[str, Any]:
    project = await project_for(services, principal, project_name_or_id, "tag-retention:read", x_is_resource_name)
    policy = await services.retention.for_project(project.id)
    if policy is None:
        raise NotFound(f"project {project.name} has no retention policy")
    return await policy_json(services, policy)


@router.put("/projects/{project_name_or_id}/retention")
async def put_project_retention(request: Request, project_name_or_id: str, services: ServicesDep,
                                principal: PrincipalDep, x_is_resource_name: IsResourceName = None,
                                body: Any = Body(None)) -> Response:
    project = await project_for(services, principal, project_name_or_id, "tag-retention:update", x_is_resource_name)
    policy, created = await services.retention.put_for_project(project.id, _body_object(body))
    _audit(services, request, principal, "create" if created else "update", f"retention policy {policy.id}", project)
    return Response(status_code=201 if created else 200,
                    headers={"Location": f"/api/v2.0/retentions/{policy.id}"})

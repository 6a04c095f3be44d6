"""/projects/{project_name_or_id}/immutabletagrules: Harbor's immutable tag rules of a project."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request, Response

from portside.api.deps import IsResourceName, PrincipalDep, ServicesDep, project_for
from portside.api.pagination import PagingDep, set_page_headers
from portside.api.params import Id
from portside.api.query import parse_q
from portside.audit.recorder import AuditEvent
from portside.auth.principal import Principal
from portside.clientinfo import client_ip
from portside.errors import Invalid
from portside.management.projects import ProjectRow
from portside.services import Services

router = APIRouter(tags=["immutable"])
RULES = "/projects/{project_name_or_id}/immutabletagrules"


def _audit(services: Services, request: Request, principal: Principal, operation: str, resource: str,
           project: ProjectRow) -> None:
    services.audit.record(AuditEvent(operation, "immutable_tag_rule", resource, principal.name, project.id,
                                     client_ip=client_ip(request)))


@router.get(RULES)
async def list_rules(request: Request, response: Response, project_name_or_id: str, services: ServicesDep,
                     principal: PrincipalDep, paging: PagingDep, q: str | None = None, sort: str | None = None,
                     x_is_resource_name: IsResourceName = None) -> list[dict[str, Any]]:
    project = await project_for(services, principal, project_name_or_id, "immutable-tag:list", x_is_resource_name)
    rules = [r.as_json() for r in await services.immutability.rules(project.id)]
    terms = parse_q(q)
    rules = [r for r in rules if all(term.matches(r.get(key)) for key, term in terms.items()
                                     if key in ("id", "disabled", "priority"))]
    if sort:
        key = sort.lstrip("-")
        if key in ("id", "priority"):
            rules.sort(key=lambda r: r[key], reverse=sort.startswith("-"))
    set_page_headers(request, response, paging, len(rules))
    return paging.slice(rules)


@router.post(RULES, status_code=201)
async def create_rule(request: Request, project_name_or_id: str, services: ServicesDep, principal: PrincipalDep,
                      x_is_resource_name: IsResourceName = None, body: Any = Body(None)) -> Response:
    project = await project_for(services, principal, project_name_or_id, "immutable-tag:create", x_is_resource_name)
    rule = await services.immutability.create(project.id, body)
    _audit(services, request, principal, "create", f"immutable tag rule {rule.id}", project)
    return Response(status_code=201, headers={
        "Location": f"/api/v2.0/projects/{project_name_or_id}/immutabletagrules/{rule.id}"})


@router.put(RULES + "/{immutable_rule_id}")
async def update_rule(request: Request, project_name_or_id: str, immutable_rule_id: Id, services: ServicesDep,
                      principal: PrincipalDep, x_is_resource_name: IsResourceName = None,
                      body: Any = Body(None)) -> Response:
    project = await project_for(services, principal, project_name_or_id, "immutable-tag:update", x_is_resource_name)
    if not isinstance(body, dict):
        raise Invalid("the body must be an ImmutableRule object")
    await services.immutability.update(project.id, immutable_rule_id, body)
    _audit(services, request, principal, "update", f"immutable tag rule {immutable_rule_id}", project)
    return Response(status_code=200)


@router.delete(RULES + "/{immutable_rule_id}")
async def delete_rule(request: Request, project_name_or_id: str, immutable_rule_id: Id, services: ServicesDep,
                      principal: PrincipalDep, x_is_resource_name: IsResourceName = None) -> Response:
    project = await project_for(services, principal, project_name_or_id, "immutable-tag:delete", x_is_resource_name)
    await services.immutability.delete(project.id, immutable_rule_id)
    _audit(services, request, principal, "delete", f"immutable tag rule {immutable_rule_id}", project)
    return Response(status_code=200)

"""/labels: Harbor's global labels (system administrators manage them, anyone may read them) and
project labels (the project's administrators manage them, whoever sees the project may read them)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from portside.api.deps import PrincipalDep, ServicesDep, audit, project_for, require_sysadmin
from portside.api.pagination import PagingDep, set_page_headers
from portside.api.params import Id, IdQuery, Int32
from portside.api.query import parse_q
from portside.api.timefmt import iso
from portside.auth.principal import Principal
from portside.errors import Invalid
from portside.management.labels import GLOBAL, PROJECT, LabelRow, LabelSpec
from portside.services import Services

router = APIRouter(tags=["label"])
LABEL_Q = ("id", "name", "scope", "project_id")
LABEL_SORT = {"id": lambda r: r.id, "name": lambda r: r.name, "creation_time": lambda r: r.created_at,
              "update_time": lambda r: r.updated_at}
PERMISSION = {"create": "label:create", "update": "label:update", "delete": "label:delete", "read": "project:read"}


class LabelReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = None
    description: str | None = None
    color: str | None = None
    scope: str | None = None
    project_id: Int32 | None = None


def label_json(label: LabelRow) -> dict[str, Any]:
    return {
        "id": label.id,
        "name": label.name,
        "description": label.description,
        "color": label.color,
        "scope": label.scope,
        "project_id": label.project_id or 0,
        "creation_time": iso(label.created_at),
        "update_time": iso(label.updated_at),
        "deleted": False,
    }


async def check_label_access(services: Services, principal: Principal, scope: str, project_id: int | None,
                             action: str) -> None:
    """Global labels: anyone reads them, system administrators change them. Project labels: the project's
    permissions decide (404 for a project the caller cannot see)."""
    if scope == GLOBAL:
        if action != "read":
            require_sysadmin(principal)
        return
    await project_for(services, principal, str(project_id or 0), PERMISSION[action], "false")


@router.get("/labels")
async def list_labels(request: Request, response: Response, services: ServicesDep, principal: PrincipalDep,
                      paging: PagingDep, q: str | None = None, sort: str | None = None, name: str | None = None,
                      scope: str = GLOBAL, project_id: IdQuery | None = None) -> list[dict[str, Any]]:
    if scope == PROJECT and project_id is not None:
        await check_label_access(services, principal, scope, project_id, "read")
    found = await services.labels.labels(scope, project_id)
    terms = parse_q(q)
    unknown = sorted(set(terms) - set(LABEL_Q))
    if unknown:
        raise Invalid(f"cannot filter labels on {', '.join(unknown)}: use {', '.join(LABEL_Q)}")
    selected = [r for r in found
                if (name is None or name in r.name)  # Harbor matches `name` fuzzily
                and all(term.matches({"id": r.id, "name": r.name, "scope": r.scope,
                                      "project_id": r.project_id or 0}[key]) for key, term in terms.items())]
    for field in reversed([f.strip() for f in (sort or "").split(",") if f.strip().lstrip("-") in LABEL_SORT]):
        selected.sort(key=LABEL_SORT[field.lstrip("-")], reverse=field.startswith("-"))
    set_page_headers(request, response, paging, len(selected))
    return [label_json(r) for r in paging.slice(selected)]


@router.post("/labels", status_code=201)
async def create_label(request: Request, body: LabelReq, services: ServicesDep,
                       principal: PrincipalDep) -> Response:
    scope = body.scope or (PROJECT if body.project_id else GLOBAL)
    if scope not in (GLOBAL, PROJECT):
        raise Invalid(f"invalid label scope {scope!r}: g (global) or p (project)")
    if scope == PROJECT and not body.project_id:
        raise Invalid("a project label (scope p) needs the project_id of its project")
    await check_label_access(services, principal, scope, body.project_id, "create")
    label = await services.labels.create(LabelSpec(body.name or "", body.description or "", body.color or ""),
                                         scope, body.project_id if scope == PROJECT else None)
    audit(services, request, principal, "create", "label", label.name, label.project_id)
    return Response(status_code=201, headers={"Location": f"/api/v2.0/labels/{label.id}"})


@router.get("/labels/{label_id}")
async def get_label(label_id: Id, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    label = await _label(services, principal, label_id, "read")
    return label_json(label)


@router.put("/labels/{label_id}")
async def update_label(request: Request, label_id: Id, body: LabelReq, services: ServicesDep,
                       principal: PrincipalDep) -> Response:
    label = await _label(services, principal, label_id, "update")
    if body.scope is not None and body.scope != label.scope:
        raise Invalid("a label's scope cannot change")
    if body.project_id and body.project_id != (label.project_id or 0):
        raise Invalid("a label's project cannot change")
    spec = LabelSpec(label.name if body.name is None else body.name,
                     label.description if body.description is None else body.description,
                     label.color if body.color is None else body.color)
    updated = await services.labels.update(label, spec)
    audit(services, request, principal, "update", "label", updated.name, updated.project_id)
    return Response(status_code=200)


@router.delete("/labels/{label_id}")
async def delete_label(request: Request, label_id: Id, services: ServicesDep, principal: PrincipalDep) -> Response:
    label = await _label(services, principal, label_id, "delete")
    await services.labels.delete(label)
    audit(services, request, principal, "delete", "label", label.name, label.project_id)
    return Response(status_code=200)


async def _label(services: Services, principal: Principal, label_id: int, action: str) -> LabelRow:
    label = await services.labels.get(label_id)
    await check_label_access(services, principal, label.scope, label.project_id, action)
    return label

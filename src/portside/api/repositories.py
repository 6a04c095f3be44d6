"""/repositories: every repository the caller may see, across projects (Harbor's listAllRepositories)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from portside.api.artifacts import repository_json
from portside.api.deps import PrincipalDep, ServicesDep
from portside.api.pagination import ListQueryDep, set_list_headers

router = APIRouter(tags=["repository"])


@router.get("/repositories")
async def list_all_repositories(request: Request, response: Response, services: ServicesDep,
                                principal: PrincipalDep, query: ListQueryDep) -> list[dict[str, Any]]:
    visible = await services.access.visible_project_ids(principal)
    rows, total = await services.artifacts.repository_page(query, visible)
    set_list_headers(request, response, query, total)
    return [repository_json(r) for r in rows]

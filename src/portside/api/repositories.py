"""/repositories: every repository the caller may see, across projects (Harbor's listAllRepositories)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from portside.api.artifacts import repository_json, select_repositories
from portside.api.deps import PrincipalDep, ServicesDep
from portside.api.pagination import PagingDep, set_page_headers

router = APIRouter(tags=["repository"])


@router.get("/repositories")
async def list_all_repositories(request: Request, response: Response, services: ServicesDep,
                                principal: PrincipalDep, paging: PagingDep, q: str | None = None,
                                sort: str | None = None) -> list[dict[str, Any]]:
    visible = await services.access.visible_project_ids(principal)
    ordered = select_repositories(await services.artifacts.repositories_in(visible), q, sort)
    set_page_headers(request, response, paging, len(ordered))
    return [repository_json(r) for r in paging.slice(ordered)]

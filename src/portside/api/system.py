"""/systeminfo, /systeminfo/volumes, /health, /statistics and /search (Harbor's `GeneralInfo`, `SystemInfo`,
`OverallHealthStatus`, `Statistic` and `Search` shapes)."""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request

from portside import __version__
from portside.api.deps import PrincipalDep, ServicesDep, require_signed_in, require_sysadmin
from portside.api.projects import projects_json
from portside.api.timefmt import iso

router = APIRouter(tags=["systeminfo"])
SEARCH_LIMIT = 100


def _hosts(request: Request) -> tuple[str, str]:
    """The registry host (what `docker login` takes) and the external URL, as the caller reached us.
    X-Forwarded-Host counts only where proxies are configured (server.forwarded_allow_ips); the scheme
    is uvicorn's, which applies X-Forwarded-Proto from those proxies alone."""
    behind_proxy = bool(request.app.state.services.settings.server.trusted_proxies)
    forwarded = request.headers.get("x-forwarded-host") if behind_proxy else None
    host = forwarded or request.headers.get("host") or request.url.netloc
    return host, f"{request.url.scheme}://{host}"


@router.get("/systeminfo")
async def system_info(request: Request, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    info: dict[str, Any] = {
        "auth_mode": "db_auth",
        "primary_auth_mode": False,
        "self_registration": False,
        "banner_message": "",
        "current_time": iso(datetime.now(UTC)),
        "oidc_provider_name": "",
    }
    if principal.is_anonymous and not services.settings.open_registry:
        return info  # Harbor keeps the rest for signed-in callers
    registry_url, external_url = _hosts(request)
    return {
        **info,
        "with_chartmuseum": False,
        "registry_url": registry_url,
        "external_url": external_url,
        "project_creation_restriction": "everyone",
        "has_ca_root": False,
        "harbor_version": __version__,
        "registry_storage_provider_name": "filesystem",
        "read_only": False,
        "notification_enable": False,
    }


@router.get("/systeminfo/volumes")
async def system_volumes(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    """Total and free bytes of the filesystem holding the blob store (Harbor's `SystemInfo`)."""
    require_sysadmin(principal)
    usage = await asyncio.to_thread(shutil.disk_usage, services.settings.storage_root)
    return {"storage": [{"total": usage.total, "free": usage.free}]}


async def _component(name: str, check: Any) -> dict[str, str]:
    try:
        await check()
    except Exception as exc:
        return {"name": name, "status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"name": name, "status": "healthy"}


@router.get("/health")
async def health(services: ServicesDep) -> dict[str, Any]:
    async def core() -> None:
        return None

    async def storage() -> None:
        root = services.settings.storage_root
        writable = await asyncio.to_thread(lambda: root.is_dir() and os.access(root, os.W_OK))
        if not writable:
            raise OSError(f"{root} is not a writable directory")

    components = [await _component("core", core), await _component("database", services.system.ping),
                  await _component("storage", storage)]
    healthy = all(c["status"] == "healthy" for c in components)
    return {"status": "healthy" if healthy else "unhealthy", "components": components}


@router.get("/statistics")
async def statistics(services: ServicesDep, principal: PrincipalDep) -> dict[str, int]:
    require_signed_in(principal)
    counts = await services.system.counts(principal)
    return {
        "private_project_count": counts.private_projects,
        "private_repo_count": counts.private_repositories,
        "public_project_count": counts.public_projects,
        "public_repo_count": counts.public_repositories,
        "total_project_count": counts.total_projects,
        "total_repo_count": counts.total_repositories,
        "total_storage_consumption": counts.total_storage,
    }


@router.get("/search")
async def search(services: ServicesDep, principal: PrincipalDep, q: str = Query(...)) -> dict[str, Any]:
    projects, hits = await services.system.search(principal, q.strip(), SEARCH_LIMIT)
    repositories = [{
        "project_id": project.id,
        "project_name": project.name,
        "project_public": project.public,
        "repository_name": hit.name,
        "pull_count": hit.pull_count,
        "artifact_count": hit.artifact_count,
    } for project, hit in hits]
    return {"project": await projects_json(services, principal, projects), "repository": repositories}

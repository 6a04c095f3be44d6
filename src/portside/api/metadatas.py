"""/projects/{project_name_or_id}/metadatas: a project's metadata one key at a time (Harbor's
projectMetadata endpoints; values are strings such as "true" or "high")."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request, Response

from portside.api.deps import IsResourceName, PrincipalDep, ServicesDep, audit, project_for
from portside.errors import NotFound

router = APIRouter(tags=["projectMetadata"])

METADATAS = "/projects/{project_name_or_id}/metadatas"
MetadataBody = Body(default_factory=dict)


# Harbor's swagger lists the collection with a trailing slash; clients send either form.
@router.get(METADATAS)
@router.get(METADATAS + "/", include_in_schema=False)
async def list_metadatas(project_name_or_id: str, services: ServicesDep, principal: PrincipalDep,
                         x_is_resource_name: IsResourceName = None) -> dict[str, str]:
    project = await project_for(services, principal, project_name_or_id, "project:read", x_is_resource_name)
    return services.project_admin.metadata(project)


@router.post(METADATAS)
@router.post(METADATAS + "/", include_in_schema=False)
async def add_metadatas(request: Request, project_name_or_id: str, services: ServicesDep, principal: PrincipalDep,
                        metadata: dict[str, Any] = MetadataBody,
                        x_is_resource_name: IsResourceName = None) -> Response:
    project = await project_for(services, principal, project_name_or_id, "metadata:create", x_is_resource_name)
    await services.project_admin.add_metadata(project, metadata)
    audit(services, request, principal, "update", "project", project.name, project.id)
    return Response(status_code=200)


@router.get(METADATAS + "/{meta_name}")
async def get_metadata(project_name_or_id: str, meta_name: str, services: ServicesDep, principal: PrincipalDep,
                       x_is_resource_name: IsResourceName = None) -> dict[str, str]:
    project = await project_for(services, principal, project_name_or_id, "project:read", x_is_resource_name)
    found = services.project_admin.metadata(project)
    if meta_name not in found:
        raise NotFound(f"project {project.name} has no metadata {meta_name!r}")
    return {meta_name: found[meta_name]}


@router.put(METADATAS + "/{meta_name}")
async def update_metadata(request: Request, project_name_or_id: str, meta_name: str, services: ServicesDep,
                          principal: PrincipalDep, metadata: dict[str, Any] = MetadataBody,
                          x_is_resource_name: IsResourceName = None) -> Response:
    project = await project_for(services, principal, project_name_or_id, "metadata:update", x_is_resource_name)
    await services.project_admin.set_metadata(project, meta_name, metadata)
    audit(services, request, principal, "update", "project", project.name, project.id)
    return Response(status_code=200)


@router.delete(METADATAS + "/{meta_name}")
async def delete_metadata(request: Request, project_name_or_id: str, meta_name: str, services: ServicesDep,
                          principal: PrincipalDep, x_is_resource_name: IsResourceName = None) -> Response:
    project = await project_for(services, principal, project_name_or_id, "metadata:delete", x_is_resource_name)
    await services.project_admin.delete_metadata(project, meta_name)
    audit(services, request, principal, "update", "project", project.name, project.id)
    return Response(status_code=200)

"""DELETE /projects/{project_name_or_id}/artifacts/{digest}: delete an artifact by digest without naming
its repository, as the users' cleanup script (clean_old_images.py) does. Every tag of the digest goes
with it; a digest held by several repositories of the project is refused (409) naming them."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from portside.api.deps import IsResourceName, PrincipalDep, ServicesDep, project_for
from portside.audit.recorder import AuditEvent
from portside.clientinfo import client_ip

router = APIRouter(tags=["artifact"])


@router.delete("/projects/{project_name_or_id}/artifacts/{digest}")
async def delete_project_artifact(request: Request, project_name_or_id: str, digest: str, services: ServicesDep,
                                  principal: PrincipalDep, x_is_resource_name: IsResourceName = None) -> Response:
    project = await project_for(services, principal, project_name_or_id, "artifact:delete", x_is_resource_name)
    deleted = await services.artifacts.delete_in_project(project.id, project.name, digest)
    services.audit.record(AuditEvent("delete", "artifact", f"{deleted.repository_name}@{deleted.digest}",
                                     principal.name, project.id, client_ip=client_ip(request)))
    return Response(status_code=200)

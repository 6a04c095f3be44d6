"""/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels: add and remove
an artifact's labels.

Mounted before the artifacts router: that router's repository routes take the repository name as a
`:path`, so a DELETE here would otherwise end up there as a repository delete.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from portside.api.artifacts import repository_path_name
from portside.api.deps import PrincipalDep, ServicesDep, audit, project_for
from portside.api.params import Id, Int32
from portside.auth.principal import Principal
from portside.content.artifacts import RepositoryRow
from portside.management.projects import ProjectRow
from portside.services import Services

router = APIRouter(tags=["artifact"])

REPO = "/projects/{project_name}/repositories/{repository_name:path}"
ARTIFACT = REPO + "/artifacts/{reference}"


class LabelRef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: Int32


async def repository_for(services: Services, principal: Principal, project_name: str, repository_name: str,
                         permission: str) -> tuple[ProjectRow, RepositoryRow]:
    project = await project_for(services, principal, project_name, permission, "true")
    repo = await services.artifacts.repository(project.id, f"{project.name}/{repository_path_name(repository_name)}")
    return project, repo



@router.post(ARTIFACT + "/labels")
async def add_label(request: Request, project_name: str, repository_name: str, reference: str, body: LabelRef,
                    services: ServicesDep, principal: PrincipalDep) -> Response:
    project, repo = await repository_for(services, principal, project_name, repository_name,
                                         "artifact-label:create")
    art = await services.artifacts.resolve(repo, reference)
    label = await services.labels.add_to(art, body.id)
    audit(services, request, principal, "create", "artifact-label", f"{repo.name}@{art.digest} {label.name}",
          project.id)
    return Response(status_code=200)


@router.delete(ARTIFACT + "/labels/{label_id:int}")
async def remove_label(request: Request, project_name: str, repository_name: str, reference: str, label_id: Id,
                       services: ServicesDep, principal: PrincipalDep) -> Response:
    project, repo = await repository_for(services, principal, project_name, repository_name,
                                         "artifact-label:delete")
    art = await services.artifacts.resolve(repo, reference)
    await services.labels.remove_from(art, label_id)
    audit(services, request, principal, "delete", "artifact-label", f"{repo.name}@{art.digest} {label_id}",
          project.id)
    return Response(status_code=200)

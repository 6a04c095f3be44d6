"""More of Harbor's artifact endpoints: copy an artifact into a repository (POST .../artifacts?from=)
and an artifact's additions (the build history of an image).

Mounted before the artifacts router, for the reason artifact_labels gives.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from portside.api.artifact_labels import ARTIFACT, REPO, repository_for
from portside.api.artifacts import repository_path_name
from portside.api.deps import PrincipalDep, ServicesDep, audit, project_for
from portside.content.copy import SourceRef
from portside.errors import Invalid, NotFound

router = APIRouter(tags=["artifact"])
ADDITIONS = ("build_history", "values.yaml", "readme.md", "dependencies", "sbom", "license", "files")


@router.post(REPO + "/artifacts", status_code=201)
async def copy_artifact(request: Request, project_name: str, repository_name: str, services: ServicesDep,
                        principal: PrincipalDep, source: Annotated[str, Query(alias="from")]) -> Response:
    """Copy the artifact `from` names (project/repository:tag or @digest) into this repository, which is
    created when missing. Needs push here and pull on the source."""
    project = await project_for(services, principal, project_name, "repository:push", "true")
    destination = f"{project.name}/{repository_path_name(repository_name)}"
    ref = SourceRef.parse(source)
    await project_for(services, principal, ref.repository.partition("/")[0], "repository:pull", "true")
    copied = await services.copier.copy(ref, destination)
    audit(services, request, principal, "create", "artifact", f"{destination}@{copied.digest}", project.id)
    short = destination.partition("/")[2]
    location = (f"/api/v2.0/projects/{project.name}/repositories/{quote(quote(short, safe=''), safe='')}"
                f"/artifacts/{copied.digest}")
    return Response(status_code=201, headers={"Location": location})


@router.get(ARTIFACT + "/additions/{addition}")
async def get_addition(project_name: str, repository_name: str, reference: str, addition: str,
                       services: ServicesDep, principal: PrincipalDep) -> Response:
    """Only images have one here: their build history, the config's `history` array."""
    if addition not in ADDITIONS:
        raise Invalid(f"unknown addition {addition!r}: one of {', '.join(ADDITIONS)}")
    _, repo = await repository_for(services, principal, project_name, repository_name, "artifact:read")
    config = await services.artifacts.image_config(repo, reference)
    if addition != "build_history" or config is None:
        raise NotFound(f"artifact {reference} in {repo.name} has no {addition}")
    history = config.get("history")
    entries: list[Any] = history if isinstance(history, list) else []
    return JSONResponse(entries)

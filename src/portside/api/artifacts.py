"""/projects/{project_name}/repositories[/...]/artifacts[/...]/tags: Harbor's repository, artifact and tag
endpoints, plus /projects/{project_name_or_id}/artifacts (every artifact of a project).

`repository_name` is the part of the name after the project. Harbor clients encode its slashes twice
(`a/b` -> `a%252Fb`); single-encoded (`a%2Fb`) and even bare slashes are accepted too, which is why the
routes take it as a path of segments (`REPOSITORY_NAME`: no segment after the first is `artifacts`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from portside.api.deps import IsResourceName, PrincipalDep, ServicesDep, audit, project_for
from portside.api.labels import label_json
from portside.api.pagination import ListQueryDep, Paging, PagingDep, set_list_headers, set_page_headers
from portside.api.params import REPOSITORY_NAME
from portside.api.query import Term, parse_q
from portside.api.textguard import storable
from portside.api.timefmt import iso
from portside.auth.principal import Principal
from portside.content.artifacts import Accessory, Artifact, ArtifactRow, Candidate, Reference, RepositoryRow, TagRow
from portside.errors import Invalid
from portside.listquery import ListQuery
from portside.management.projects import ProjectRow
from portside.services import Services

router = APIRouter(tags=["repository", "artifact"])
T = TypeVar("T")

REPO = "/projects/{project_name}/repositories/" + REPOSITORY_NAME
ARTIFACT = REPO + "/artifacts/{reference}"
PLATFORM_KEYS = ("architecture", "os", "os.version", "os.features", "variant")


class RepositoryReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    description: str | None = None


class NewTag(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str


# -- JSON shapes (Harbor's Repository, Artifact, Tag, Reference, Accessory) ---------------------


def repository_json(repo: RepositoryRow) -> dict[str, Any]:
    return {
        "id": repo.id,
        "project_id": repo.project_id,
        "name": repo.name,
        "description": repo.description,
        "artifact_count": repo.artifact_count,
        "pull_count": repo.pull_count,
        "creation_time": iso(repo.created_at),
        "update_time": iso(repo.updated_at),
    }


def tag_id(tag: TagRow) -> int:
    """Tags are keyed by (repository, name); Harbor gives them a numeric id, so derive a stable one
    (48 bits: exact in JavaScript numbers too)."""
    return int.from_bytes(hashlib.sha256(f"{tag.repository_id}/{tag.name}".encode()).digest()[:6], "big")


def tag_json(tag: TagRow, art: ArtifactRow, immutable: Collection[tuple[int, str]] = ()) -> dict[str, Any]:
    # Pulls are recorded per manifest, not per tag: the artifact's last pull stands in for the tag's.
    return {
        "id": tag_id(tag),
        "repository_id": tag.repository_id,
        "artifact_id": tag.manifest_id,
        "name": tag.name,
        "push_time": iso(tag.updated_at),
        "pull_time": iso(art.pulled_at),
        "immutable": (tag.repository_id, tag.name) in immutable,
        "signed": False,
    }


def reference_json(ref: Reference) -> dict[str, Any]:
    out: dict[str, Any] = {"parent_id": ref.parent_id, "child_id": ref.child_id, "child_digest": ref.child_digest}
    if ref.platform is not None:
        out["platform"] = {k: ref.platform[k] for k in PLATFORM_KEYS if k in ref.platform}
    if ref.annotations:
        out["annotations"] = ref.annotations
    if ref.urls:
        out["urls"] = ref.urls
    return out


def accessory_json(acc: Accessory) -> dict[str, Any]:
    return {
        "id": acc.row.id,
        "artifact_id": acc.row.id,
        "subject_artifact_id": acc.subject_id,
        "subject_artifact_digest": acc.row.subject_digest,
        "subject_artifact_repo": acc.row.repository_name,
        "size": acc.size,
        "digest": acc.row.digest,
        "type": acc.type,
        "icon": "",
        "creation_time": iso(acc.row.pushed_at),
    }


def artifact_json(art: Artifact, *, with_tag: bool = True,
                  immutable: Collection[tuple[int, str]] = (),
                  labels: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    row = art.row
    return {
        "id": row.id,
        "type": art.type,
        "media_type": art.media_type,
        "manifest_media_type": row.manifest_media_type,
        "artifact_type": row.artifact_type or art.media_type,
        "project_id": row.project_id,
        "repository_id": row.repository_id,
        "repository_name": row.repository_name,
        "digest": row.digest,
        "size": art.size,
        "icon": "",
        "push_time": iso(row.pushed_at),
        "pull_time": iso(row.pulled_at),
        "extra_attrs": art.extra_attrs,
        "annotations": row.annotations,
        "references": [reference_json(r) for r in art.references],
        "tags": [tag_json(t, row, immutable) for t in art.tags] if with_tag else None,
        "labels": labels or [],
        "accessories": [accessory_json(a) for a in art.accessories],
        "addition_links": {},
    }


# -- q and sort ---------------------------------------------------------------------------------


def _terms(q: str | None, allowed: Iterable[str]) -> dict[str, Term]:
    """Parse `q`, refusing keys we cannot filter on: ignoring them would widen a selection that a
    cleanup script may be about to delete."""
    terms = parse_q(q)
    known = set(allowed)
    unknown = sorted(set(terms) - known)
    if unknown:
        raise Invalid(f"cannot filter on {', '.join(unknown)}: use {', '.join(sorted(known))}")
    return {k: _unquoted(t) for k, t in terms.items()}


def _unquoted(term: Term) -> Term:
    def strip(v: str) -> str:
        return v.strip().strip("'\"")

    if isinstance(term.value, tuple):
        return Term(term.key, term.kind, tuple(strip(v) for v in term.value))
    return Term(term.key, term.kind, strip(term.value))


def _qtime(ts: datetime | None) -> str | None:
    """Times as Harbor's q ranges write them: `2020-04-09 02:36:00` (UTC)."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _sorted(items: list[T], sort: str | None, keys: dict[str, Callable[[T], Any]], default: str) -> list[T]:
    """Harbor's `sort=field1,-field2`; fields we do not know are skipped."""
    fields = [f.strip() for f in (sort or default).split(",") if f.strip()]
    usable = [(f.lstrip("-"), f.startswith("-")) for f in fields if f.lstrip("-") in keys]
    if not usable:
        usable = [(f.lstrip("-"), f.startswith("-")) for f in default.split(",")]
    out = list(items)
    for key, desc in reversed(usable):
        get = keys[key]
        out.sort(key=lambda item, get=get: _sortable(get(item)), reverse=desc)  # type: ignore[misc]
    return out


def _sortable(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (1, value)


def _page(request: Request, response: Response, paging: Paging, items: list[T]) -> list[T]:
    set_page_headers(request, response, paging, len(items))
    return paging.slice(items)


# -- helpers ------------------------------------------------------------------------------------


def repository_path_name(repository_name: str) -> str:
    """Undo one or two rounds of URL encoding (`a%2Fb`, `a%252Fb`); names never hold '%' themselves."""
    name = repository_name
    for _ in range(3):
        if "%" not in name:
            break
        name = unquote(name)
    if not storable(name):  # decoded here past textguard.py's check
        raise Invalid("the repository name holds a NUL character: not accepted")
    return name.strip("/")


async def _project(services: Services, principal: Principal, project_name: str, permission: str) -> ProjectRow:
    return await project_for(services, principal, project_name, permission, "true")


async def _repository(services: Services, principal: Principal, project_name: str, repository_name: str,
                      permission: str) -> tuple[ProjectRow, RepositoryRow]:
    project = await _project(services, principal, project_name, permission)
    repo = await services.artifacts.repository(project.id, f"{project.name}/{repository_path_name(repository_name)}")
    return project, repo


async def _immutable(services: Services, asked: bool, tagged: Iterable[tuple[ArtifactRow, list[TagRow]]],
                     ) -> set[tuple[int, str]]:
    """(repository id, tag) of the tags an immutable rule protects, when the caller asked
    (`with_immutable_status`); otherwise every tag reports false, as in Harbor."""
    if not asked:
        return set()
    return await services.immutability.immutable_tags(
        (row.repository_id, row.repository_name, t.name) for row, tags in tagged for t in tags)


def _short(repo: RepositoryRow) -> str:
    return repo.name.partition("/")[2]


async def _artifact_page(request: Request, response: Response, services: Services, query: ListQuery,
                         candidates: list[Candidate], total: int, with_tag: bool, with_accessory: bool,
                         with_label: bool = False, with_immutable_status: bool = False) -> list[dict[str, Any]]:
    set_list_headers(request, response, query, total)
    arts = await services.artifacts.assemble(candidates, with_accessory=with_accessory)
    immutable = await _immutable(services, with_tag and with_immutable_status, ((a.row, a.tags) for a in arts))
    labels = await _labels(services, [a.row.id for a in arts]) if with_label else {}
    return [artifact_json(a, with_tag=with_tag, immutable=immutable, labels=labels.get(a.row.id)) for a in arts]


async def _labels(services: Services, artifact_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    found = await services.labels.of_artifacts(artifact_ids)
    return {art_id: [label_json(label) for label in labels] for art_id, labels in found.items()}


# -- tags of an artifact ------------------------------------------------------------------------


@router.get(ARTIFACT + "/tags")
async def list_tags(request: Request, response: Response, project_name: str, repository_name: str, reference: str,
                    services: ServicesDep, principal: PrincipalDep, paging: PagingDep, q: str | None = None,
                    sort: str | None = None, with_immutable_status: bool = False) -> list[dict[str, Any]]:
    _, repo = await _repository(services, principal, project_name, repository_name, "tag:list")
    art = await services.artifacts.resolve(repo, reference)
    terms = _terms(q, ("name", "id", "push_time"))
    selected = [t for t in await services.artifacts.tags(art)
                if all(term.matches({"name": t.name, "id": str(tag_id(t)), "push_time": _qtime(t.updated_at)}[key])
                       for key, term in terms.items())]
    keys: dict[str, Callable[[TagRow], Any]] = {"name": lambda t: t.name, "push_time": lambda t: t.updated_at,
                                                 "id": tag_id}
    ordered = _sorted(selected, sort, keys, "-push_time,name")
    page = _page(request, response, paging, ordered)
    immutable = await _immutable(services, with_immutable_status, [(art, page)])
    return [tag_json(t, art, immutable) for t in page]


@router.post(ARTIFACT + "/tags", status_code=201)
async def create_tag(request: Request, project_name: str, repository_name: str, reference: str, body: NewTag,
                     services: ServicesDep, principal: PrincipalDep) -> Response:
    project, repo = await _repository(services, principal, project_name, repository_name, "tag:create")
    _, tag = await services.artifacts.create_tag(repo, reference, body.name)
    audit(services, request, principal, "create", "tag", f"{repo.name}:{tag.name}", project.id)
    location = (f"/api/v2.0/projects/{project.name}/repositories/{quote(quote(_short(repo), safe=''), safe='')}"
                f"/artifacts/{reference}/tags/{tag.name}")
    return Response(status_code=201, headers={"Location": location})


@router.delete(ARTIFACT + "/tags/{tag_name}")
async def delete_tag(request: Request, project_name: str, repository_name: str, reference: str, tag_name: str,
                     services: ServicesDep, principal: PrincipalDep) -> Response:
    project, repo = await _repository(services, principal, project_name, repository_name, "tag:delete")
    await services.artifacts.delete_tag(repo, reference, tag_name)
    audit(services, request, principal, "delete", "tag", f"{repo.name}:{tag_name}", project.id)
    return Response(status_code=200)


@router.get(ARTIFACT + "/accessories")
async def list_accessories(request: Request, response: Response, project_name: str, repository_name: str,
                           reference: str, services: ServicesDep, principal: PrincipalDep, paging: PagingDep,
                           q: str | None = None, sort: str | None = None) -> list[dict[str, Any]]:
    _, repo = await _repository(services, principal, project_name, repository_name, "artifact:read")
    terms = _terms(q, ("type", "digest"))
    art = await services.artifacts.get(repo, reference, with_accessory=True)
    selected = [a for a in art.accessories
                if all(term.matches({"type": a.type, "digest": a.row.digest}[key]) for key, term in terms.items())]
    keys: dict[str, Callable[[Accessory], Any]] = {"creation_time": lambda a: a.row.pushed_at,
                                                   "id": lambda a: a.row.id}
    ordered = _sorted(selected, sort, keys, "-creation_time")
    return [accessory_json(a) for a in _page(request, response, paging, ordered)]


# -- artifacts ----------------------------------------------------------------------------------


@router.get(ARTIFACT)
async def get_artifact(project_name: str, repository_name: str, reference: str, services: ServicesDep,
                       principal: PrincipalDep, with_tag: bool = True, with_label: bool = False,
                       with_accessory: bool = False, with_immutable_status: bool = False) -> dict[str, Any]:
    _, repo = await _repository(services, principal, project_name, repository_name, "artifact:read")
    art = await services.artifacts.get(repo, reference, with_accessory=with_accessory)
    immutable = await _immutable(services, with_tag and with_immutable_status, [(art.row, art.tags)])
    labels = await _labels(services, [art.row.id]) if with_label else {}
    return artifact_json(art, with_tag=with_tag, immutable=immutable, labels=labels.get(art.row.id))


@router.delete(ARTIFACT)
async def delete_artifact(request: Request, project_name: str, repository_name: str, reference: str,
                          services: ServicesDep, principal: PrincipalDep) -> Response:
    project, repo = await _repository(services, principal, project_name, repository_name, "artifact:delete")
    deleted = await services.artifacts.delete(repo, reference)
    audit(services, request, principal, "delete", "artifact", f"{repo.name}@{deleted.digest}", project.id)
    return Response(status_code=200)


@router.get(REPO + "/artifacts")
async def list_artifacts(request: Request, response: Response, project_name: str, repository_name: str,
                         services: ServicesDep, principal: PrincipalDep, query: ListQueryDep, with_tag: bool = True,
                         with_label: bool = False, with_accessory: bool = False,
                         with_immutable_status: bool = False) -> list[dict[str, Any]]:
    _, repo = await _repository(services, principal, project_name, repository_name, "artifact:list")
    candidates, total = await services.artifacts.listing(query, repository_id=repo.id)
    return await _artifact_page(request, response, services, query, candidates, total, with_tag, with_accessory,
                                with_label, with_immutable_status)


@router.get("/projects/{project_name_or_id}/artifacts")
async def list_project_artifacts(request: Request, response: Response, project_name_or_id: str,
                                 services: ServicesDep, principal: PrincipalDep, query: ListQueryDep,
                                 with_tag: bool = True, with_label: bool = False, with_accessory: bool = False,
                                 latest_in_repository: bool = False, with_immutable_status: bool = False,
                                 x_is_resource_name: IsResourceName = None) -> list[dict[str, Any]]:
    project = await project_for(services, principal, project_name_or_id, "artifact:list", x_is_resource_name)
    candidates, total = await services.artifacts.listing(query, project_id=project.id,
                                                         latest_in_repository=latest_in_repository)
    return await _artifact_page(request, response, services, query, candidates, total, with_tag, with_accessory,
                                with_label, with_immutable_status)


# -- repositories -------------------------------------------------------------------------------


@router.get("/projects/{project_name}/repositories")
async def list_repositories(request: Request, response: Response, project_name: str, services: ServicesDep,
                            principal: PrincipalDep, query: ListQueryDep) -> list[dict[str, Any]]:
    """Harbor's repository listing: `q` on name, id, times and counts; `sort`, newest first by default."""
    project = await _project(services, principal, project_name, "repository:list")
    rows, total = await services.artifacts.repository_page(query, {project.id})
    set_list_headers(request, response, query, total)
    return [repository_json(r) for r in rows]


@router.get(REPO)
async def get_repository(project_name: str, repository_name: str, services: ServicesDep,
                         principal: PrincipalDep) -> dict[str, Any]:
    _, repo = await _repository(services, principal, project_name, repository_name, "repository:read")
    return repository_json(repo)


@router.put(REPO)
async def update_repository(request: Request, project_name: str, repository_name: str, body: RepositoryReq,
                            services: ServicesDep, principal: PrincipalDep) -> Response:
    project, repo = await _repository(services, principal, project_name, repository_name, "repository:update")
    await services.artifacts.update_repository(repo, description=body.description)
    audit(services, request, principal, "update", "repository", repo.name, project.id)
    return Response(status_code=200)


@router.delete(REPO)
async def delete_repository(request: Request, project_name: str, repository_name: str, services: ServicesDep,
                            principal: PrincipalDep) -> Response:
    project, repo = await _repository(services, principal, project_name, repository_name, "repository:delete")
    await services.artifacts.delete_repository(repo)
    audit(services, request, principal, "delete", "repository", repo.name, project.id)
    return Response(status_code=200)

"""/projects/{project_name}/repositories[/{repository_name}]: list, read, update, delete (Harbor's shapes)."""

from __future__ import annotations

import httpx

from tests.api.artifact_support import (
    API,
    Registry,
    audited,
    check_shape,
    enc,
    error_code,
    harbor_time,
    new_project,
    ok,
    project_id,
    repo_path,
    user_client,
)
from tests.servers import RunningServer

REPOSITORY_FIELDS = {"id", "project_id", "name", "description", "artifact_count", "pull_count", "creation_time",
                     "update_time"}


def test_list_shape_paging_and_headers(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    for name in ("alpha", "team/beta", "gamma"):
        registry.push(f"{project}/{name}", "v1")
    registry.push(f"{project}/alpha", "v2")

    r = ok(api.get(f"{API}/projects/{project}/repositories", params={"page_size": 2, "sort": "name"}))
    assert r.headers["X-Total-Count"] == "3"
    assert 'rel="next"' in r.headers["Link"] and 'rel="prev"' not in r.headers["Link"]
    first = r.json()
    assert [x["name"] for x in first] == [f"{project}/alpha", f"{project}/gamma"]
    pid = project_id(api, project)
    for repo in first:
        check_shape(repo, "Repository", required=REPOSITORY_FIELDS)
        assert repo["project_id"] == pid and isinstance(repo["id"], int)
        assert repo["pull_count"] == 0 and repo["description"] == ""
        assert harbor_time(repo["creation_time"]) <= harbor_time(repo["update_time"])
    assert first[0]["artifact_count"] == 2 and first[1]["artifact_count"] == 1

    r = ok(api.get(f"{API}/projects/{project}/repositories", params={"page": 2, "page_size": 2, "sort": "name"}))
    assert [x["name"] for x in r.json()] == [f"{project}/team/beta"]
    assert 'rel="prev"' in r.headers["Link"] and 'rel="next"' not in r.headers["Link"]

    # Harbor's default order is newest first.
    r = ok(api.get(f"{API}/projects/{project}/repositories"))
    assert [x["name"] for x in r.json()] == [f"{project}/gamma", f"{project}/team/beta", f"{project}/alpha"]
    assert "Link" not in r.headers
    r = api.get(f"{API}/projects/{project}/repositories", params={"page_size": 101})
    assert r.status_code == 400 and error_code(r) == "BAD_REQUEST"


def test_q_filters_and_sort(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    for name in ("web-frontend", "web-backend", "db"):
        registry.push(f"{project}/{name}", "v1")
    r = ok(api.get(f"{API}/projects/{project}/repositories", params={"q": "name=~web", "sort": "-name"}))
    assert [x["name"] for x in r.json()] == [f"{project}/web-frontend", f"{project}/web-backend"]
    assert r.headers["X-Total-Count"] == "2"
    r = ok(api.get(f"{API}/projects/{project}/repositories", params={"q": f"name={project}/db"}))
    assert [x["name"] for x in r.json()] == [f"{project}/db"]
    # An unknown key is refused rather than ignored (ignoring it would widen the selection).
    r = api.get(f"{API}/projects/{project}/repositories", params={"q": "colour=blue"})
    assert r.status_code == 400 and error_code(r) == "BAD_REQUEST"


def test_get_accepts_single_and_double_encoded_slashes(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    registry.push(f"{project}/team/app/api", "v1")
    double = ok(api.get(f"{API}/projects/{project}/repositories/team%252Fapp%252Fapi")).json()
    single = ok(api.get(f"{API}/projects/{project}/repositories/team%2Fapp%2Fapi")).json()
    assert double == single
    check_shape(double, "Repository", required=REPOSITORY_FIELDS)
    assert double["name"] == f"{project}/team/app/api" and double["artifact_count"] == 1
    assert ok(api.get(f"{API}/projects/{project}/repositories/team%2Fapp%2Fapi/artifacts")).json()

    r = api.get(repo_path(project, "team/nothing"))
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    r = api.get(repo_path("nosuchproject0", "x"))
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"


def test_update_description(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    registry.push(f"{project}/docs/site", "v1")
    ok(api.put(repo_path(project, "docs/site"), json={"description": "the docs site", "name": "ignored"}))
    repo = ok(api.get(repo_path(project, "docs/site"))).json()
    assert repo["description"] == "the docs site" and repo["name"] == f"{project}/docs/site"
    listed = ok(api.get(f"{API}/projects/{project}/repositories")).json()
    assert listed[0]["description"] == "the docs site"


def test_delete_removes_artifacts_and_tags(api: httpx.Client, registry: Registry,
                                           auth_server: RunningServer) -> None:
    project = new_project(api)
    repo = f"{project}/svc/api"
    one, two = registry.push(repo, "v1"), registry.push(repo, "v2")
    registry.push(f"{project}/other", "v1")

    ok(api.delete(f"{API}/projects/{project}/repositories/{enc('svc/api')}"))
    assert api.get(repo_path(project, "svc/api")).status_code == 404
    assert api.get(repo_path(project, "svc/api", "/artifacts")).status_code == 404
    for ref in (one.digest, two.digest, "v1", "v2"):
        assert registry.manifest_status(repo, ref) == 404
    assert registry.tags(repo) is None
    names = [x["name"] for x in ok(api.get(f"{API}/projects/{project}/repositories")).json()]
    assert names == [f"{project}/other"]
    assert audited(auth_server, repo, ("delete", "repository", "admin"))
    assert api.delete(repo_path(project, "svc/api")).status_code == 404

    # The name can be pushed to again afterwards, from scratch.
    registry.push(repo, "v3")
    assert ok(api.get(repo_path(project, "svc/api"))).json()["artifact_count"] == 1


def test_permissions(api: httpx.Client, anon: httpx.Client, registry: Registry, auth_server: RunningServer) -> None:
    public, private = new_project(api, public=True), new_project(api)
    registry.push(f"{public}/app", "v1")
    registry.push(f"{private}/app", "v1")

    # Anyone reads a public project's repositories; nobody anonymous changes them.
    assert len(ok(anon.get(f"{API}/projects/{public}/repositories")).json()) == 1
    ok(anon.get(repo_path(public, "app")))
    for r in (anon.delete(repo_path(public, "app")), anon.put(repo_path(public, "app"), json={"description": "x"})):
        assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"

    # A private project: 401 to anonymous callers, 404 to signed-in non-members.
    for r in (anon.get(f"{API}/projects/{private}/repositories"), anon.get(repo_path(private, "app"))):
        assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"
    with user_client(auth_server, api) as stranger:
        for r in (stranger.get(f"{API}/projects/{private}/repositories"), stranger.get(repo_path(private, "app")),
                  stranger.delete(repo_path(private, "app"))):
            assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
        # ... and on a public project they read but may not delete.
        ok(stranger.get(repo_path(public, "app")))
        r = stranger.delete(repo_path(public, "app"))
        assert r.status_code == 403 and error_code(r) == "FORBIDDEN"

    with user_client(auth_server, api, private, "guest") as guest:
        assert len(ok(guest.get(f"{API}/projects/{private}/repositories")).json()) == 1
        r = guest.delete(repo_path(private, "app"))
        assert r.status_code == 403 and error_code(r) == "FORBIDDEN"
    with user_client(auth_server, api, private, "developer") as developer:
        ok(developer.put(repo_path(private, "app"), json={"description": "by a developer"}))
        assert developer.delete(repo_path(private, "app")).status_code == 403
    with user_client(auth_server, api, private, "maintainer") as maintainer:
        ok(maintainer.delete(repo_path(private, "app")))
    assert api.get(repo_path(private, "app")).status_code == 404

"""Harbor parity details scripts rely on: status codes, headers and fields as Harbor answers them."""

from __future__ import annotations

import httpx

from tests.api.artifact_support import (
    API,
    Registry,
    error_code,
    new_project,
    ok,
    project_id,
    repo_path,
    user_client,
)
from tests.servers import RunningServer

IMMUTABLE_V = {"action": "immutable", "template": "immutable_template",
               "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v*"}],
               "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches",
                                                   "pattern": "**"}]}}


def test_deleting_a_project_with_repositories_is_a_failed_precondition(api: httpx.Client,
                                                                       registry: Registry) -> None:
    project = new_project(api)
    registry.push(f"{project}/app", "1")
    r = api.delete(f"{API}/projects/{project}")
    assert r.status_code == 412 and error_code(r) == "PRECONDITION", r.text
    assert "repositories" in r.json()["errors"][0]["message"]
    ok(api.delete(repo_path(project, "app")))
    ok(api.delete(f"{API}/projects/{project}"))


def test_immutable_deletes_are_412_in_the_api_and_403_in_the_registry(api: httpx.Client,
                                                                       registry: Registry) -> None:
    project = new_project(api)
    image = registry.push(f"{project}/app", "v1")
    ok(api.post(f"{API}/projects/{project}/immutabletagrules", json=IMMUTABLE_V), 201)
    for path in (repo_path(project, "app", "/artifacts/v1"), repo_path(project, "app", f"/artifacts/{image.digest}"),
                 repo_path(project, "app", f"/artifacts/{image.digest}/tags/v1")):
        r = api.delete(path)
        assert r.status_code == 412 and error_code(r) == "PRECONDITION" and "v1" in r.text, (path, r.text)
    r = registry.client(f"{project}/app").delete(f"/v2/{project}/app/manifests/{image.digest}")
    assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED", r.text


def test_location_names_the_project_when_asked(api: httpx.Client) -> None:
    name = f"loc{new_project(api)}"
    r = ok(api.post(f"{API}/projects", json={"project_name": name},
                    headers={"X-Resource-Name-In-Location": "true"}), 201)
    assert r.headers["Location"] == f"/api/v2.0/projects/{name}"
    r = ok(api.post(f"{API}/projects", json={"project_name": f"{name}-id"},
                    headers={"X-Resource-Name-In-Location": "false"}), 201)
    assert r.headers["Location"] == f"/api/v2.0/projects/{project_id(api, f'{name}-id')}"


def test_tags_report_immutable_when_asked(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    image = registry.push(f"{project}/team/app", "v1")
    registry.push(f"{project}/team/app", "latest", image)
    ok(api.post(f"{API}/projects/{project}/immutabletagrules", json=IMMUTABLE_V), 201)
    asked = {"with_immutable_status": "true"}
    listings = {
        "artifacts": lambda params: ok(api.get(repo_path(project, "team/app", "/artifacts"), params=params)
                                       ).json()[0]["tags"],
        "artifact": lambda params: ok(api.get(repo_path(project, "team/app", "/artifacts/latest"),
                                              params=params)).json()["tags"],
        "project artifacts": lambda params: ok(api.get(f"{API}/projects/{project}/artifacts",
                                                       params=params)).json()[0]["tags"],
        "tags": lambda params: ok(api.get(repo_path(project, "team/app", f"/artifacts/{image.digest}/tags"),
                                          params=params)).json(),
    }
    for where, tags_of in listings.items():
        assert {t["name"]: t["immutable"] for t in tags_of(asked)} == {"v1": True, "latest": False}, where
        assert not any(t["immutable"] for t in tags_of({})), where


# -- endpoints scripts call ---------------------------------------------------------------------


def test_ping_answers_pong_to_anyone(anon: httpx.Client) -> None:
    r = ok(anon.get(f"{API}/ping"))
    assert r.text == "Pong" and r.headers["content-type"].startswith("text/plain")


def test_all_repositories_the_caller_may_see(api: httpx.Client, registry: Registry, auth_server: RunningServer,
                                            anon: httpx.Client) -> None:
    private, public = new_project(api), new_project(api, public=True)
    for name in ("app", "web", "team/app"):
        registry.push(f"{private}/{name}", "1")
    registry.push(f"{public}/app", "1")
    r = ok(api.get(f"{API}/repositories", params={"q": f"name=~{private}/", "sort": "name", "page_size": 2}))
    assert r.headers["X-Total-Count"] == "3" and 'rel="next"' in r.headers["Link"]
    assert [x["name"] for x in r.json()] == [f"{private}/app", f"{private}/team/app"]
    assert set(r.json()[0]) >= {"id", "project_id", "name", "artifact_count", "pull_count", "creation_time"}
    r = ok(api.get(f"{API}/repositories", params={"q": f"name=~{private}/", "sort": "name", "page": 2,
                                                   "page_size": 2}))
    assert [x["name"] for x in r.json()] == [f"{private}/web"] and 'rel="prev"' in r.headers["Link"]
    # Someone outside the private project sees only the public one's.
    seen = ok(anon.get(f"{API}/repositories", params={"q": "name=~/app", "page_size": 100})).json()
    names = {x["name"] for x in seen}
    assert f"{public}/app" in names and not any(n.startswith(f"{private}/") for n in names)
    assert api.get(f"{API}/repositories", params={"q": "nonsense=1"}).status_code == 400


def test_project_metadatas(api: httpx.Client, anon: httpx.Client, auth_server: RunningServer) -> None:
    project = new_project(api)
    base = f"{API}/projects/{project}/metadatas"
    assert ok(api.get(base)).json() == {"public": "false"}
    assert ok(api.get(f"{base}/")).json() == {"public": "false"}
    ok(api.post(base, json={"auto_scan": "True", "severity": "High"}))
    assert ok(api.get(f"{base}/severity")).json() == {"severity": "high"}
    assert ok(api.get(f"{API}/projects/{project}")).json()["metadata"]["auto_scan"] == "true"
    assert api.post(base, json={"auto_scan": "false"}).status_code == 409
    ok(api.put(f"{base}/auto_scan", json={"auto_scan": "false"}))
    ok(api.put(f"{base}/public", json={"public": "true"}))  # the project's public flag itself
    assert ok(api.get(f"{API}/projects/{project}")).json()["metadata"]["public"] == "true"
    assert ok(anon.get(f"{API}/projects/{project}/metadatas/public")).json() == {"public": "true"}
    ok(api.delete(f"{base}/severity"))
    assert api.get(f"{base}/severity").status_code == 404
    assert api.delete(f"{base}/severity").status_code == 404
    assert ok(api.get(base)).json() == {"public": "true", "auto_scan": "false"}
    for method, path, body in [("POST", base, {"nonsense": "true"}), ("POST", base, {"auto_scan": "maybe"}),
                               ("POST", base, {"severity": "dire"}), ("POST", base, {}),
                               ("POST", base, {"retention_id": "7"}), ("PUT", f"{base}/auto_scan", {"x": "1"}),
                               ("PUT", f"{base}/prevent_vul", {"prevent_vul": ["true"]}),
                               ("DELETE", f"{base}/public", None)]:
        r = api.request(method, path, json=body)
        assert r.status_code == 400 and error_code(r) == "BAD_REQUEST", (method, path, body, r.text)
    assert anon.put(f"{base}/auto_scan", json={"auto_scan": "true"}).status_code == 401
    assert ok(api.get(base)).json() == {"public": "true", "auto_scan": "false"}


def test_system_volumes_for_administrators(api: httpx.Client, anon: httpx.Client,
                                           auth_server: RunningServer) -> None:
    (volume,) = ok(api.get(f"{API}/systeminfo/volumes")).json()["storage"]
    assert set(volume) == {"total", "free"} and volume["total"] >= volume["free"] > 0
    assert anon.get(f"{API}/systeminfo/volumes").status_code == 401
    project = new_project(api)
    with user_client(auth_server, api, project, "developer") as dev:
        assert dev.get(f"{API}/systeminfo/volumes").status_code == 403


def test_current_user_permissions(api: httpx.Client, anon: httpx.Client, auth_server: RunningServer) -> None:
    project = new_project(api)
    pid = project_id(api, project)
    with user_client(auth_server, api, project, "developer") as dev:
        granted = ok(dev.get(f"{API}/users/current/permissions", params={"scope": f"/project/{pid}"})).json()
        pairs = {(p["resource"], p["action"]) for p in granted}
        assert {(f"/project/{pid}/repository", "push"), (f"/project/{pid}", "read")} <= pairs
        assert (f"/project/{pid}/repository", "delete") not in pairs
        relative = ok(dev.get(f"{API}/users/current/permissions",
                              params={"scope": f"/project/{pid}", "relative": "true"})).json()
        assert {("repository", "push"), (".", "read")} <= {(p["resource"], p["action"]) for p in relative}
        assert ok(dev.get(f"{API}/users/current/permissions", params={"scope": "/project/99999999"})).json() == []
        assert ("system-volumes", "read") not in {
            (p["resource"], p["action"]) for p in ok(dev.get(f"{API}/users/current/permissions",
                                                             params={"scope": "/system", "relative": "true"})).json()}
        assert dev.get(f"{API}/users/current/permissions", params={"scope": "/nowhere"}).status_code == 400
    admin_relative = ok(api.get(f"{API}/users/current/permissions",
                                params={"scope": "/system", "relative": "true"})).json()
    assert {"resource": "system-volumes", "action": "read"} in admin_relative
    admin_project = ok(api.get(f"{API}/users/current/permissions", params={"scope": f"/project/{pid}"})).json()
    assert {"resource": f"/project/{pid}/repository", "action": "delete"} in admin_project
    assert anon.get(f"{API}/users/current/permissions", params={"scope": "/system"}).status_code == 401


def test_delete_by_digest_at_the_project_level(api: httpx.Client, registry: Registry,
                                               auth_server: RunningServer) -> None:
    project = new_project(api)
    pid = project_id(api, project)
    image = registry.push(f"{project}/team/app", "1.0")
    registry.push(f"{project}/team/app", "latest", image)
    keep = registry.push(f"{project}/team/app", "2.0")
    shared = registry.push(f"{project}/one", "x")
    registry.push(f"{project}/two", "x", shared)

    url = f"{API}/projects/{pid}/artifacts"
    r = api.delete(f"{url}/{shared.digest}")
    assert r.status_code == 409 and error_code(r) == "CONFLICT", r.text
    assert f"{project}/one" in r.text and f"{project}/two" in r.text
    assert registry.manifest_status(f"{project}/one", shared.digest) == 200  # nothing deleted
    assert api.delete(f"{url}/sha256:{'0' * 64}").status_code == 404
    assert api.delete(f"{url}/1.0").status_code == 400
    with user_client(auth_server, api, project, "developer") as dev:
        r = dev.delete(f"{url}/{image.digest}")
        assert r.status_code == 403 and error_code(r) == "FORBIDDEN", r.text

    ok(api.delete(f"{url}/{image.digest}"))
    assert registry.tags(f"{project}/team/app") == ["2.0"]  # both tags of the digest went
    assert registry.manifest_status(f"{project}/team/app", image.digest) == 404
    assert registry.manifest_status(f"{project}/team/app", keep.digest) == 200
    assert api.delete(f"{url}/{image.digest}").status_code == 404

    ok(api.post(f"{API}/projects/{project}/immutabletagrules", json={**IMMUTABLE_V, "tag_selectors": [
        {"kind": "doublestar", "decoration": "matches", "pattern": "2.*"}]}), 201)
    r = api.delete(f"{API}/projects/{project}/artifacts/{keep.digest}", headers={"X-Is-Resource-Name": "true"})
    assert r.status_code == 412 and error_code(r) == "PRECONDITION", r.text


def test_grantable_permissions_for_administrators(api: httpx.Client, anon: httpx.Client,
                                                 auth_server: RunningServer) -> None:
    found = ok(api.get(f"{API}/permissions")).json()
    assert {"resource": "repository", "action": "pull"} in found["project"]
    assert {"resource": "repository", "action": "push"} in found["system"]
    assert anon.get(f"{API}/permissions").status_code == 401
    project = new_project(api)
    with user_client(auth_server, api, project, "developer") as dev:
        assert dev.get(f"{API}/permissions").status_code == 403
    with user_client(auth_server, api, project, "projectAdmin") as owner:
        assert ok(owner.get(f"{API}/permissions")).json() == found

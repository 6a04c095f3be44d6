"""Harbor parity details scripts rely on: status codes, headers and fields as Harbor answers them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.artifact_support import (
    API,
    Registry,
    admin_session,
    error_code,
    new_project,
    ok,
    project_id,
    registry_for,
    repo_path,
)
from tests.servers import RunningServer

IMMUTABLE_V = {"action": "immutable", "template": "immutable_template",
               "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v*"}],
               "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches",
                                                   "pattern": "**"}]}}


@pytest.fixture
def api(auth_server: RunningServer) -> Iterator[httpx.Client]:
    with admin_session(auth_server) as c:
        yield c


@pytest.fixture
def registry(auth_server: RunningServer) -> Iterator[Registry]:
    with registry_for(auth_server) as reg:
        yield reg


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

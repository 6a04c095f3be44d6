"""Unknown /api/v2.0 paths answer 404 naming the path, unsupported methods 405; empty query values
mean the default, on every endpoint."""

from __future__ import annotations

import httpx
import pytest

from tests.api.artifact_support import API, Registry, new_project


def assert_not_found_path(r: httpx.Response, path: str) -> None:
    assert r.status_code == 404, r.text
    error = r.json()["errors"][0]
    assert error["code"] == "NOT_FOUND" and path in error["message"], error
    assert "repository" not in error["message"], error


def test_unknown_paths_are_404_naming_the_path(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    registry.push(f"{project}/team/app", "v1")
    for path in (f"{API}/no-such-thing", f"{API}/projects/{project}/no-such-thing",
                 f"{API}/projects/{project}/repositories/team%252Fapp/artifacts/v1/no-such-thing",
                 f"{API}/projects/{project}/repositories/team/app/artifacts/v1/no-such-thing",
                 f"{API}/projects/{project}/repositories/team/app/artifacts/v1/tags/v1/more"):
        assert_not_found_path(api.get(path), path)


def test_repository_names_in_paths_still_resolve(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    registry.push(f"{project}/team/app", "v1")
    registry.push(f"{project}/artifacts", "v1")  # a first segment may be called `artifacts`
    for name in ("team%252Fapp", "team%2Fapp", "team/app"):
        r = api.get(f"{API}/projects/{project}/repositories/{name}")
        assert r.status_code == 200 and r.json()["name"] == f"{project}/team/app", r.text
        r = api.get(f"{API}/projects/{project}/repositories/{name}/artifacts/v1/tags")
        assert r.status_code == 200 and [t["name"] for t in r.json()] == ["v1"], r.text
    r = api.get(f"{API}/projects/{project}/repositories/artifacts")
    assert r.status_code == 200 and r.json()["name"] == f"{project}/artifacts", r.text
    r = api.get(f"{API}/projects/{project}/repositories/team/nothing")  # nested names: a missing repository
    assert r.status_code == 404 and "repository" in r.json()["errors"][0]["message"]


def test_unsupported_methods_are_405(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    registry.push(f"{project}/app", "v1")
    for method, path in (("PATCH", f"{API}/projects"), ("POST", f"{API}/projects/{project}/repositories/app"),
                         ("GET", f"{API}/projects/{project}/repositories/app/artifacts/v1/tags/v1")):
        r = api.request(method, path)
        assert r.status_code == 405, r.text
        assert r.json()["errors"][0]["code"] == "METHOD_NOT_ALLOWED"
        assert "allow" in r.headers


@pytest.mark.parametrize("path", [
    "/projects?page=&page_size=", "/projects?with_detail=", "/projects?q=&sort=&name=&public=",
    "/projects?page", "/audit-logs?page=&page_size=&q=&sort=", "/users?page_size=&q=", "/quotas?page=&reference_id=",
    "/robots?q=&page=", "/projects/library/repositories?page=&page_size=&q=", "/statistics?unused=",
    "/projects/library/artifacts?with_tag=&with_label=&q=&page=",
])
def test_empty_query_values_mean_the_default(api: httpx.Client, path: str) -> None:
    r = api.get(API + path)
    assert r.status_code == 200, r.text


def test_empty_values_do_not_hide_real_ones(api: httpx.Client) -> None:
    r = api.get(f"{API}/projects?page=&page_size=1&q=")
    assert r.status_code == 200 and len(r.json()) == 1

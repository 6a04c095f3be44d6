"""Repository names and projects: no auto-creation, no existence oracle, no path tricks into another project."""

from __future__ import annotations

import base64
import http.client

import httpx
import pytest

from tests.auth.conftest import (
    Harbor,
    Team,
    bearer_client,
    challenge_params,
    error_code,
    fetch_token,
    http_client,
    unique,
)
from tests.conftest import ADMIN_PASSWORD
from tests.oci_client import OCI_MANIFEST, make_image, sha256
from tests.servers import RunningServer


def test_admin_push_to_missing_project_is_name_unknown(auth_server: RunningServer, admin: httpx.Client,
                                                       harbor: Harbor) -> None:
    project = unique("missing")
    repo = f"{project}/app"
    image = make_image(n_layers=1)
    r = admin.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(image.config)}, content=image.config)
    assert r.status_code == 404, r.text
    assert error_code(r) == "NAME_UNKNOWN"
    assert "create it first" in r.json()["errors"][0]["message"]
    with bearer_client(auth_server, harbor.admin_token(repo)) as c:
        for r in (c.post(f"/v2/{repo}/blobs/uploads/"),
                  c.put(f"/v2/{repo}/manifests/v1", content=image.body, headers={"Content-Type": OCI_MANIFEST})):
            assert r.status_code == 404, r.text
            assert error_code(r) == "NAME_UNKNOWN"
    # No project was created on the way.
    assert harbor.api.get(f"/api/v2.0/projects/{project}", headers={"X-Is-Resource-Name": "true"}).status_code == 404
    assert harbor.api.head("/api/v2.0/projects", params={"project_name": project}).status_code == 404


def test_missing_and_private_projects_look_the_same_to_others(auth_server: RunningServer, anon: httpx.Client,
                                                              harbor: Harbor, team: Team) -> None:
    """Others get 401/403 for a project that does not exist, exactly as for one they cannot see."""
    existing = f"{team.private}/app"
    harbor.seed(existing)
    missing = f"{unique('missing')}/app"
    outsider = team.users["outsider"]
    developer = team.users["developer"]  # may push in the team's project, not in a missing one
    token = fetch_token(auth_server, (outsider.name, outsider.secret), f"repository:{existing}:pull,push",
                        f"repository:{missing}:pull,push", secrets=harbor.secrets)
    dev_token = fetch_token(auth_server, (developer.name, developer.secret), f"repository:{missing}:pull,push",
                            secrets=harbor.secrets)
    with http_client(auth_server, auth=(outsider.name, outsider.secret)) as basic, \
            http_client(auth_server, auth=(developer.name, developer.secret)) as dev, \
            bearer_client(auth_server, token) as bearer, bearer_client(auth_server, dev_token) as dev_bearer:
        for repo in (existing, missing):
            for method, path in (("GET", f"/v2/{repo}/manifests/v1"), ("POST", f"/v2/{repo}/blobs/uploads/")):
                assert anon.request(method, path).status_code == 401, (repo, method)
                r = basic.request(method, path)
                assert (r.status_code, error_code(r)) == (403, "DENIED"), (repo, method, r.text)
                r = bearer.request(method, path)
                assert r.status_code == 401 and challenge_params(r)["error"] == "insufficient_scope", (repo, method)
        for method, path in (("GET", f"/v2/{missing}/manifests/v1"), ("POST", f"/v2/{missing}/blobs/uploads/")):
            assert dev.request(method, path).status_code == 403, (method, path)
            assert dev_bearer.request(method, path).status_code == 401, (method, path)


def raw(server: RunningServer, method: str, path: str, auth: str | None = None) -> tuple[int, bytes]:
    """A request whose path goes out exactly as written (httpx would normalize dot segments)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        if auth:
            conn.putheader("Authorization", auth)
        conn.putheader("Accept", OCI_MANIFEST)
        conn.putheader("Content-Length", "0")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


TRICKS = [
    "/v2/{mine}/../{theirs}/manifests/v1",
    "/v2/{mine}/%2E%2E/{theirs}/manifests/v1",
    "/v2/{mine}%2F..%2F{theirs}/manifests/v1",
    "/v2/{mine}/..%2F{theirs}/manifests/v1",
    "/v2/{mine}%2F%2E%2E%2F{theirs}/manifests/v1",
    "/v2/{mine}/./../{theirs}/manifests/v1",
    "/v2/{mine}//{theirs}/manifests/v1",
    "/v2/{mine}/app/manifests/../../../{theirs}/manifests/v1",
    "/v2/./{theirs}/manifests/v1",
    "/v2/{theirs_upper}/manifests/v1",
    "/v2/{mine}/%00/../{theirs}/manifests/v1",
    "/v2/{theirs}%2Fmanifests%2Fv1/manifests/v1",
]


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_path_tricks_do_not_reach_another_project(auth_server: RunningServer, harbor: Harbor, team: Team,
                                                  mode: str) -> None:
    """A developer of one project tries to read another project's image through odd paths."""
    mine = f"{team.private}/app"
    other = harbor.project()
    theirs = f"{other}/app"
    image = harbor.seed(theirs)
    developer = team.users["developer"]
    if mode == "basic":
        auth = "Basic " + base64.b64encode(f"{developer.name}:{developer.secret}".encode()).decode()
    else:  # ask for the tricky names too: whatever comes back must not open the other project
        scopes = [f"repository:{mine}:pull,push"] + [
            "repository:" + t.format(mine=mine, theirs=theirs, theirs_upper=theirs.upper())
            .removeprefix("/v2/").removesuffix("/manifests/v1") + ":pull" for t in TRICKS]
        auth = "Bearer " + fetch_token(auth_server, (developer.name, developer.secret), *scopes,
                                       secrets=harbor.secrets)
    for trick in TRICKS:
        path = trick.format(mine=mine, theirs=theirs, theirs_upper=theirs.upper())
        status, body = raw(auth_server, "GET", path, auth)
        assert status in (400, 401, 403), (path, status, body)
        assert image.body not in body, path
        if status == 400:
            assert b"NAME_INVALID" in body, (path, body)
    # The plain path is refused the same way.
    status, _ = raw(auth_server, "GET", f"/v2/{theirs}/manifests/v1", auth)
    assert status == (403 if mode == "basic" else 401)


def test_uppercase_and_one_component_names(auth_server: RunningServer, admin: httpx.Client, anon: httpx.Client,
                                           harbor: Harbor, team: Team) -> None:
    harbor.seed(f"{team.private}/app")
    for client in (admin, anon):
        for path in (f"/v2/{team.private.upper()}/app/manifests/v1", f"/v2/{team.private}/APP/tags/list",
                     "/v2/app/manifests/v1", "/v2/app/blobs/uploads/", f"/v2/{team.private}/manifests/v1",
                     "/v2/app/tags/list"):
            method = "POST" if path.endswith("/uploads/") else "GET"
            r = client.request(method, path)
            assert r.status_code == 400, (path, r.text)
            assert error_code(r) == "NAME_INVALID"
    # A token for a one-component name is of no use either.
    token = fetch_token(auth_server, ("admin", ADMIN_PASSWORD), "repository:app:pull,push", secrets=harbor.secrets)
    with bearer_client(auth_server, token) as c:
        r = c.post("/v2/app/blobs/uploads/")
        assert r.status_code == 400 and error_code(r) == "NAME_INVALID"

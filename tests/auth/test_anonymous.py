"""What a client without credentials may do: pull from public projects, nothing else."""

from __future__ import annotations

import httpx

from tests.auth.conftest import Harbor, bearer_client, challenge_params, claims_of, error_code, granted, unique
from tests.oci_client import OCI_MANIFEST, make_image, sha256
from tests.servers import RunningServer


def test_base_endpoint_challenges(anon: httpx.Client, auth_server: RunningServer) -> None:
    r = anon.get("/v2/")
    assert r.status_code == 401
    assert error_code(r) == "UNAUTHORIZED"
    assert r.headers["www-authenticate"] == (
        f'Bearer realm="{auth_server.url}/service/token",service="portside"'
    )
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"


def test_public_pull_directly_and_with_anonymous_token(anon: httpx.Client, harbor: Harbor,
                                                       auth_server: RunningServer) -> None:
    project = harbor.project(public=True)
    repo = f"{project}/app"
    image = harbor.seed(repo)

    r = anon.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200, r.text
    assert r.content == image.body
    blob = anon.get(f"/v2/{repo}/blobs/{sha256(image.layers[0])}")
    assert blob.status_code == 200 and blob.content == image.layers[0]
    assert anon.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]

    # The token protocol without credentials: an anonymous token carrying pull only.
    r = anon.get("/service/token", params={"service": "portside", "scope": f"repository:{repo}:pull,push"})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert granted(token) == {f"repository:{repo}": {"pull"}}
    with bearer_client(auth_server, token) as c:
        r = c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and r.content == image.body
        assert c.head(f"/v2/{repo}/blobs/{sha256(image.config)}").status_code == 200
        r = c.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 401
        assert challenge_params(r)["error"] == "insufficient_scope"


def test_private_pull_is_challenged_with_scope(anon: httpx.Client, harbor: Harbor,
                                               auth_server: RunningServer) -> None:
    project = harbor.project(public=False)
    repo = f"{project}/secret"
    image = harbor.seed(repo)
    for path in (f"/v2/{repo}/manifests/v1", f"/v2/{repo}/manifests/{image.digest}",
                 f"/v2/{repo}/blobs/{sha256(image.config)}", f"/v2/{repo}/tags/list"):
        r = anon.get(path)
        assert r.status_code == 401, path
        assert error_code(r) == "UNAUTHORIZED"
        params = challenge_params(r)
        assert params == {"realm": f"{auth_server.url}/service/token", "service": "portside",
                          "scope": f"repository:{repo}:pull"}, path
        assert image.body not in r.content
    # An anonymous token for a private repository carries nothing, and is useless there.
    r = anon.get("/service/token", params={"service": "portside", "scope": f"repository:{repo}:pull"})
    assert r.status_code == 200
    token = r.json()["token"]
    assert granted(token) == {}
    with bearer_client(auth_server, token) as c:
        r = c.get(f"/v2/{repo}/manifests/v1")
        assert r.status_code == 401 and challenge_params(r)["error"] == "insufficient_scope"


def test_anonymous_push_is_refused_everywhere(anon: httpx.Client, harbor: Harbor) -> None:
    public, private = harbor.project(public=True), harbor.project(public=False)
    image = make_image(n_layers=1)
    for repo in (f"{public}/app", f"{private}/app", f"{unique('nosuch')}/app"):
        r = anon.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 401, repo
        assert challenge_params(r)["scope"] == f"repository:{repo}:pull,push"
        r = anon.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(image.config)}, content=image.config)
        assert r.status_code == 401, repo
        r = anon.put(f"/v2/{repo}/manifests/v1", content=image.body, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 401, repo
        r = anon.delete(f"/v2/{repo}/manifests/v1")
        assert r.status_code == 401, repo
    # Nothing was created: the administrator sees no such repository.
    assert not harbor.exists(f"{public}/app")
    assert not harbor.exists(f"{private}/app")


def test_anonymous_catalog_is_refused(anon: httpx.Client) -> None:
    r = anon.get("/v2/_catalog")
    assert r.status_code == 401
    assert challenge_params(r)["scope"] == "registry:catalog:*"
    assert error_code(r) == "UNAUTHORIZED"


def test_anonymous_token_names_nobody(anon: httpx.Client, harbor: Harbor, auth_server: RunningServer) -> None:
    """An anonymous token has an empty subject, so it cannot be mistaken for an account: not even for a
    user whose name is "anonymous" (whose private repositories it once listed in /v2/_catalog)."""
    project = harbor.project(public=False)
    repo = f"{project}/hidden"
    harbor.seed(repo)
    password = "Anonymous123"
    r = harbor.api.post("/api/v2.0/users", json={"username": "anonymous", "password": password,
                                                 "email": "anonymous@example.com", "realname": "Anonymous"})
    assert r.status_code == 201, r.text
    harbor.secrets.add(password)
    harbor.member(project, "anonymous", "guest")

    r = anon.get("/service/token", params={"service": "portside", "scope": "registry:catalog:*"})
    token = r.json()["token"]
    assert claims_of(token)["sub"] == "" and granted(token) == {}
    with bearer_client(auth_server, token) as c:
        assert c.get("/v2/").status_code == 401
        r = c.get("/v2/_catalog")
        assert r.status_code == 401 and repo not in r.text
        assert c.get(f"/v2/{repo}/tags/list").status_code == 401

    # The user called "anonymous" is an ordinary account.
    user_token = harbor.token(("anonymous", password), f"repository:{repo}:pull")
    assert claims_of(user_token)["sub"] == "anonymous"
    with bearer_client(auth_server, user_token) as c:
        assert c.get("/v2/").status_code == 200
        assert c.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]


def test_making_a_project_private_stops_anonymous_pulls_at_once(anon: httpx.Client, harbor: Harbor) -> None:
    """Project lookups are cached per worker and pushes leave that cache alone; a change to the
    project itself must still reach every worker before the next request."""
    project = harbor.project(public=True)
    repo = f"{project}/app"
    harbor.seed(repo)
    for _ in range(20):  # the project is now cached as public in both workers
        assert anon.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
    harbor.seed(repo, "v2")  # content writes in between
    assert anon.get(f"/v2/{repo}/manifests/v2", headers={"Accept": OCI_MANIFEST}).status_code == 200
    r = harbor.api.put(f"/api/v2.0/projects/{project}", json={"metadata": {"public": "false"}})
    assert r.status_code == 200, r.text
    for _ in range(20):
        assert anon.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 401

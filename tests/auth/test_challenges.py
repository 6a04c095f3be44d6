"""The Bearer challenge names every action a request needs, so a client that asks the token service for
exactly the challenged scope (as @sigstore/oci does) gets a token good for the whole operation; and a
token is checked for all of them (a push needs pull too, as in Distribution)."""

from __future__ import annotations

import uuid

import httpx

from tests.auth.conftest import (
    Harbor,
    Team,
    bearer_client,
    challenge_params,
    error_code,
    granted,
    http_client,
    unique,
)
from tests.oci_client import OCI_MANIFEST, make_image, push_blob, sha256
from tests.servers import RunningServer


def challenged_scope(r: httpx.Response) -> str:
    assert r.status_code == 401, (r.status_code, r.text)
    return challenge_params(r)["scope"]


def test_challenge_names_every_action_the_request_needs(anon: httpx.Client, team: Team, harbor: Harbor) -> None:
    repo = f"{team.private}/{unique('challenge')}"
    image = harbor.seed(repo)
    upload = f"/v2/{repo}/blobs/uploads/{uuid.uuid4()}"
    blob = f"/v2/{repo}/blobs/{sha256(image.config)}"
    expected = {
        ("POST", f"/v2/{repo}/blobs/uploads/"): "pull,push",
        ("PATCH", upload): "pull,push",
        ("PUT", upload): "pull,push",
        ("GET", upload): "pull,push",
        ("DELETE", upload): "pull,push",
        ("PUT", f"/v2/{repo}/manifests/v2"): "pull,push",
        ("GET", f"/v2/{repo}/manifests/v1"): "pull",
        ("HEAD", f"/v2/{repo}/manifests/v1"): "pull",
        ("GET", blob): "pull",
        ("HEAD", blob): "pull",
        ("GET", f"/v2/{repo}/tags/list"): "pull",
        ("GET", f"/v2/{repo}/referrers/{image.digest}"): "pull",
        # Deletes ask for delete alone, as Distribution and Harbor do.
        ("DELETE", blob): "delete",
        ("DELETE", f"/v2/{repo}/manifests/v1"): "delete",
    }
    for (method, path), actions in expected.items():
        assert challenged_scope(anon.request(method, path)) == f"repository:{repo}:{actions}", (method, path)
    assert harbor.exists(repo, tag="v1")


def test_a_token_for_the_challenged_scope_pushes(auth_server: RunningServer, anon: httpx.Client, team: Team,
                                                 harbor: Harbor) -> None:
    """@sigstore/oci's sign-in: POST an upload anonymously, ask for exactly the challenged scope, then HEAD
    blobs and manifests, upload, PUT a manifest, all with that one token."""
    developer = team.users["developer"]
    repo = f"{team.private}/{unique('follow')}"
    scope = challenged_scope(anon.post(f"/v2/{repo}/blobs/uploads/"))
    token = harbor.token((developer.name, developer.secret), scope)
    assert granted(token) == {f"repository:{repo}": {"pull", "push"}}
    image = make_image(n_layers=1, layer_size=64)
    with bearer_client(auth_server, token) as c:
        assert c.head(f"/v2/{repo}/blobs/{sha256(image.config)}").status_code == 404  # looked, not refused
        for data in (image.config, *image.layers):
            push_blob(c, repo, data)
        r = c.put(f"/v2/{repo}/manifests/v1", content=image.body, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201, r.text
        assert c.head(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200


def test_push_without_pull_is_refused(auth_server: RunningServer, harbor: Harbor) -> None:
    """A robot granted push but not pull: its token carries push alone, which opens no upload (a push
    needs pull) and no read; with Basic credentials it is 403."""
    project = harbor.project()
    repo = f"{project}/pushonly"
    harbor.seed(repo)
    robot = harbor.robot(project, ("push",), level="project", name=unique("pushonly"))
    token = harbor.token((robot.name, robot.secret), f"repository:{repo}:pull,push")
    assert granted(token) == {f"repository:{repo}": {"push"}}
    config = make_image(n_layers=0).config
    with bearer_client(auth_server, token) as c:
        for method, path, actions in (("POST", f"/v2/{repo}/blobs/uploads/", "pull,push"),
                                      ("HEAD", f"/v2/{repo}/blobs/{sha256(config)}", "pull"),
                                      ("GET", f"/v2/{repo}/manifests/v1", "pull")):
            r = c.request(method, path)
            assert r.status_code == 401, (method, r.text)
            params = challenge_params(r)
            assert params["error"] == "insufficient_scope"
            assert params["scope"] == f"repository:{repo}:{actions}"
        r = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(config)}, content=config)
        assert r.status_code == 401
    with http_client(auth_server, auth=(robot.name, robot.secret)) as c:
        r = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(config)}, content=config)
        assert r.status_code == 403 and error_code(r) == "DENIED", r.text
        assert "pull" in r.json()["errors"][0]["message"]
    assert not harbor.exists(repo, blob=sha256(config))

"""Harbor's project roles x registry actions, through /v2, with Basic credentials and with bearer tokens.

    role           pull  push  delete
    projectAdmin    yes   yes   yes
    maintainer      yes   yes   yes
    developer       yes   yes   no
    guest           yes   no    no
    limitedGuest    yes   no    no
    (no role)       no    no    no     in a private project
    (no role)       yes   no    no     in a public project

Refused with Basic credentials: 403 DENIED. Refused with a token: 401 with error="insufficient_scope"
(the token simply did not carry the action). A refused push leaves nothing behind.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.auth.conftest import (
    Account,
    Harbor,
    Team,
    bearer_client,
    challenge_params,
    error_code,
    granted,
    http_client,
    unique,
)
from tests.conftest import ADMIN_PASSWORD
from tests.oci_client import OCI_CONFIG, OCI_MANIFEST, sha256
from tests.servers import RunningServer

MATRIX = {
    "projectAdmin": {"pull", "push", "delete"},
    "maintainer": {"pull", "push", "delete"},
    "developer": {"pull", "push"},
    "guest": {"pull"},
    "limitedGuest": {"pull"},
    "outsider": set(),
}


def tiny_image() -> tuple[bytes, bytes]:
    """(config, manifest) of a layer-less image: a push is one blob and one manifest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "salt": unique("")}).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)}, "layers": []}
    return config, json.dumps(manifest).encode()


def assert_refused(r: httpx.Response, mode: str, repo: str, action: str) -> None:
    if mode == "basic":
        assert r.status_code == 403, r.text
        assert error_code(r) == "DENIED"
        assert "www-authenticate" not in r.headers
    else:
        assert r.status_code == 401, r.text
        assert error_code(r) == "UNAUTHORIZED"
        params = challenge_params(r)
        assert params["error"] == "insufficient_scope"
        assert params["scope"] == f"repository:{repo}:{action}"


def client_for(server: RunningServer, harbor: Harbor, mode: str, user: Account, *repos: str) -> httpx.Client:
    if mode == "basic":
        return http_client(server, auth=(user.name, user.secret))
    token = harbor.token((user.name, user.secret), *(f"repository:{r}:pull,push,delete" for r in repos))
    return bearer_client(server, token)


@pytest.mark.parametrize("mode", ["basic", "bearer"])
@pytest.mark.parametrize("role", list(MATRIX))
def test_private_project(auth_server: RunningServer, harbor: Harbor, team: Team, role: str, mode: str) -> None:
    allowed = MATRIX[role]
    repo, new_repo = f"{team.private}/{role.lower()}-{mode}", f"{team.private}/{unique('new')}"
    image = harbor.seed(repo)
    config, manifest = tiny_image()
    with client_for(auth_server, harbor, mode, team.users[role], repo, new_repo) as c:
        if mode == "bearer":  # the token carries exactly what the role allows
            want = {f"repository:{r}": allowed for r in (repo, new_repo)} if allowed else {}
            assert granted(c.headers["Authorization"].split(" ", 1)[1]) == want

        # pull
        r = c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        if "pull" in allowed:
            assert r.status_code == 200 and r.content == image.body
        else:
            assert_refused(r, mode, repo, "pull")
            assert image.body not in r.content

        # push: a blob (monolithic POST) then a manifest, into a repository that does not exist yet
        r = c.post(f"/v2/{new_repo}/blobs/uploads/", params={"digest": sha256(config)}, content=config)
        if "push" in allowed:
            assert r.status_code == 201, r.text
            r = c.put(f"/v2/{new_repo}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST})
            assert r.status_code == 201, r.text
            assert harbor.exists(new_repo, tag="v1")
        else:
            assert_refused(r, mode, new_repo, "pull,push")
            r = c.put(f"/v2/{new_repo}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST})
            assert_refused(r, mode, new_repo, "pull,push")
            r = c.post(f"/v2/{repo}/blobs/uploads/")  # into the existing repository: refused too
            assert_refused(r, mode, repo, "pull,push")
            assert not harbor.exists(new_repo)
            assert not harbor.exists(repo, blob=sha256(config))

        # delete the seeded manifest
        r = c.delete(f"/v2/{repo}/manifests/{image.digest}")
        if "delete" in allowed:
            assert r.status_code == 202, r.text
            assert not harbor.exists(repo, tag="v1")
        else:
            assert_refused(r, mode, repo, "delete")
            assert harbor.exists(repo, tag="v1")


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_public_project_for_a_non_member(auth_server: RunningServer, harbor: Harbor, team: Team, mode: str) -> None:
    repo, new_repo = f"{team.public}/app-{mode}", f"{team.public}/{unique('new')}"
    image = harbor.seed(repo)
    config, manifest = tiny_image()
    with client_for(auth_server, harbor, mode, team.users["outsider"], repo, new_repo) as c:
        r = c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and r.content == image.body
        r = c.post(f"/v2/{new_repo}/blobs/uploads/", params={"digest": sha256(config)}, content=config)
        assert_refused(r, mode, new_repo, "pull,push")
        r = c.put(f"/v2/{new_repo}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST})
        assert_refused(r, mode, new_repo, "pull,push")
        r = c.delete(f"/v2/{repo}/manifests/{image.digest}")
        assert_refused(r, mode, repo, "delete")
    assert not harbor.exists(new_repo)
    assert harbor.exists(repo, tag="v1")


def test_refused_push_is_not_listed(auth_server: RunningServer, harbor: Harbor, team: Team) -> None:
    """After the guests' refused pushes above (and one here), the catalog lists none of their targets."""
    guest = team.users["guest"]
    target = f"{team.private}/{unique('guestpush')}"
    config, _ = tiny_image()
    with http_client(auth_server, auth=(guest.name, guest.secret)) as c:
        assert c.post(f"/v2/{target}/blobs/uploads/", params={"digest": sha256(config)},
                      content=config).status_code == 403
        assert c.get("/v2/_catalog").status_code == 403  # the catalog is the administrators' (test_catalog)
    token = harbor.token(("admin", ADMIN_PASSWORD), "registry:catalog:*")
    with bearer_client(auth_server, token) as c:
        everything = c.get("/v2/_catalog", params={"n": 10000}).json()["repositories"]
    assert target not in everything
    # Every repository of the team's project holds what an allowed push put there: no empty leftovers.
    for repo in everything:
        if repo.startswith(f"{team.private}/"):
            assert harbor.exists(repo), repo


def test_upload_session_stays_with_its_repository(auth_server: RunningServer, harbor: Harbor, team: Team) -> None:
    """An upload session belongs to one repository: others cannot touch it, even knowing its id, whether
    they lack push there or hold push in another repository."""
    a, b = f"{team.private}/{unique('upa')}", f"{team.private}/{unique('upb')}"
    config, _ = tiny_image()
    maintainer, guest, developer = (team.users[r] for r in ("maintainer", "guest", "developer"))
    owner_token = harbor.token((maintainer.name, maintainer.secret), f"repository:{a}:pull,push")
    guest_token = harbor.token((guest.name, guest.secret), f"repository:{a}:pull,push")
    dev_token = harbor.token((developer.name, developer.secret), f"repository:{b}:pull,push")
    with bearer_client(auth_server, owner_token) as owner, bearer_client(auth_server, guest_token) as g, \
            bearer_client(auth_server, dev_token) as dev:
        r = owner.post(f"/v2/{a}/blobs/uploads/")
        assert r.status_code == 202, r.text
        location = r.headers["location"]
        upload_id = location.rstrip("/").rsplit("/", 1)[1]
        digest = {"digest": sha256(config)}

        for r in (g.patch(location, content=config), g.put(location, params=digest, content=config),
                  g.get(location), g.delete(location)):
            assert_refused(r, "bearer", a, "pull,push")
        elsewhere = f"/v2/{b}/blobs/uploads/{upload_id}"
        for r in (dev.patch(elsewhere, content=config), dev.put(elsewhere, params=digest, content=config),
                  dev.get(elsewhere)):
            assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN", r.text

        r = owner.put(location, params=digest, content=config)  # the owner's session is intact
        assert r.status_code == 201, r.text
    with bearer_client(auth_server, owner_token) as owner:
        assert owner.head(f"/v2/{a}/blobs/{sha256(config)}").status_code == 200
    assert not harbor.exists(b)

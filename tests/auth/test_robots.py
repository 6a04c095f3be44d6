"""Robot accounts on /v2: what their permissions allow, nothing across projects, and no access once
disabled or expired."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from portside.metadata.models import Robot, table
from tests.auth.conftest import Account, Harbor, Team, bearer_client, call, execute, granted, http_client, ok, unique
from tests.oci_client import OCI_CONFIG, OCI_MANIFEST, sha256
from tests.servers import RunningServer


def basic(server: RunningServer, account: Account) -> httpx.Client:
    return http_client(server, auth=(account.name, account.secret))


def push_tiny(c: httpx.Client, repo: str, tag: str = "v1") -> tuple[httpx.Response, httpx.Response]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "salt": unique("")}).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)}, "layers": []}
    blob = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(config)}, content=config)
    put = c.put(f"/v2/{repo}/manifests/{tag}", content=json.dumps(manifest).encode(),
                headers={"Content-Type": OCI_MANIFEST})
    return blob, put


def token_for(server: RunningServer, harbor: Harbor, robot: Account, *scopes: str) -> httpx.Response:
    r = call(server, "GET", "/service/token", params=[("service", "portside"), *(("scope", s) for s in scopes)],
                  auth=(robot.name, robot.secret), timeout=60)
    if r.status_code == 200:
        harbor.secrets.add(r.json()["token"])
    return r


def test_system_robot_limited_to_its_project_and_actions(auth_server: RunningServer, harbor: Harbor,
                                                         team: Team) -> None:
    other = harbor.project()  # private, the robot has no entry for it
    mine, theirs = f"{team.private}/robo", f"{other}/robo"
    image = harbor.seed(mine)
    harbor.seed(theirs)
    robot = harbor.robot(team.private, ("pull", "push"))
    assert robot.name.startswith("robot$") and "+" not in robot.name

    with basic(auth_server, robot) as c:
        assert c.get(f"/v2/{mine}/manifests/v1", headers={"Accept": OCI_MANIFEST}).content == image.body
        blob, put = push_tiny(c, mine, "robot-pushed")
        assert (blob.status_code, put.status_code) == (201, 201), put.text
        r = c.delete(f"/v2/{mine}/manifests/{image.digest}")  # no delete permission
        assert r.status_code == 403
        for r in (c.get(f"/v2/{theirs}/manifests/v1"), c.post(f"/v2/{theirs}/blobs/uploads/")):
            assert r.status_code == 403, r.text
    assert harbor.exists(mine, tag="robot-pushed") and harbor.exists(mine, tag="v1")

    r = token_for(auth_server, harbor, robot, f"repository:{mine}:pull,push,delete",
                  f"repository:{theirs}:pull,push", "registry:catalog:*")
    assert r.status_code == 200
    assert granted(r.json()["token"]) == {f"repository:{mine}": {"pull", "push"}}


def test_project_robot_cannot_reach_another_project(auth_server: RunningServer, harbor: Harbor,
                                                    team: Team) -> None:
    home, away = harbor.project(), harbor.project()
    public = team.public
    harbor.seed(f"{away}/app")
    harbor.seed(f"{public}/app")
    name = unique("ci")
    robot = harbor.robot(home, ("pull", "push", "delete"), level="project", name=name)
    assert robot.name == f"robot${home}+{name}"

    with basic(auth_server, robot) as c:
        blob, put = push_tiny(c, f"{home}/app")
        assert (blob.status_code, put.status_code) == (201, 201), put.text
        assert c.get(f"/v2/{home}/app/tags/list").json()["tags"] == ["v1"]
        for method, path in (("GET", f"/v2/{away}/app/manifests/v1"), ("GET", f"/v2/{away}/app/tags/list"),
                             ("POST", f"/v2/{away}/app/blobs/uploads/"), ("DELETE", f"/v2/{away}/app/manifests/v1"),
                             ("POST", f"/v2/{public}/app/blobs/uploads/")):
            r = c.request(method, path)
            assert r.status_code == 403, (method, path, r.text)
        # A public project is readable by anyone, robots included.
        assert c.get(f"/v2/{public}/app/tags/list").status_code == 200
    r = token_for(auth_server, harbor, robot, f"repository:{away}/app:pull,push",
                  f"repository:{home}/app:pull,push,delete")
    assert granted(r.json()["token"]) == {f"repository:{home}/app": {"pull", "push", "delete"}}


def test_mount_from_unreadable_repository_is_not_a_mount(auth_server: RunningServer, harbor: Harbor,
                                                         team: Team) -> None:
    """A blob that exists in a project the robot cannot read must not become readable via mount."""
    away = harbor.project()
    secret = harbor.seed(f"{away}/hidden")
    layer = sha256(secret.layers[0])
    robot = harbor.robot(team.private, ("pull", "push"))
    with basic(auth_server, robot) as c:
        r = c.post(f"/v2/{team.private}/thief/blobs/uploads/", params={"mount": layer, "from": f"{away}/hidden"})
        assert r.status_code == 202, r.text
        assert c.head(f"/v2/{team.private}/thief/blobs/{layer}").status_code == 404
    assert not harbor.exists(f"{team.private}/thief", blob=layer)


def test_disabled_robot_is_refused(auth_server: RunningServer, harbor: Harbor, team: Team) -> None:
    repo = f"{team.private}/disabled"
    harbor.seed(repo)
    robot = harbor.robot(team.private, ("pull", "push"))
    assert robot.id is not None
    with basic(auth_server, robot) as c:
        assert c.get(f"/v2/{repo}/tags/list").status_code == 200

    harbor.set_robot_disabled(robot.id, True)
    with basic(auth_server, robot) as c:
        for r in (c.get("/v2/"), c.get(f"/v2/{repo}/tags/list"), c.post(f"/v2/{repo}/blobs/uploads/")):
            assert r.status_code == 401, r.text
    assert token_for(auth_server, harbor, robot, f"repository:{repo}:pull").status_code == 401

    harbor.set_robot_disabled(robot.id, False)
    with basic(auth_server, robot) as c:
        assert c.get(f"/v2/{repo}/tags/list").status_code == 200


@pytest.mark.parametrize("level", ["system", "project"])
def test_expired_robot_is_refused(auth_server: RunningServer, harbor: Harbor, team: Team, level: str) -> None:
    """Durations are whole days, so the expiry is moved into the past in the server's database (the
    server reads it on every check; nothing is cached)."""
    repo = f"{team.private}/expiring-{level}"
    harbor.seed(repo)
    body = {"name": unique("exp"), "level": level, "duration": 1, "disable": False,
            "permissions": [{"kind": "project", "namespace": team.private,
                             "access": [{"resource": "repository", "action": "pull"}]}]}
    created = ok(harbor.api.post("/api/v2.0/robots", json=body), 201).json()
    harbor.secrets.add(created["secret"])
    robot = Account(created["name"], created["secret"], created["id"])
    assert created["expires_at"] > datetime.now(UTC).timestamp() + 3600
    with basic(auth_server, robot) as c:
        assert c.get(f"/v2/{repo}/tags/list").status_code == 200

    past = datetime.now(UTC) - timedelta(minutes=1)
    execute(auth_server, sa.update(table(Robot)).where(table(Robot).c.id == robot.id).values(expires_at=past))
    listed = ok(harbor.api.get(f"/api/v2.0/robots/{robot.id}"), 200).json()
    assert listed["expires_at"] < datetime.now(UTC).timestamp()
    with basic(auth_server, robot) as c:
        assert c.get(f"/v2/{repo}/tags/list").status_code == 401
    assert token_for(auth_server, harbor, robot, f"repository:{repo}:pull").status_code == 401


def test_robot_with_wildcard_action(auth_server: RunningServer, harbor: Harbor, team: Team) -> None:
    """Harbor's action `*` means every action on the resource."""
    repo = f"{team.private}/wild"
    image = harbor.seed(repo)
    robot = harbor.robot(team.private, ("*",))
    r = token_for(auth_server, harbor, robot, f"repository:{repo}:pull,push,delete")
    assert r.status_code == 200
    assert granted(r.json()["token"]) == {f"repository:{repo}": {"pull", "push", "delete"}}
    with bearer_client(auth_server, r.json()["token"]) as c:
        assert c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}).content == image.body

"""/api/v2.0/robots through HTTP: robot v2 accounts, who may manage them, secrets shown once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.accounts import API, Accounts, error_message, unique, wait_for
from tests.oci_client import make_image, push_image, push_manifest
from tests.servers import RunningServer

ROBOT_KEYS = {"id", "name", "description", "level", "duration", "editable", "disable", "expires_at",
              "permissions", "creator", "creation_time", "update_time"}
CREATED_KEYS = {"id", "name", "secret", "creation_time", "expires_at"}


@pytest.fixture
def accounts(auth_server: RunningServer, admin: httpx.Client) -> Iterator[Accounts]:
    a = Accounts(auth_server, admin)
    yield a
    a.close()


def access(*actions: str, resource: str = "repository") -> list[dict[str, str]]:
    return [{"resource": resource, "action": a} for a in actions]


def project_robot(project: str, name: str | None = None, *actions: str, **extra: Any) -> dict[str, Any]:
    return {"name": name or unique("r"), "level": "project", "duration": -1, "description": "ci",
            "permissions": [{"kind": "project", "namespace": project, "access": access(*(actions or ("pull",)))}],
            **extra}


def create(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"{API}/robots", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == CREATED_KEYS
    assert r.headers["location"] == f"/api/v2.0/robots/{created['id']}"
    return dict(created)


def can_log_in(accounts: Accounts, name: str, secret: str, project: str) -> bool:
    """Whether the robot's credentials are accepted (its own project's robot listing is not needed:
    a pull of a missing repository answers 404 to an accepted robot, 401 to a refused one)."""
    r = accounts.client(name, secret).get(f"/v2/{project}/nothing-here/tags/list")
    assert r.status_code in (401, 404), r.text
    return r.status_code == 404


def test_project_robot_lifecycle(accounts: Accounts, auth_server: RunningServer) -> None:
    admin = accounts.admin
    project, project_id = accounts.project()
    created = create(admin, project_robot(project, "builder", "pull", "push"))
    assert created["name"] == f"robot${project}+builder"
    assert created["expires_at"] == -1
    assert len(created["secret"]) >= 8
    secret = created["secret"]

    robot = admin.get(f"{API}/robots/{created['id']}")
    assert robot.status_code == 200
    body = robot.json()
    assert set(body) == ROBOT_KEYS  # no secret
    assert body["name"] == created["name"] and body["level"] == "project" and body["creator"] == "admin"
    assert body["disable"] is False and body["editable"] is True and body["duration"] == -1
    assert body["permissions"][0]["namespace"] == project
    assert secret not in robot.text

    # The robot pushes and pulls in its project with its secret.
    robot_client = accounts.client(created["name"], secret)
    image = push_image(robot_client, f"{project}/app", "v1")
    assert robot_client.get(f"/v2/{project}/app/manifests/v1",
                            headers={"Accept": image.manifest["mediaType"]}).status_code == 200

    listed = admin.get(f"{API}/robots", params={"q": f"Level=project,ProjectID={project_id}"})
    assert listed.status_code == 200
    assert [r["name"] for r in listed.json()] == [created["name"]]
    assert secret not in listed.text and "secret" not in listed.json()[0]

    # Disable: the secret stops working; enable again.
    update = {**body, "disable": True, "description": "paused"}
    assert admin.put(f"{API}/robots/{created['id']}", json=update).status_code == 200
    again = admin.get(f"{API}/robots/{created['id']}").json()
    assert again["disable"] is True and again["description"] == "paused"
    assert not can_log_in(accounts, created["name"], secret, project)
    assert admin.put(f"{API}/robots/{created['id']}", json={**update, "disable": False}).status_code == 200
    assert can_log_in(accounts, created["name"], secret, project)

    # Refresh with no secret: a new one is generated, returned once; the old one stops working.
    r = admin.patch(f"{API}/robots/{created['id']}", json={})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"secret"}
    new_secret = r.json()["secret"]
    assert new_secret and new_secret != secret
    assert not can_log_in(accounts, created["name"], secret, project)
    assert can_log_in(accounts, created["name"], new_secret, project)

    # Refresh with a chosen secret: it must meet the password rules.
    message = error_message(admin.patch(f"{API}/robots/{created['id']}", json={"secret": "short"}), 400)
    assert "8" in message
    chosen = "Chosen-Secret-42"
    r = admin.patch(f"{API}/robots/{created['id']}", json={"secret": chosen})
    assert r.status_code == 200 and r.json() == {"secret": chosen}
    assert can_log_in(accounts, created["name"], chosen, project)

    assert admin.delete(f"{API}/robots/{created['id']}").status_code == 200
    error_message(admin.get(f"{API}/robots/{created['id']}"), 404)
    assert not can_log_in(accounts, created["name"], chosen, project)

    log = auth_server.log()
    for value in (secret, new_secret, chosen):
        assert value not in log


def test_system_robot(accounts: Accounts, auth_server: RunningServer) -> None:
    admin = accounts.admin
    one, _ = accounts.project()
    two, _ = accounts.project()
    name = unique("sys")
    created = create(admin, {
        "name": name, "level": "system", "duration": 30, "description": "mirror",
        "permissions": [{"kind": "project", "namespace": one, "access": access("pull", "push")},
                        {"kind": "project", "namespace": two, "access": access("pull")}]})
    assert created["name"] == f"robot${name}"
    expected = time.time() + 30 * 86400
    assert abs(created["expires_at"] - expected) < 120

    robot = accounts.client(created["name"], created["secret"])
    push_image(robot, f"{one}/mirror", "latest")
    # Pull only in the second project.
    r = robot.post(f"/v2/{two}/mirror/blobs/uploads/")
    assert r.status_code in (401, 403), r.text

    body = admin.get(f"{API}/robots/{created['id']}").json()
    assert set(body) == ROBOT_KEYS and body["level"] == "system" and body["duration"] == 30
    listed = admin.get(f"{API}/robots", params={"q": "Level=system", "page_size": 100})
    assert created["name"] in {r["name"] for r in listed.json()}
    assert all(r["level"] == "system" for r in listed.json())

    # Extending the duration moves the expiry.
    r = admin.put(f"{API}/robots/{created['id']}", json={**body, "duration": 60})
    assert r.status_code == 200, r.text
    moved = admin.get(f"{API}/robots/{created['id']}").json()["expires_at"]
    assert abs(moved - (created["expires_at"] + 30 * 86400)) < 5
    assert created["secret"] not in auth_server.log()


def test_robot_name_and_level_cannot_change(accounts: Accounts) -> None:
    admin = accounts.admin
    project, _ = accounts.project()
    created = create(admin, project_robot(project))
    body = admin.get(f"{API}/robots/{created['id']}").json()
    error_message(admin.put(f"{API}/robots/{created['id']}", json={**body, "name": "robot$other"}), 400)
    error_message(admin.put(f"{API}/robots/{created['id']}", json={**body, "level": "system"}), 400)
    other, _ = accounts.project()
    moved = {**body, "permissions": [{"kind": "project", "namespace": other, "access": access("pull")}]}
    error_message(admin.put(f"{API}/robots/{created['id']}", json=moved), 400)


def test_bad_robot_requests(accounts: Accounts) -> None:
    admin = accounts.admin
    project, _ = accounts.project()
    name = unique("r")
    create(admin, project_robot(project, name))
    assert "already exists" in error_message(admin.post(f"{API}/robots", json=project_robot(project, name)), 409)
    error_message(admin.post(f"{API}/robots", json=project_robot(project, "Bad Name")), 400)
    error_message(admin.post(f"{API}/robots", json=project_robot(project, duration=0)), 400)
    error_message(admin.post(f"{API}/robots", json=project_robot(project, level="galaxy")), 400)
    error_message(admin.post(f"{API}/robots", json=project_robot(project, secret="weak")), 400)
    error_message(admin.post(f"{API}/robots", json={**project_robot(project), "permissions": []}), 400)
    bad_access = project_robot(project)
    bad_access["permissions"][0]["access"] = access("fly")
    error_message(admin.post(f"{API}/robots", json=bad_access), 400)
    error_message(admin.post(f"{API}/robots", json=project_robot(f"missing-{unique()}")), 404)
    error_message(admin.get(f"{API}/robots/999999"), 404)
    error_message(admin.get(f"{API}/robots", params={"q": "ProjectID=abc"}), 400)
    error_message(admin.get(f"{API}/robots", params={"sort": "colour"}), 400)
    # A chosen secret that meets the rules is accepted and not echoed by reads.
    chosen = create(admin, project_robot(project, secret="Chosen-Secret-7"))
    assert chosen["secret"] == "Chosen-Secret-7"
    assert "Chosen-Secret-7" not in admin.get(f"{API}/robots/{chosen['id']}").text


@pytest.mark.parametrize("role", ["projectAdmin", "maintainer", "developer", "guest", "limitedGuest", None])
def test_who_may_manage_project_robots(accounts: Accounts, role: str | None) -> None:
    """projectAdmin creates, updates, refreshes and deletes its project's robots; maintainers,
    developers and guests may only list and read them (as in Harbor); limited guests get 403;
    callers outside a private project get 404."""
    admin = accounts.admin
    project, project_id = accounts.project()
    caller = accounts.user()
    if role is not None:
        accounts.member(project, caller, role)
    existing = create(admin, project_robot(project))
    robot_url = f"{API}/robots/{existing['id']}"
    body = admin.get(robot_url).json()
    c = caller.client

    listing = c.get(f"{API}/robots", params={"q": f"Level=project,ProjectID={project_id}"})
    read = c.get(robot_url)
    made = c.post(f"{API}/robots", json=project_robot(project))
    updated = c.put(robot_url, json={**body, "description": "changed"})
    refreshed = c.patch(robot_url, json={})
    deleted = c.delete(robot_url)
    results = [x.status_code for x in (listing, read, made, updated, refreshed, deleted)]
    expected = {
        "projectAdmin": [200, 200, 201, 200, 200, 200],
        "maintainer": [200, 200, 403, 403, 403, 403],
        "developer": [200, 200, 403, 403, 403, 403],
        "guest": [200, 200, 403, 403, 403, 403],
        "limitedGuest": [403] * 6,
        None: [404] * 6,
    }[role]
    assert results == expected, [x.text for x in (listing, read, made, updated, refreshed, deleted)]
    if role == "projectAdmin":
        assert set(made.json()) == CREATED_KEYS
        assert made.json()["name"].startswith(f"robot${project}+")
        assert "secret" in refreshed.json()
        error_message(admin.get(robot_url), 404)
    else:
        assert admin.get(robot_url).json()["description"] == "ci"


def test_system_robots_are_for_system_administrators(accounts: Accounts, anon: httpx.Client) -> None:
    admin = accounts.admin
    project, _ = accounts.project()
    owner = accounts.user()
    accounts.member(project, owner, "projectAdmin")
    system = {"name": unique("s"), "level": "system", "duration": -1,
              "permissions": [{"kind": "project", "namespace": project, "access": access("pull")}]}
    error_message(owner.client.post(f"{API}/robots", json=system), 403)
    created = create(admin, system)
    error_message(owner.client.get(f"{API}/robots/{created['id']}"), 403)
    error_message(owner.client.delete(f"{API}/robots/{created['id']}"), 403)
    error_message(owner.client.get(f"{API}/robots"), 403)  # listing everything needs a system administrator
    # A project admin may not smuggle a project robot into a project they do not administer.
    other, _ = accounts.project()
    error_message(owner.client.post(f"{API}/robots", json=project_robot(other)), 404)
    for r in (anon.get(f"{API}/robots"), anon.get(f"{API}/robots/{created['id']}"),
              anon.post(f"{API}/robots", json=system), anon.patch(f"{API}/robots/{created['id']}", json={}),
              anon.delete(f"{API}/robots/{created['id']}")):
        error_message(r, 401)


def test_robot_refreshes_its_own_secret(accounts: Accounts) -> None:
    project, _ = accounts.project()
    created = create(accounts.admin, project_robot(project))
    robot = accounts.client(created["name"], created["secret"])
    r = robot.patch(f"{API}/robots/{created['id']}", json={})
    assert r.status_code == 200, r.text
    assert can_log_in(accounts, created["name"], r.json()["secret"], project)


def test_list_paging_and_filters(accounts: Accounts) -> None:
    admin = accounts.admin
    project, project_id = accounts.project()
    names = [create(admin, project_robot(project, f"bot{i}"))["name"] for i in range(3)]
    url = f"{API}/robots"
    q = f"Level=project,ProjectID={project_id}"
    first = admin.get(url, params={"q": q, "page": 1, "page_size": 2, "sort": "name"})
    assert first.headers["x-total-count"] == "3"
    assert [r["name"] for r in first.json()] == names[:2]
    assert 'rel="next"' in first.headers["link"]
    second = admin.get(url, params={"q": q, "page": 2, "page_size": 2, "sort": "name"})
    assert [r["name"] for r in second.json()] == names[2:]
    newest = admin.get(url, params={"q": q, "sort": "-creation_time"}).json()
    assert newest[-1]["name"] == names[0]
    fuzzy = admin.get(url, params={"q": f"ProjectID={project_id},name=~bot1"}).json()
    assert [r["name"] for r in fuzzy] == [names[1]]


def test_robot_changes_are_audited(accounts: Accounts) -> None:
    admin = accounts.admin
    project, _ = accounts.project()
    created = create(admin, project_robot(project))
    admin.patch(f"{API}/robots/{created['id']}", json={})
    admin.delete(f"{API}/robots/{created['id']}")

    def fetch() -> list[dict[str, Any]]:
        r = admin.get(f"{API}/audit-logs", params={"q": f"resource={created['name']}", "page_size": 50})
        assert r.status_code == 200, r.text
        return list(r.json())

    entries = wait_for(fetch, lambda e: len(e) >= 3)
    assert sorted(e["operation"] for e in entries) == ["create", "delete", "update"]
    assert {e["resource_type"] for e in entries} == {"robot"}


def test_robot_push_is_limited_to_its_grant(accounts: Accounts) -> None:
    project, _ = accounts.project()
    created = create(accounts.admin, project_robot(project, None, "pull"))
    robot = accounts.client(created["name"], created["secret"])
    image = make_image()
    r = push_manifest(robot, f"{project}/app", "v1", image.body)
    assert r.status_code in (401, 403), r.text


def project_access(project: str, *pairs: str) -> list[dict[str, Any]]:
    """One project entry from `resource:action` pairs."""
    return [{"kind": "project", "namespace": project,
             "access": [{"resource": p.partition(":")[0], "action": p.partition(":")[2]} for p in pairs]}]


def test_a_robot_grants_no_more_than_it_holds(accounts: Accounts) -> None:
    """A developer-like robot that may create robots cannot make a project-admin robot, nor widen
    itself; a narrower robot it may make."""
    admin = accounts.admin
    project, _ = accounts.project()
    maker = create(admin, {**project_robot(project), "permissions": project_access(
        project, "repository:pull", "repository:push", "robot:create", "robot:read", "robot:update")})
    robot = accounts.client(maker["name"], maker["secret"])
    wider = {**project_robot(project), "permissions": project_access(
        project, "repository:pull", "member:create", "project:delete")}
    message = error_message(robot.post(f"{API}/robots", json=wider), 403)
    assert f"{project}/member:create" in message and f"{project}/repository:pull" not in message
    error_message(robot.post(f"{API}/robots", json={**wider, "permissions": project_access(project, "repository:*")}),
                  403)  # the wildcard spells out delete, which the robot lacks
    narrower = robot.post(f"{API}/robots", json=project_robot(project, None, "pull"))
    assert narrower.status_code == 201, narrower.text
    # It may not widen itself, nor (holding robot:update) the robot it made.
    own = admin.get(f"{API}/robots/{maker['id']}").json()
    widened = project_access(project, "repository:pull", "repository:push", "robot:create", "robot:read",
                             "robot:update", "repository:delete")
    error_message(robot.put(f"{API}/robots/{maker['id']}", json={**own, "permissions": widened}), 403)
    made = admin.get(f"{API}/robots/{narrower.json()['id']}").json()
    error_message(robot.put(f"{API}/robots/{made['id']}",
                            json={**made, "permissions": project_access(project, "repository:delete")}), 403)
    assert admin.get(f"{API}/robots/{maker['id']}").json()["permissions"] == own["permissions"]
    # Narrowing what it made is fine.
    r = robot.put(f"{API}/robots/{made['id']}", json={**made, "description": "narrowed"})
    assert r.status_code == 200, r.text
    # Refreshing a wider robot's secret would hand it that robot's power.
    wide = create(admin, {**project_robot(project), "permissions": project_access(project, "repository:delete")})
    error_message(robot.patch(f"{API}/robots/{wide['id']}", json={}), 403)
    assert robot.patch(f"{API}/robots/{made['id']}", json={}).status_code == 200


def test_a_project_admin_grants_only_its_own_permissions(accounts: Accounts) -> None:
    admin = accounts.admin
    project, _ = accounts.project()
    other, _ = accounts.project()
    owner = accounts.user()
    accounts.member(project, owner, "projectAdmin")
    accounts.member(other, owner, "developer")
    c = owner.client
    made = c.post(f"{API}/robots", json={**project_robot(project), "permissions": project_access(
        project, "repository:*", "member:create", "robot:list")})
    assert made.status_code == 201, made.text
    # Nothing in a project where it is a developer, nor in every project, nor system-wide.
    error_message(c.post(f"{API}/robots", json=project_robot(other, None, "pull")), 403)
    for entry, status in (({"kind": "project", "namespace": "*", "access": access("pull")}, 404),
                          ({"kind": "system", "namespace": "/", "access": access("pull")}, 400)):
        error_message(c.post(f"{API}/robots", json={**project_robot(project), "permissions": [entry]}), status)
    # A robot made by a system administrator with more than the project admin holds: the project admin
    # may still edit it, but not add what it lacks (a permission no project role has).
    rich = create(admin, {**project_robot(project), "permissions": project_access(
        project, "repository:pull", "scan:read")})
    body = admin.get(f"{API}/robots/{rich['id']}").json()
    assert c.put(f"{API}/robots/{rich['id']}", json={**body, "description": "edited"}).status_code == 200
    more = project_access(project, "repository:pull", "scan:read", "helm-chart:read")
    assert "helm-chart:read" in error_message(c.put(f"{API}/robots/{rich['id']}",
                                                    json={**body, "permissions": more}), 403)

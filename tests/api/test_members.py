"""/api/v2.0/projects/{project_name_or_id}/members through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.accounts import API, ROLES, Accounts, error_message, unique, wait_for
from tests.servers import RunningServer

MEMBER_KEYS = {"id", "project_id", "entity_name", "role_name", "role_id", "entity_id", "entity_type"}


@pytest.fixture
def accounts(auth_server: RunningServer, admin: httpx.Client) -> Iterator[Accounts]:
    a = Accounts(auth_server, admin)
    yield a
    a.close()


def test_add_list_read_update_remove(accounts: Accounts) -> None:
    admin = accounts.admin
    project, project_id = accounts.project()
    alice = accounts.user()
    r = admin.post(f"{API}/projects/{project}/members",
                   json={"role_id": 2, "member_user": {"username": alice.name}})
    assert r.status_code == 201, r.text
    location = r.headers["location"]
    assert location.startswith(f"/api/v2.0/projects/{project_id}/members/")
    mid = int(location.rsplit("/", 1)[1])

    member = admin.get(location).json()
    assert set(member) == MEMBER_KEYS
    assert member == {"id": mid, "project_id": project_id, "entity_name": alice.name, "role_name": "developer",
                      "role_id": 2, "entity_id": alice.id, "entity_type": "u"}

    listed = admin.get(f"{API}/projects/{project}/members")
    assert listed.status_code == 200
    names = {m["entity_name"]: m for m in listed.json()}
    assert set(names) == {"admin", alice.name}  # the creator is the project's first admin
    assert names["admin"]["role_name"] == "projectAdmin"
    assert all(set(m) == MEMBER_KEYS for m in listed.json())

    r = admin.put(f"{API}/projects/{project}/members/{mid}", json={"role_id": 4})
    assert r.status_code == 200, r.text
    assert admin.get(location).json()["role_name"] == "maintainer"

    r = admin.delete(f"{API}/projects/{project}/members/{mid}")
    assert r.status_code == 200, r.text
    error_message(admin.get(location), 404)
    error_message(admin.delete(f"{API}/projects/{project}/members/{mid}"), 404)
    assert [m["entity_name"] for m in admin.get(f"{API}/projects/{project}/members").json()] == ["admin"]


def test_add_by_user_id_and_by_project_id(accounts: Accounts) -> None:
    admin = accounts.basic_admin  # Basic credentials work as well as a portal session
    project, project_id = accounts.project()
    bob = accounts.user()
    r = admin.post(f"{API}/projects/{project_id}/members", json={"role_id": 3, "member_user": {"user_id": bob.id}},
                   headers={"X-Is-Resource-Name": "false"})
    assert r.status_code == 201, r.text
    members = admin.get(f"{API}/projects/{project_id}/members", params={"entityname": bob.name}).json()
    assert [(m["entity_id"], m["role_name"]) for m in members] == [(bob.id, "guest")]
    # The new member now sees the private project and its members.
    assert bob.client.get(f"{API}/projects/{project}").status_code == 200
    assert bob.client.get(f"{API}/projects/{project}/members").status_code == 200


def test_entityname_filter_and_paging(accounts: Accounts) -> None:
    admin = accounts.admin
    project, _ = accounts.project()
    tag = unique("m")
    users = [accounts.user(f"{tag}-{i}") for i in range(3)]
    for u in users:
        accounts.member(project, u, "guest")
    r = admin.get(f"{API}/projects/{project}/members", params={"entityname": tag})
    assert sorted(m["entity_name"] for m in r.json()) == sorted(u.name for u in users)
    assert r.headers["x-total-count"] == "3"

    first = admin.get(f"{API}/projects/{project}/members", params={"page": 1, "page_size": 2})
    assert first.headers["x-total-count"] == "4"
    assert len(first.json()) == 2
    assert 'rel="next"' in first.headers["link"]
    second = admin.get(f"{API}/projects/{project}/members", params={"page": 2, "page_size": 2})
    assert len(second.json()) == 2
    assert 'rel="prev"' in second.headers["link"]
    seen = [m["id"] for m in first.json() + second.json()]
    assert len(set(seen)) == 4


def test_bad_requests(accounts: Accounts) -> None:
    admin = accounts.admin
    project, _ = accounts.project()
    carol = accounts.user()
    url = f"{API}/projects/{project}/members"
    assert "role_id" in error_message(admin.post(url, json={"role_id": 9, "member_user": {"username": carol.name}}),
                                      400)
    error_message(admin.post(url, json={"role_id": 2, "member_user": {"username": "nobody-" + unique()}}), 400)
    error_message(admin.post(url, json={"role_id": 2}), 400)
    error_message(admin.post(url, json={"role_id": 2, "member_group": {"group_name": "devs"}}), 400)
    error_message(admin.post(url, json={"role_id": 2, "member_user": {}}), 400)
    error_message(admin.post(url, content=b"{not json", headers={"Content-Type": "application/json"}), 400)
    assert admin.post(url, json={"role_id": 2, "member_user": {"username": carol.name}}).status_code == 201
    assert "already" in error_message(
        admin.post(url, json={"role_id": 3, "member_user": {"user_id": carol.id}}), 409)
    mid = admin.get(url, params={"entityname": carol.name}).json()[0]["id"]
    error_message(admin.put(f"{url}/{mid}", json={"role_id": 0}), 400)
    error_message(admin.get(f"{url}/999999"), 404)
    error_message(admin.get(f"{API}/projects/no-such-{unique()}/members"), 404)


def test_member_of_another_project_is_not_reachable(accounts: Accounts) -> None:
    admin = accounts.admin
    one, _ = accounts.project()
    two, _ = accounts.project()
    dave = accounts.user()
    mid = accounts.member(one, dave, "developer")
    error_message(admin.get(f"{API}/projects/{two}/members/{mid}"), 404)
    error_message(admin.delete(f"{API}/projects/{two}/members/{mid}"), 404)
    assert admin.get(f"{API}/projects/{one}/members/{mid}").status_code == 200


@pytest.mark.parametrize("role", ["projectAdmin", "maintainer", "developer", "guest", "limitedGuest", None])
def test_who_may_change_members(accounts: Accounts, role: str | None) -> None:
    """Only holders of member:create/update/delete (projectAdmin, or a system administrator) change
    members; the other roles get 403, and callers outside a private project get 404."""
    admin = accounts.admin
    project, _ = accounts.project()
    caller = accounts.user()
    if role is not None:
        accounts.member(project, caller, role)
    target = accounts.user()
    target_mid = accounts.member(project, target, "guest")
    newcomer = accounts.user()
    url = f"{API}/projects/{project}/members"

    listing = caller.client.get(url)
    read = caller.client.get(f"{url}/{target_mid}")
    add = caller.client.post(url, json={"role_id": 2, "member_user": {"username": newcomer.name}})
    update = caller.client.put(f"{url}/{target_mid}", json={"role_id": 4})
    remove = caller.client.delete(f"{url}/{target_mid}")
    if role == "projectAdmin":
        assert [r.status_code for r in (listing, read, add, update, remove)] == [200, 200, 201, 200, 200]
        members = {m["entity_name"]: m["role_name"] for m in admin.get(url).json()}
        assert members[newcomer.name] == "developer"
        assert target.name not in members
        return
    expected = 404 if role is None else 403
    for r in (add, update, remove):
        error_message(r, expected)
    if role is None:
        error_message(listing, 404)
        error_message(read, 404)
    elif role == "limitedGuest":
        error_message(listing, 403)  # limited guests see the project but not its members
    else:
        assert listing.status_code == 200 and read.status_code == 200
    members = {m["entity_name"]: m["role_name"] for m in admin.get(url).json()}
    assert newcomer.name not in members
    assert members[target.name] == "guest"


def test_anonymous_and_public_projects(anon: httpx.Client, accounts: Accounts) -> None:
    private, _ = accounts.project()
    public, _ = accounts.project(public=True)
    outsider = accounts.user()
    error_message(anon.get(f"{API}/projects/{private}/members"), 401)
    error_message(anon.get(f"{API}/projects/{public}/members"), 401)
    error_message(anon.post(f"{API}/projects/{public}/members",
                            json={"role_id": 1, "member_user": {"username": outsider.name}}), 401)
    # Anyone may read a public project, but its members are for its members to see.
    assert outsider.client.get(f"{API}/projects/{public}").status_code == 200
    error_message(outsider.client.get(f"{API}/projects/{public}/members"), 403)
    error_message(outsider.client.post(f"{API}/projects/{public}/members",
                                       json={"role_id": 1, "member_user": {"username": outsider.name}}), 403)


def test_project_admin_member_manages_members(accounts: Accounts) -> None:
    project, _ = accounts.project()
    boss = accounts.user()
    accounts.member(project, boss, "projectAdmin")
    worker = accounts.user()
    url = f"{API}/projects/{project}/members"
    r = boss.client.post(url, json={"role_id": ROLES["developer"], "member_user": {"username": worker.name}})
    assert r.status_code == 201, r.text
    # The new developer may not promote themselves.
    mid = int(r.headers["location"].rsplit("/", 1)[1])
    error_message(worker.client.put(f"{url}/{mid}", json={"role_id": 1}), 403)


def test_member_changes_are_audited(accounts: Accounts) -> None:
    admin = accounts.admin
    project, _ = accounts.project()
    erin = accounts.user()
    mid = accounts.member(project, erin, "developer")
    assert admin.put(f"{API}/projects/{project}/members/{mid}", json={"role_id": 3}).status_code == 200
    assert admin.delete(f"{API}/projects/{project}/members/{mid}").status_code == 200

    def fetch() -> list[dict[str, object]]:
        r = admin.get(f"{API}/projects/{project}/logs", params={"q": "resource_type=member", "page_size": 50})
        assert r.status_code == 200, r.text
        return list(r.json())

    entries = wait_for(fetch, lambda e: len(e) >= 3)
    assert sorted(e["operation"] for e in entries) == ["create", "delete", "update"]
    assert {e["resource"] for e in entries} == {f"{project}/{erin.name}"}
    assert {e["username"] for e in entries} == {"admin"}

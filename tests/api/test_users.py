"""/api/v2.0/users through HTTP: accounts, profiles, passwords, the administrator flag."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.accounts import API, PASSWORD, Accounts, error_message, unique, wait_for
from tests.servers import RunningServer

USER_KEYS = {"user_id", "username", "email", "realname", "comment", "sysadmin_flag", "admin_role_in_auth",
             "creation_time", "update_time"}


@pytest.fixture
def accounts(auth_server: RunningServer, admin: httpx.Client) -> Iterator[Accounts]:
    a = Accounts(auth_server, admin)
    yield a
    a.close()


def no_secrets(r: httpx.Response) -> None:
    assert "argon2" not in r.text and "password" not in r.text, r.text


def signs_in(accounts: Accounts, username: str, password: str) -> bool:
    r = accounts.client(username, password).get(f"{API}/users/current")
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


def test_create_and_read(accounts: Accounts) -> None:
    admin = accounts.admin
    name = unique()
    r = admin.post(f"{API}/users", json={"username": name, "password": PASSWORD, "email": f"{name}@example.com",
                                          "realname": "Alice Liddell", "comment": "tester"})
    assert r.status_code == 201, r.text
    assert r.headers["location"].startswith("/api/v2.0/users/")
    user = admin.get(r.headers["location"])
    assert user.status_code == 200
    no_secrets(user)
    body = user.json()
    assert set(body) == USER_KEYS
    assert body["username"] == name and body["email"] == f"{name}@example.com"
    assert body["realname"] == "Alice Liddell" and body["comment"] == "tester"
    assert body["sysadmin_flag"] is False and body["admin_role_in_auth"] is False
    assert body["creation_time"].endswith("Z")
    assert r.headers["location"] == f"/api/v2.0/users/{body['user_id']}"

    # The new user signs in with Basic credentials and through the portal.
    me = accounts.client(name, PASSWORD).get(f"{API}/users/current")
    assert me.status_code == 200
    no_secrets(me)
    assert set(me.json()) == USER_KEYS  # no oidc_user_meta, no password_version
    assert me.json()["user_id"] == body["user_id"]
    assert accounts.session(name, PASSWORD).get(f"{API}/users/current").json()["username"] == name


def test_current_user_for_admin_and_anonymous(accounts: Accounts, anon: httpx.Client) -> None:
    me = accounts.admin.get(f"{API}/users/current").json()
    assert me["username"] == "admin" and me["sysadmin_flag"] is True
    error_message(anon.get(f"{API}/users/current"), 401)


def test_password_rules_and_duplicates(accounts: Accounts) -> None:
    admin = accounts.admin
    name = unique()
    for weak, hint in [("Sh0rt", "8"), ("alllowercase1", "uppercase"), ("NoDigitsHere", "digit"),
                       ("A1" + "a" * 127, "128")]:
        message = error_message(admin.post(f"{API}/users", json={"username": name, "password": weak}), 400)
        assert hint in message, message
    error_message(admin.post(f"{API}/users", json={"username": "", "password": PASSWORD}), 400)
    error_message(admin.post(f"{API}/users", json={"username": "bad name", "password": PASSWORD}), 400)
    error_message(admin.post(f"{API}/users", json={"username": "robot$sneaky", "password": PASSWORD}), 400)
    error_message(admin.post(f"{API}/users", json={"username": name, "password": PASSWORD, "email": "not-mail"}),
                  400)
    user = accounts.user(name, email=f"{name}@example.com")
    assert "already exists" in error_message(
        admin.post(f"{API}/users", json={"username": name, "password": PASSWORD}), 409)
    error_message(admin.post(f"{API}/users", json={"username": unique(), "password": PASSWORD,
                                                    "email": f"{name}@example.com"}), 409)
    assert user.client.get(f"{API}/users/current").status_code == 200


def test_only_administrators_create_users(accounts: Accounts, anon: httpx.Client) -> None:
    plain = accounts.user()
    body = {"username": unique(), "password": PASSWORD}
    error_message(anon.post(f"{API}/users", json=body), 401)  # self-registration is off
    error_message(plain.client.post(f"{API}/users", json=body), 403)
    assert accounts.admin.get(f"{API}/users", params={"q": f"username={body['username']}"}).json() == []


def test_list_filter_and_paging(accounts: Accounts, anon: httpx.Client) -> None:
    admin = accounts.admin
    tag = unique("l")
    made = [accounts.user(f"{tag}{i}") for i in range(3)]
    r = admin.get(f"{API}/users", params={"q": f"username=~{tag}"})
    assert r.status_code == 200
    no_secrets(r)
    assert [u["username"] for u in r.json()] == [u.name for u in made]
    assert all(set(u) == USER_KEYS for u in r.json())
    assert admin.get(f"{API}/users", params={"username": tag}).headers["x-total-count"] == "3"
    exact = admin.get(f"{API}/users", params={"q": f"username={made[1].name}"}).json()
    assert [u["user_id"] for u in exact] == [made[1].id]
    page = admin.get(f"{API}/users", params={"q": f"username=~{tag}", "page": 2, "page_size": 2,
                                             "sort": "-username"})
    assert page.headers["x-total-count"] == "3"
    assert [u["username"] for u in page.json()] == [made[0].name]
    assert 'rel="prev"' in page.headers["link"]
    error_message(admin.get(f"{API}/users", params={"q": "password=x"}), 400)
    error_message(admin.get(f"{API}/users", params={"sort": "password_hash"}), 400)
    error_message(made[0].client.get(f"{API}/users"), 403)
    error_message(anon.get(f"{API}/users"), 401)


def test_search(accounts: Accounts, anon: httpx.Client) -> None:
    tag = unique("s")
    one, two = accounts.user(f"{tag}a"), accounts.user(f"{tag}b")
    r = one.client.get(f"{API}/users/search", params={"username": tag})
    assert r.status_code == 200
    assert r.json() == [{"user_id": one.id, "username": one.name}, {"user_id": two.id, "username": two.name}]
    assert r.headers["x-total-count"] == "2"
    paged = one.client.get(f"{API}/users/search", params={"username": tag, "page_size": 1, "page": 2}).json()
    assert paged == [{"user_id": two.id, "username": two.name}]
    error_message(anon.get(f"{API}/users/search", params={"username": tag}), 401)
    error_message(one.client.get(f"{API}/users/search"), 400)


def test_profiles_are_private(accounts: Accounts, anon: httpx.Client) -> None:
    alice, bob = accounts.user(), accounts.user()
    assert alice.client.get(f"{API}/users/{alice.id}").json()["username"] == alice.name
    error_message(alice.client.get(f"{API}/users/{bob.id}"), 403)
    error_message(alice.client.get(f"{API}/users/999999"), 403)  # no hint whether it exists
    error_message(anon.get(f"{API}/users/{alice.id}"), 401)
    error_message(accounts.admin.get(f"{API}/users/999999"), 404)

    r = alice.client.put(f"{API}/users/{alice.id}", json={"email": f"{alice.name}@example.org", "realname": "Al"})
    assert r.status_code == 200, r.text
    profile = accounts.admin.get(f"{API}/users/{alice.id}").json()
    assert (profile["email"], profile["realname"], profile["comment"]) == (f"{alice.name}@example.org", "Al", "")
    error_message(alice.client.put(f"{API}/users/{bob.id}", json={"realname": "Mallory"}), 403)
    assert accounts.admin.put(f"{API}/users/{bob.id}", json={"comment": "by admin"}).status_code == 200
    assert accounts.admin.get(f"{API}/users/{bob.id}").json()["comment"] == "by admin"
    error_message(bob.client.put(f"{API}/users/{bob.id}", json={"email": f"{alice.name}@example.org"}), 409)


def test_change_own_password(accounts: Accounts) -> None:
    user = accounts.user()
    url = f"{API}/users/{user.id}/password"
    new = "N3w-Password"
    error_message(user.client.put(url, json={"new_password": new}), 400)  # old password required
    error_message(user.client.put(url, json={"old_password": "Wrong-Passw0rd", "new_password": new}), 403)
    assert "uppercase" in error_message(user.client.put(url, json={"old_password": PASSWORD,
                                                                    "new_password": "weakweak1"}), 400)
    error_message(user.client.put(url, json={"old_password": PASSWORD, "new_password": PASSWORD}), 400)
    r = user.client.put(url, json={"old_password": PASSWORD, "new_password": new})
    assert r.status_code == 200, r.text
    assert signs_in(accounts, user.name, new)
    assert not signs_in(accounts, user.name, PASSWORD)


def test_admin_resets_passwords_others_may_not(accounts: Accounts, anon: httpx.Client) -> None:
    alice, bob = accounts.user(), accounts.user()
    reset = "R3set-By-Admin"
    error_message(alice.client.put(f"{API}/users/{bob.id}/password", json={"old_password": PASSWORD,
                                                                           "new_password": reset}), 403)
    error_message(anon.put(f"{API}/users/{bob.id}/password", json={"new_password": reset}), 401)
    r = accounts.admin.put(f"{API}/users/{bob.id}/password", json={"new_password": reset})
    assert r.status_code == 200, r.text
    assert signs_in(accounts, bob.name, reset)
    error_message(accounts.admin.put(f"{API}/users/999999/password", json={"new_password": reset}), 404)


def test_sysadmin_flag(accounts: Accounts) -> None:
    promoted, other = accounts.user(), accounts.user()
    url = f"{API}/users/{promoted.id}/sysadmin"
    error_message(other.client.put(url, json={"sysadmin_flag": True}), 403)
    error_message(promoted.client.get(f"{API}/users"), 403)
    assert accounts.admin.put(url, json={"sysadmin_flag": True}).status_code == 200
    assert accounts.admin.get(f"{API}/users/{promoted.id}").json()["sysadmin_flag"] is True
    assert promoted.client.get(f"{API}/users").status_code == 200  # takes effect at once
    error_message(promoted.client.put(url, json={"sysadmin_flag": False}), 403)  # not on yourself
    error_message(accounts.admin.put(url, json={}), 400)
    assert promoted.client.put(f"{API}/users/{other.id}/sysadmin", json={"sysadmin_flag": True}).status_code == 200
    assert accounts.admin.put(url, json={"sysadmin_flag": False}).status_code == 200
    error_message(promoted.client.get(f"{API}/users"), 401)  # losing the flag ends the sessions
    error_message(accounts.session(promoted.name, promoted.password).get(f"{API}/users"), 403)


def test_delete_user(accounts: Accounts) -> None:
    admin = accounts.admin
    project, _ = accounts.project()
    doomed, other = accounts.user(), accounts.user()
    accounts.member(project, doomed, "developer")
    error_message(other.client.delete(f"{API}/users/{doomed.id}"), 403)
    me = admin.get(f"{API}/users/current").json()
    error_message(admin.delete(f"{API}/users/{me['user_id']}"), 403)
    assert admin.delete(f"{API}/users/{doomed.id}").status_code == 200
    error_message(admin.get(f"{API}/users/{doomed.id}"), 404)
    error_message(admin.delete(f"{API}/users/{doomed.id}"), 404)
    assert not signs_in(accounts, doomed.name, PASSWORD)
    members = admin.get(f"{API}/projects/{project}/members").json()
    assert doomed.name not in {m["entity_name"] for m in members}
    # The name is free again.
    assert accounts.user(doomed.name).id != doomed.id


def test_user_changes_are_audited_without_secrets(accounts: Accounts, auth_server: RunningServer) -> None:
    admin = accounts.admin
    secret_password = "Audit-Me-123"
    user = accounts.user(password=secret_password)
    admin.put(f"{API}/users/{user.id}", json={"comment": "x"})
    admin.delete(f"{API}/users/{user.id}")

    def fetch() -> list[dict[str, Any]]:
        r = admin.get(f"{API}/audit-logs", params={"q": f"resource_type=user,resource={user.name}"})
        assert r.status_code == 200, r.text
        return list(r.json())

    entries = wait_for(fetch, lambda e: len(e) >= 3)
    assert sorted(e["operation"] for e in entries) == ["create", "delete", "update"]
    assert secret_password not in auth_server.log()


def session_cookie(accounts: Accounts, name: str, password: str) -> tuple[httpx.Client, str]:
    c = accounts.session(name, password)
    return c, c.cookies["sid"]


def with_cookie(accounts: Accounts, cookie: str) -> httpx.Client:
    c = accounts.client()
    c.cookies.set("sid", cookie)
    return c


def test_session_names_the_account_not_its_name(accounts: Accounts) -> None:
    """The cookie of a deleted user does not act as a new user given the same name."""
    doomed = accounts.user()
    _, cookie = session_cookie(accounts, doomed.name, doomed.password)
    assert accounts.admin.delete(f"{API}/users/{doomed.id}").status_code == 200
    error_message(with_cookie(accounts, cookie).get(f"{API}/users/current"), 401)
    reborn = accounts.user(doomed.name)
    error_message(with_cookie(accounts, cookie).get(f"{API}/users/current"), 401)
    assert reborn.client.get(f"{API}/users/current").json()["user_id"] == reborn.id


def test_sign_out_and_password_change_end_every_session(accounts: Accounts) -> None:
    user = accounts.user()
    first, cookie = session_cookie(accounts, user.name, user.password)
    assert first.get(f"{API}/users/current").status_code == 200
    assert first.get("/c/log_out").status_code == 200
    # The browser that signed out and every other session of the account (user.client) are out.
    error_message(with_cookie(accounts, cookie).get(f"{API}/users/current"), 401)
    error_message(user.client.get(f"{API}/users/current"), 401)

    again, cookie = session_cookie(accounts, user.name, user.password)
    bystander = accounts.session(user.name, user.password)
    new = "Ch4nged-Password"
    r = again.put(f"{API}/users/{user.id}/password", json={"old_password": user.password, "new_password": new})
    assert r.status_code == 200, r.text
    for c in (again, bystander, with_cookie(accounts, cookie)):
        error_message(c.get(f"{API}/users/current"), 401)
    assert accounts.session(user.name, new).get(f"{API}/users/current").status_code == 200
    # An administrator's reset ends them too.
    latest = accounts.session(user.name, new)
    assert accounts.admin.put(f"{API}/users/{user.id}/password", json={"new_password": PASSWORD}).status_code == 200
    error_message(latest.get(f"{API}/users/current"), 401)

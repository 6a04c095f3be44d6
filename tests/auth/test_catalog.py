"""GET /v2/_catalog with authentication on: system administrators see every repository; everyone else is
refused (as in Harbor), never shown a subset. With --no-auth it stays open (tests/registry/test_listings)."""

from __future__ import annotations

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
from tests.conftest import ADMIN_PASSWORD
from tests.servers import RunningServer

CATALOG = "registry:catalog:*"


def assert_insufficient(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert error_code(r) == "UNAUTHORIZED"
    params = challenge_params(r)
    assert params["scope"] == CATALOG and params["error"] == "insufficient_scope", params


def test_administrator_lists_everything_with_the_catalog_scope(auth_server: RunningServer, harbor: Harbor,
                                                               team: Team) -> None:
    """Basic credentials or a token naming the catalog; a token is good for what it names, so the
    administrator's repository token does not list the catalog."""
    repo = f"{team.private}/{unique('listed')}"
    harbor.seed(repo)
    with http_client(auth_server, auth=("admin", ADMIN_PASSWORD)) as c:
        r = c.get("/v2/_catalog", params={"n": 100000})
        assert r.status_code == 200 and repo in r.json()["repositories"]
    token = harbor.token(("admin", ADMIN_PASSWORD), CATALOG)
    with bearer_client(auth_server, token) as c:
        r = c.get("/v2/_catalog", params={"n": 100000})
        assert r.status_code == 200 and repo in r.json()["repositories"]
    with bearer_client(auth_server, harbor.admin_token(repo, "pull")) as c:
        assert_insufficient(c.get("/v2/_catalog"))


def test_members_and_robots_are_refused(auth_server: RunningServer, harbor: Harbor, team: Team) -> None:
    """Basic credentials of anyone but an administrator: 403, even for a project admin or a robot that
    may pull in every project. No repository name leaks."""
    repo = f"{team.private}/{unique('hidden')}"
    harbor.seed(repo)
    robot = harbor.robot("*", ("pull", "push"), level="system", name=unique("everywhere"))
    for account in (team.users["projectAdmin"], team.users["guest"], team.users["outsider"], robot):
        with http_client(auth_server, auth=(account.name, account.secret)) as c:
            r = c.get("/v2/_catalog")
            assert r.status_code == 403 and error_code(r) == "DENIED", (account.name, r.text)
            assert repo not in r.text and "www-authenticate" not in r.headers
            assert c.get(f"/v2/{repo}/tags/list").status_code in (200, 403)  # their own rights are untouched


def test_token_service_grants_the_catalog_to_administrators_only(auth_server: RunningServer, harbor: Harbor,
                                                                 team: Team) -> None:
    robot = harbor.robot("*", ("pull",), level="system", name=unique("catalog"))
    for account in (team.users["projectAdmin"], robot):
        token = harbor.token((account.name, account.secret), CATALOG)
        assert granted(token) == {}, account.name
        with bearer_client(auth_server, token) as c:
            assert_insufficient(c.get("/v2/_catalog"))
    assert granted(harbor.token(("admin", ADMIN_PASSWORD), CATALOG)) == {"registry:catalog": {"*"}}


def test_anonymous_is_challenged_for_the_catalog(anon: httpx.Client, auth_server: RunningServer,
                                                 harbor: Harbor) -> None:
    r = anon.get("/v2/_catalog")
    assert r.status_code == 401 and challenge_params(r)["scope"] == CATALOG
    token = harbor.token(None, CATALOG)
    assert granted(token) == {}
    with bearer_client(auth_server, token) as c:
        assert_insufficient(c.get("/v2/_catalog"))

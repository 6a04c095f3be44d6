"""The Docker token protocol at /service/token, and what /v2 does with the tokens (and fakes of them)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from tests.auth.conftest import (
    Harbor,
    Team,
    bearer_client,
    call,
    challenge_params,
    claims_of,
    error_code,
    granted,
    http_client,
    mint,
    unique,
)
from tests.conftest import ADMIN_PASSWORD
from tests.oci_client import OCI_MANIFEST
from tests.servers import RunningServer

ADMIN = ("admin", ADMIN_PASSWORD)


def token_response(server: RunningServer, auth: tuple[str, str] | None, *scopes: str,
                   **params: str) -> httpx.Response:
    query = [("service", params.pop("service", "portside")), *(("scope", s) for s in scopes), *params.items()]
    return call(server, "GET", "/service/token", params=query, auth=auth)


def test_token_response_and_claims(auth_server: RunningServer, harbor: Harbor) -> None:
    """GET with Basic credentials: {token, access_token, expires_in, issued_at}; the JWT names the
    account, the service and exactly the access asked for (an administrator may do everything)."""
    project = harbor.project()
    before = int(datetime.now(UTC).timestamp())
    r = token_response(auth_server, ADMIN, f"repository:{project}/app:pull,push")
    assert r.status_code == 200, r.text
    body = r.json()
    harbor.secrets.add(body["token"])
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 1800
    issued = datetime.fromisoformat(body["issued_at"].replace("Z", "+00:00"))
    assert abs(issued.timestamp() - before) < 60

    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "ES256"
    claims = claims_of(body["token"])
    assert claims["sub"] == "admin" and claims["aud"] == "portside" and claims["iss"]
    assert claims["exp"] - claims["iat"] == 1800
    assert claims["access"] == [{"type": "repository", "name": f"{project}/app", "actions": ["pull", "push"]}]

    # The token works on /v2 for what it names.
    with bearer_client(auth_server, body["token"]) as c:
        assert c.get("/v2/").status_code == 200
        r = c.post(f"/v2/{project}/app/blobs/uploads/")
        assert r.status_code == 202, r.text


def test_several_scopes(auth_server: RunningServer, harbor: Harbor) -> None:
    """Several `scope` parameters (and several scopes in one, space-separated) are all answered."""
    a, b = harbor.project(), harbor.project()
    r = token_response(auth_server, ADMIN, f"repository:{a}/one:pull", f"repository:{b}/two:push,pull",
                       f"repository:{a}/three:delete repository:{a}/four:*", "registry:catalog:*")
    assert r.status_code == 200, r.text
    assert granted(r.json()["token"]) == {
        f"repository:{a}/one": {"pull"},
        f"repository:{b}/two": {"pull", "push"},
        f"repository:{a}/three": {"delete"},
        f"repository:{a}/four": {"pull", "push", "delete"},
        "registry:catalog": {"*"},
    }


def test_grant_is_intersection_of_asked_and_allowed(auth_server: RunningServer, team: Team) -> None:
    private, public = team.private, team.public
    ask = (f"repository:{private}/app:pull,push,delete", f"repository:{public}/app:pull,push,delete",
           f"repository:{unique('nosuch')}/app:pull,push", "registry:catalog:*")
    expected = {
        "projectAdmin": {"pull", "push", "delete"},
        "maintainer": {"pull", "push", "delete"},
        "developer": {"pull", "push"},
        "guest": {"pull"},
        "limitedGuest": {"pull"},
    }
    for role, user in team.users.items():
        r = token_response(auth_server, (user.name, user.secret), *ask)
        assert r.status_code == 200, (role, r.text)
        got = granted(r.json()["token"])
        want = {f"repository:{public}/app": {"pull"}}  # anyone may pull from a public project
        if role in expected:
            want[f"repository:{private}/app"] = expected[role]
        assert got == want, role  # no catalog, nothing in a project that does not exist


def test_catalog_scope_only_for_administrators(auth_server: RunningServer, team: Team, harbor: Harbor) -> None:
    harbor.seed(f"{team.private}/listed")
    r = token_response(auth_server, ADMIN, "registry:catalog:*")
    token = r.json()["token"]
    harbor.secrets.add(token)
    assert granted(token) == {"registry:catalog": {"*"}}
    with bearer_client(auth_server, token) as c:
        r = c.get("/v2/_catalog", params={"n": 10000})
        assert r.status_code == 200
        assert f"{team.private}/listed" in r.json()["repositories"]

    user = team.users["projectAdmin"]
    r = token_response(auth_server, (user.name, user.secret), "registry:catalog:*")
    assert r.status_code == 200
    assert granted(r.json()["token"]) == {}


def test_password_grant_post(auth_server: RunningServer, harbor: Harbor, team: Team) -> None:
    user = team.users["developer"]
    repo = f"{team.private}/posted"
    form = {"grant_type": "password", "username": user.name, "password": user.secret, "service": "portside",
            "scope": f"repository:{repo}:pull,push,delete", "client_id": "docker"}
    r = call(auth_server, "POST", "/service/token", data=form)
    assert r.status_code == 200, r.text
    body = r.json()
    harbor.secrets.add(body["token"])
    assert body["access_token"] == body["token"] and body["expires_in"] == 1800
    assert granted(body["access_token"]) == {f"repository:{repo}": {"pull", "push"}}
    assert claims_of(body["token"])["sub"] == user.name

    r = call(auth_server, "POST", "/service/token", data={**form, "password": "Wrong" + user.secret},
                   timeout=60)
    assert r.status_code == 401
    r = call(auth_server, "POST", "/service/token", data={**form, "grant_type": "refresh_token"})
    assert r.status_code == 400


def test_wrong_credentials_and_service(auth_server: RunningServer, team: Team) -> None:
    user = team.users["guest"]
    scope = f"repository:{team.private}/app:pull"
    r = token_response(auth_server, (user.name, "Wrong" + user.secret), scope)
    assert r.status_code == 401
    assert "token" not in r.json()
    r = token_response(auth_server, (unique("ghost"), "Whatever123"), scope)
    assert r.status_code == 401
    r = token_response(auth_server, (user.name, user.secret), scope, service="someone-else")
    assert r.status_code == 400
    assert "token" not in r.json()
    r = token_response(auth_server, (user.name, user.secret), scope)  # the right ones still work
    assert r.status_code == 200


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _tamper(token: str, **changes: object) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{_b64(claims)}.{signature}"


def _assert_invalid_token(server: RunningServer, token: str, repo: str) -> None:
    with bearer_client(server, token) as c:
        for r in (c.get("/v2/"), c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})):
            assert r.status_code == 401, r.text
            assert error_code(r) == "UNAUTHORIZED"
            assert challenge_params(r)["error"] == "invalid_token"


def test_forged_and_expired_tokens_are_rejected(auth_server: RunningServer, harbor: Harbor, team: Team) -> None:
    repo = f"{team.private}/guarded"
    harbor.seed(repo)
    guest = team.users["guest"]
    genuine = token_response(auth_server, (guest.name, guest.secret), f"repository:{repo}:pull").json()["token"]
    harbor.secrets.add(genuine)
    with bearer_client(auth_server, genuine) as c:
        assert c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200

    # Payload changed after signing: more actions, or another subject.
    more = [{"type": "repository", "name": repo, "actions": ["pull", "push", "delete"]}]
    _assert_invalid_token(auth_server, _tamper(genuine, access=more), repo)
    _assert_invalid_token(auth_server, _tamper(genuine, sub="admin"), repo)
    _assert_invalid_token(auth_server, _tamper(genuine, exp=claims_of(genuine)["exp"] + 86400), repo)
    # Signed by another EC P-256 key, with otherwise perfect claims.
    other_key = ec.generate_private_key(ec.SECP256R1())
    _assert_invalid_token(auth_server, mint(auth_server, "admin", more, key=other_key), repo)
    # Unsigned (alg none), and the signature stripped.
    unsigned = ".".join(_b64(part) for part in ({"alg": "none", "typ": "JWT"}, {**claims_of(genuine), "access": more}))
    unsigned += "."
    _assert_invalid_token(auth_server, unsigned, repo)
    _assert_invalid_token(auth_server, genuine.rsplit(".", 1)[0] + ".", repo)
    _assert_invalid_token(auth_server, "not-a-jwt", repo)

    # Signed with the server's own key (read from its database): the control is accepted...
    pull = [{"type": "repository", "name": repo, "actions": ["pull"]}]
    control = mint(auth_server, guest.name, pull)
    with bearer_client(auth_server, control) as c:
        assert c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
    # ...but not once expired, nor for another audience (service) or issuer, nor before nbf.
    _assert_invalid_token(auth_server, mint(auth_server, guest.name, pull, lifetime=-5), repo)
    _assert_invalid_token(auth_server, mint(auth_server, guest.name, pull, aud="another-registry"), repo)
    _assert_invalid_token(auth_server, mint(auth_server, guest.name, pull, iss="someone-else"), repo)
    _assert_invalid_token(auth_server, mint(auth_server, guest.name, pull, nbf=int(claims_of(control)["iat"]) + 3600),
                          repo)


def test_portal_session_is_not_a_registry_token(auth_server: RunningServer, harbor: Harbor) -> None:
    """The portal cookie is signed with a key of its own, for another audience: /v2 must not take it."""
    session = harbor.api.cookies["sid"]
    with bearer_client(auth_server, session) as c:
        r = c.get("/v2/")
        assert r.status_code == 401 and challenge_params(r)["error"] == "invalid_token"


def test_token_for_one_repository_does_not_open_another(auth_server: RunningServer, harbor: Harbor,
                                                       team: Team) -> None:
    a, b = f"{team.private}/alpha", f"{team.private}/beta"
    harbor.seed(a)
    harbor.seed(b)
    user = team.users["maintainer"]  # may do everything in both; the token names only alpha
    token = token_response(auth_server, (user.name, user.secret), f"repository:{a}:pull,push,delete").json()["token"]
    harbor.secrets.add(token)
    with bearer_client(auth_server, token) as c:
        assert c.get(f"/v2/{a}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
        for method, path, action in (("GET", f"/v2/{b}/manifests/v1", "pull"),
                                     ("GET", f"/v2/{b}/tags/list", "pull"),
                                     ("POST", f"/v2/{b}/blobs/uploads/", "pull,push"),
                                     ("DELETE", f"/v2/{b}/manifests/v1", "delete")):
            r = c.request(method, path)
            assert r.status_code == 401, (method, path, r.text)
            assert error_code(r) == "UNAUTHORIZED"
            params = challenge_params(r)
            assert params["error"] == "insufficient_scope"
            assert params["scope"] == f"repository:{b}:{action}"
    assert harbor.exists(b, tag="v1")


def test_basic_credentials_directly_on_v2(auth_server: RunningServer, harbor: Harbor, team: Team) -> None:
    """Basic auth without the token dance: users and robots alike."""
    repo = f"{team.private}/basic"
    image = harbor.seed(repo)
    robot = harbor.robot(team.private, ("pull",))
    for account in (team.users["guest"], robot):
        with http_client(auth_server, auth=(account.name, account.secret)) as c:
            assert c.get("/v2/").status_code == 200, account.name
            r = c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
            assert r.status_code == 200 and r.content == image.body, account.name
        with http_client(auth_server, auth=(account.name, "Wrong" + account.secret)) as c:
            r = c.get("/v2/")
            assert r.status_code == 401, account.name
            assert "error" not in challenge_params(r)

"""Fixtures for the registry-side authorization tests: a server with authentication on and a full log,
Harbor API helpers that set up projects, users, members and robots, and token helpers.

Every secret a test hands to the server (passwords, robot secrets, tokens) is remembered in
`secrets_seen`, so that test_zz_secrets can check, after everything else ran, that none reached the log.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa

from portside.auth.tokens import ISSUER, KEY_SETTING
from portside.metadata.changes import CHANNEL, ChangeCounter
from portside.metadata.database import sync_url
from tests.conftest import ADMIN_PASSWORD
from tests.oci_client import Image, make_image, push_image
from tests.servers import RunningServer, database_url

# Access log on, debug level: the secrets test reads a log that shows every request the suite made.
SERVER_ENV = {
    "PORTSIDE_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "PORTSIDE_LOG__ACCESS_LOG": "true",
    "PORTSIDE_LOG__LEVEL": "debug",
    "PORTSIDE_AUDIT__FLUSH_SECONDS": "0.2",
}

ROLE_IDS = {"projectAdmin": 1, "developer": 2, "guest": 3, "maintainer": 4, "limitedGuest": 5}


@pytest.fixture(scope="session")
def auth_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Overrides the suite-wide fixture of the same name (so `admin` and `anon` point here): the same
    registry with authentication on, plus an access log at debug level for the secrets-in-logs check."""
    data_dir = tmp_path_factory.mktemp(f"authz-server-{backend}")
    srv = RunningServer(data_dir, database_url(backend, data_dir), auth=True, env=SERVER_ENV).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def secrets_seen(auth_server: RunningServer) -> set[str]:
    """Passwords, robot secrets and tokens sent to this server (one set per backend)."""
    return {ADMIN_PASSWORD}


def http_client(server: RunningServer, **kwargs: Any) -> httpx.Client:
    """A client for the plain-HTTP test server. verify=False skips loading the CA bundle, which costs
    0.2 s per client (the suite makes hundreds)."""
    return httpx.Client(base_url=server.url, timeout=60, verify=False, **kwargs)


def call(server: RunningServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with http_client(server) as c:
        return c.request(method, path, **kwargs)


@pytest.fixture
def admin(auth_server: RunningServer) -> Iterator[httpx.Client]:
    """The suite's `admin` fixture (Basic auth as the system administrator), on a cheaper client."""
    with http_client(auth_server, auth=("admin", ADMIN_PASSWORD)) as c:
        yield c


@pytest.fixture
def anon(auth_server: RunningServer) -> Iterator[httpx.Client]:
    with http_client(auth_server) as c:
        yield c


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def new_password() -> str:
    return f"Pw{uuid.uuid4().hex[:12]}Z9"


def ok(response: httpx.Response, *statuses: int) -> httpx.Response:
    expected = statuses or (200, 201)
    assert response.status_code in expected, (
        f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
    )
    return response


@dataclass
class Account:
    name: str
    secret: str
    id: int | None = None  # robots: the id the API answered with


@dataclass
class Harbor:
    """The Harbor API as the system administrator uses it to set a test up (shapes from the swagger)."""

    server: RunningServer
    api: httpx.Client
    secrets: set[str]
    made: dict[str, Any] = field(default_factory=dict)

    def project(self, name: str | None = None, *, public: bool = False) -> str:
        name = name or unique("p")
        ok(self.api.post("/api/v2.0/projects",
                         json={"project_name": name, "metadata": {"public": str(public).lower()}}), 201)
        return name

    def user(self, prefix: str = "u") -> Account:
        name, password = unique(prefix), new_password()
        ok(self.api.post("/api/v2.0/users", json={"username": name, "password": password,
                                                  "email": f"{name}@example.com", "realname": name}), 201)
        self.secrets.add(password)
        return Account(name, password)

    def member(self, project: str, username: str, role: str) -> None:
        ok(self.api.post(f"/api/v2.0/projects/{project}/members",
                         json={"role_id": ROLE_IDS[role], "member_user": {"username": username}}), 201)

    def robot(self, project: str, actions: tuple[str, ...] = ("pull", "push"), *, level: str = "system",
              name: str | None = None) -> Account:
        access = [{"resource": "repository", "action": a} for a in actions]
        body = {"name": name or unique("bot"), "description": "authz test", "level": level, "disable": False,
                "duration": -1,
                "permissions": [{"kind": "project", "namespace": project, "access": access}]}
        created = ok(self.api.post("/api/v2.0/robots", json=body), 201).json()
        assert created["secret"] and created["name"].startswith("robot$"), created
        self.secrets.add(created["secret"])
        return Account(created["name"], created["secret"], int(created["id"]))

    def set_robot_disabled(self, robot_id: int, disabled: bool) -> None:
        current = ok(self.api.get(f"/api/v2.0/robots/{robot_id}"), 200).json()
        assert "secret" not in current or not current["secret"], "a robot's secret is shown only once"
        ok(self.api.put(f"/api/v2.0/robots/{robot_id}", json={**current, "disable": disabled}), 200)

    def token(self, auth: tuple[str, str] | None, *scopes: str) -> str:
        return fetch_token(self.server, auth, *scopes, secrets=self.secrets)

    def admin_token(self, repo: str, actions: str = "pull,push,delete") -> str:
        """An administrator's token for one repository, minted with the server's own key: set-up code
        uses it to skip a password check (argon2, costly) per call; test_tokens checks the real endpoint
        issues the same thing."""
        token = mint(self.server, "admin", [{"type": "repository", "name": repo, "actions": actions.split(",")}])
        self.secrets.add(token)
        return token

    def seed(self, repo: str, tag: str = "v1") -> Image:
        """Push a small image as the administrator."""
        with bearer_client(self.server, self.admin_token(repo)) as c:
            return push_image(c, repo, tag, make_image(n_layers=1, layer_size=256))

    def exists(self, repo: str, *, tag: str | None = None, blob: str | None = None) -> bool:
        """Whether the administrator sees the repository (or a tag or blob in it)."""
        with bearer_client(self.server, self.admin_token(repo, "pull")) as c:
            r = c.get(f"/v2/{repo}/tags/list")
            assert r.status_code in (200, 404), r.text
            if r.status_code == 404:
                return False
            if tag is not None:
                return tag in (r.json()["tags"] or [])
            if blob is not None:
                return c.head(f"/v2/{repo}/blobs/{blob}").status_code == 200
            return True


@pytest.fixture(scope="session")
def harbor(auth_server: RunningServer, secrets_seen: set[str]) -> Iterator[Harbor]:
    """Signed in to the API through a portal session (one password check, not one per call)."""
    with http_client(auth_server) as api:
        r = ok(api.post("/c/login", data={"principal": "admin", "password": ADMIN_PASSWORD}), 200)
        api.headers["X-Harbor-CSRF-Token"] = r.headers["X-Harbor-CSRF-Token"]
        secrets_seen.add(api.cookies["sid"])
        yield Harbor(auth_server, api, secrets_seen)


# --- the server's own database -----------------------------------------------------------------------------

def execute(server: RunningServer, statement: sa.Executable | str, **params: Any) -> list[sa.Row[Any]]:
    """Run one statement on the server's database (white-box set-up and checks only)."""
    engine = sa.create_engine(sync_url(server.database_url))
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement) if isinstance(statement, str) else statement, params)
            rows = list(result) if result.returns_rows else []
            if engine.dialect.name == "postgresql":  # tell every replica's read caches, as the server does
                conn.execute(sa.text(f"NOTIFY {CHANNEL}"))
        # A write behind the server's back must bump the host's change counter, as the server's own do.
        ChangeCounter(server.data_dir.absolute() / ".portside-changes").bump()
        return rows
    finally:
        engine.dispose()


_KEYS: dict[str, str] = {}


def signing_key(server: RunningServer) -> str:
    if server.database_url not in _KEYS:
        rows = execute(server, "SELECT value FROM system_settings WHERE key = :k", k=KEY_SETTING)
        assert rows, "the server stores its token signing key in system_settings"
        _KEYS[server.database_url] = str(rows[0][0])
    return _KEYS[server.database_url]


def mint(server: RunningServer, subject: str, access: list[dict[str, Any]], *, key: Any = None,
         lifetime: int = 600, **overrides: Any) -> str:
    """A registry token as the server would issue it (its key unless `key` is given)."""
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": subject, "aud": "portside", "iat": now, "nbf": now - 1, "exp": now + lifetime,
              "jti": uuid.uuid4().hex, "access": access, **overrides}
    return jwt.encode(claims, key if key is not None else signing_key(server), algorithm="ES256")


# --- tokens ---------------------------------------------------------------------------------------------

def fetch_token(server: RunningServer, auth: tuple[str, str] | None, *scopes: str,
                secrets: set[str] | None = None, service: str = "portside") -> str:
    r = call(server, "GET", "/service/token", params=[("service", service), *(("scope", s) for s in scopes)],
                  auth=auth, timeout=60)
    ok(r, 200)
    token: str = r.json()["token"]
    if secrets is not None:
        secrets.add(token)
    return token


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def granted(token: str) -> dict[str, set[str]]:
    """`type:name` -> actions, from a token's access claim."""
    return {f"{a['type']}:{a['name']}": set(a["actions"]) for a in claims_of(token)["access"]}


def bearer_client(server: RunningServer, token: str) -> httpx.Client:
    return http_client(server, headers={"Authorization": f"Bearer {token}"})


def challenge_params(response: httpx.Response) -> dict[str, str]:
    """`Bearer realm="..",service="..",scope=".."` -> {realm, service, scope}."""
    value = response.headers.get("www-authenticate", "")
    scheme, _, rest = value.partition(" ")
    assert scheme == "Bearer", value
    out = {}
    for part in _split_params(rest):
        key, _, val = part.partition("=")
        out[key.strip()] = val.strip().strip('"')
    return out


def _split_params(value: str) -> list[str]:
    parts, current, quoted = [], "", False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current:
        parts.append(current)
    return parts


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["code"]
    return code


@dataclass
class Team:
    """A private project with one user per Harbor role plus an outsider (no role), and a public project
    where none of them is a member."""

    private: str
    public: str
    users: dict[str, Account]  # role name (or "outsider") -> account


@pytest.fixture(scope="session")
def team(harbor: Harbor) -> Team:
    private, public = harbor.project(public=False), harbor.project(public=True)
    users = {}
    for role in (*ROLE_IDS, "outsider"):
        users[role] = harbor.user(prefix=role.lower()[:6])
        if role != "outsider":
            harbor.member(private, users[role].name, role)
    return Team(private, public, users)

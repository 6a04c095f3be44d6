"""Helpers for the repository, artifact and tag API tests: set-up through the Harbor API as the
administrator, pushes through /v2, and checks against the swagger's definitions.

Clients sign in once (portal session, or one registry token per repository) instead of sending Basic
credentials on every request: each Basic request costs the server an argon2 check.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import sqlalchemy as sa
import yaml

from portside.metadata.database import sync_url
from tests.conftest import ADMIN_PASSWORD
from tests.oci_client import OCI_INDEX, OCI_MANIFEST, Image, descriptor, make_image, push_image, push_manifest
from tests.servers import RunningServer

API = "/api/v2.0"
SWAGGER = Path("/work/shared/reference/harbor-swagger.yaml")
HARBOR_TIME = "%Y-%m-%dT%H:%M:%SZ"
ROLES = {"projectAdmin": 1, "developer": 2, "guest": 3, "maintainer": 4, "limitedGuest": 5}


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def ok(response: httpx.Response, *statuses: int) -> httpx.Response:
    expected = statuses or (200,)
    assert response.status_code in expected, (
        f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["code"]
    return code


def enc(name: str) -> str:
    """A repository name as Harbor clients put it in a path: slashes encoded twice (a/b -> a%252Fb)."""
    return quote(quote(name, safe=""), safe="")


def repo_path(project: str, repository: str, suffix: str = "") -> str:
    return f"{API}/projects/{project}/repositories/{enc(repository)}{suffix}"


# -- accounts and projects ----------------------------------------------------------------------


@contextmanager
def session_client(server: RunningServer, username: str, password: str) -> Iterator[httpx.Client]:
    """A client signed in through the portal (/c/login), echoing the session's CSRF token."""
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = ok(c.post("/c/login", data={"principal": username, "password": password}))
        c.headers["X-Harbor-CSRF-Token"] = r.headers["X-Harbor-CSRF-Token"]
        yield c


@contextmanager
def admin_session(server: RunningServer) -> Iterator[httpx.Client]:
    with session_client(server, "admin", ADMIN_PASSWORD) as c:
        yield c


@contextmanager
def user_client(server: RunningServer, api: httpx.Client, project: str | None = None,
                role: str | None = None) -> Iterator[httpx.Client]:
    """A client signed in as a new user; a member of `project` with `role` when both are given."""
    name, password = unique("u"), f"Pw{uuid.uuid4().hex[:12]}Z9"
    ok(api.post(f"{API}/users", json={"username": name, "password": password, "email": f"{name}@example.com",
                                      "realname": name}), 201)
    if project is not None and role is not None:
        ok(api.post(f"{API}/projects/{project}/members",
                    json={"role_id": ROLES[role], "member_user": {"username": name}}), 201)
    with session_client(server, name, password) as c:
        yield c


def new_project(api: httpx.Client, *, public: bool = False) -> str:
    name = unique("p")
    ok(api.post(f"{API}/projects", json={"project_name": name, "metadata": {"public": str(public).lower()}}), 201)
    return name


def project_id(api: httpx.Client, project: str) -> int:
    return int(ok(api.get(f"{API}/projects/{project}")).json()["project_id"])


# -- the registry -------------------------------------------------------------------------------


class Registry:
    """/v2 as the administrator, with one bearer token per repository (from /service/token)."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self._clients: dict[str, httpx.Client] = {}

    def client(self, repo: str) -> httpx.Client:
        if repo not in self._clients:
            r = ok(httpx.get(f"{self.server.url}/service/token", auth=("admin", ADMIN_PASSWORD), timeout=60,
                             params={"service": "portside", "scope": f"repository:{repo}:pull,push,delete"}))
            self._clients[repo] = httpx.Client(base_url=self.server.url, timeout=60,
                                               headers={"Authorization": f"Bearer {r.json()['token']}"})
        return self._clients[repo]

    def push(self, repo: str, tag: str, image: Image | None = None) -> Image:
        return push_image(self.client(repo), repo, tag, image or make_image(n_layers=2, layer_size=300))

    def push_index(self, repo: str, ref: str, children: list[tuple[Image, dict[str, str]]], **extra: Any) -> bytes:
        """Push the children by digest, then an OCI index listing them with their platforms."""
        client = self.client(repo)
        for image, _ in children:
            push_image(client, repo, image.digest, image)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                 "manifests": [descriptor(OCI_MANIFEST, image.body, platform=platform)
                               for image, platform in children],
                 **extra}
        body = json.dumps(index).encode()
        ok(push_manifest(client, repo, ref, body, OCI_INDEX), 201)
        return body

    def manifest_status(self, repo: str, reference: str) -> int:
        return self.client(repo).get(f"/v2/{repo}/manifests/{reference}",
                                     headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}).status_code

    def tags(self, repo: str) -> list[str] | None:
        """The repository's tags through /v2 (None when the registry does not know the repository)."""
        r = self.client(repo).get(f"/v2/{repo}/tags/list")
        if r.status_code == 404:
            return None
        tags: list[str] = ok(r).json()["tags"] or []
        return tags

    def close(self) -> None:
        for c in self._clients.values():
            c.close()


@contextmanager
def registry_for(server: RunningServer) -> Iterator[Registry]:
    reg = Registry(server)
    try:
        yield reg
    finally:
        reg.close()


def image_size(image: Image) -> int:
    return len(image.body) + len(image.config) + sum(len(layer) for layer in image.layers)


# -- checks -------------------------------------------------------------------------------------


@functools.cache
def definitions() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(SWAGGER.read_text())
    return dict(spec["definitions"])


def properties(definition: str) -> set[str]:
    props = definitions()[definition]["properties"]
    return {str(k).strip("'") for k in props}


def check_shape(obj: dict[str, Any], definition: str, *, required: set[str],
                extra: frozenset[str] = frozenset()) -> None:
    """Every field we send is one the swagger defines (or a deliberate extra), and the ones clients
    rely on are there."""
    unknown = set(obj) - properties(definition) - extra
    assert not unknown, f"{definition} has fields the swagger does not define: {sorted(unknown)}"
    missing = required - set(obj)
    assert not missing, f"{definition} lacks {sorted(missing)}: {obj}"


def harbor_time(value: str) -> datetime:
    return datetime.strptime(value, HARBOR_TIME)


def audited(server: RunningServer, resource: str, entry: tuple[str, str, str], timeout: float = 10) -> bool:
    """Whether the audit log gets an (operation, resource_type, username) entry for the resource; entries
    are written in batches, so wait a little for it."""
    engine = sa.create_engine(sync_url(server.database_url))
    try:
        deadline = time.monotonic() + timeout
        while True:
            with engine.connect() as conn:
                rows = {(r.operation, r.resource_type, r.username) for r in conn.execute(
                    sa.text("SELECT operation, resource_type, username FROM audit_logs WHERE resource = :r"),
                    {"r": resource})}
            if entry in rows:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
    finally:
        engine.dispose()

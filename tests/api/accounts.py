"""Helpers for the /api/v2.0 tests: users with passwords, clients signed in as them, projects, members."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import ADMIN_PASSWORD
from tests.servers import RunningServer

PASSWORD = "Passw0rd-1"
API = "/api/v2.0"
ROLES = {"projectAdmin": 1, "developer": 2, "guest": 3, "maintainer": 4, "limitedGuest": 5}


@dataclass
class User:
    id: int
    name: str
    password: str
    client: httpx.Client


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class Accounts:
    """Creates users and projects through the API as the administrator; closes its clients at the end."""

    def __init__(self, server: RunningServer, admin: httpx.Client) -> None:
        self.server = server
        self._clients: list[httpx.Client] = []
        self.basic_admin = admin
        self.admin = self.session("admin", ADMIN_PASSWORD)

    def client(self, username: str | None = None, password: str | None = None) -> httpx.Client:
        """A client sending Basic credentials on every request (each costs a password hash check)."""
        auth = (username, password) if username is not None and password is not None else None
        c = httpx.Client(base_url=self.server.url, auth=auth, timeout=60)
        self._clients.append(c)
        return c

    def session(self, username: str, password: str) -> httpx.Client:
        """A client signed in through the portal (/c/login): a session cookie plus its CSRF header,
        so only the sign-in pays for the password hash."""
        c = httpx.Client(base_url=self.server.url, timeout=60)
        self._clients.append(c)
        r = c.post("/c/login", data={"principal": username, "password": password})
        assert r.status_code == 200, r.text
        c.headers["X-Harbor-CSRF-Token"] = r.headers["x-harbor-csrf-token"]
        return c

    def user(self, name: str | None = None, password: str = PASSWORD, **profile: Any) -> User:
        name = name or unique()
        r = self.admin.post(f"{API}/users", json={"username": name, "password": password, **profile})
        assert r.status_code == 201, r.text
        user_id = int(r.headers["location"].rsplit("/", 1)[1])
        return User(user_id, name, password, self.session(name, password))

    def project(self, name: str | None = None, *, public: bool = False) -> tuple[str, int]:
        name = name or unique("p")
        r = self.admin.post(f"{API}/projects", json={"project_name": name, "public": public})
        assert r.status_code == 201, r.text
        return name, int(r.headers["location"].rsplit("/", 1)[1])

    def member(self, project: str, user: User, role: str) -> int:
        r = self.admin.post(f"{API}/projects/{project}/members",
                            json={"role_id": ROLES[role], "member_user": {"username": user.name}})
        assert r.status_code == 201, r.text
        return int(r.headers["location"].rsplit("/", 1)[1])

    def close(self) -> None:
        for c in self._clients:
            c.close()


def wait_for(fetch: Callable[[], list[dict[str, Any]]], predicate: Callable[[list[dict[str, Any]]], bool],
             timeout: float = 15) -> list[dict[str, Any]]:
    """Poll `fetch` until `predicate` holds of its result (audit entries reach the database in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if predicate(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def error_message(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert isinstance(body["errors"], list) and body["errors"], body
    message = body["errors"][0]["message"]
    assert isinstance(message, str) and message
    return message

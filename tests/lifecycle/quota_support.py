"""Helpers for the quota and GC-safety tests: cheap authentication and non-asserting push steps.

Every Basic-authenticated request costs an argon2 check (about a second on a busy test machine),
so the API is used through one portal session and /v2 through bearer tokens fetched once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx

from tests.conftest import ADMIN_PASSWORD
from tests.oci_client import sha256
from tests.servers import RunningServer

FINAL = ("Success", "Error", "Stopped")


@contextlib.contextmanager
def signed_in(server: RunningServer, username: str = "admin",
              password: str = ADMIN_PASSWORD) -> Iterator[httpx.Client]:
    """An API client holding a portal session (with its CSRF header set)."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post("/c/login", data={"principal": username, "password": password})
        assert r.status_code == 200, r.text
        client.headers["X-Harbor-CSRF-Token"] = r.headers["X-Harbor-CSRF-Token"]
        yield client


def token_for(server: RunningServer, repos: list[str], *, auth: tuple[str, str] = ("admin", ADMIN_PASSWORD),
              actions: str = "pull,push,delete") -> str:
    """One bearer token covering every repository given."""
    params = [("service", "portside"), *(("scope", f"repository:{r}:{actions}") for r in repos)]
    r = httpx.get(f"{server.url}/service/token", params=params, auth=auth, timeout=60)
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def bearer(server: RunningServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def registry_client(server: RunningServer, repos: list[str], *, auth: tuple[str, str] = ("admin", ADMIN_PASSWORD),
                    actions: str = "pull,push,delete") -> httpx.Client:
    """A /v2 client with one bearer token covering every repository given."""
    return bearer(server, token_for(server, repos, auth=auth, actions=actions))


def create_project(api: httpx.Client, name: str, storage_limit: int | None = None) -> int:
    body: dict[str, Any] = {"project_name": name}
    if storage_limit is not None:
        body["storage_limit"] = storage_limit
    r = api.post("/api/v2.0/projects", json=body)
    assert r.status_code == 201, r.text
    return int(r.headers["Location"].rsplit("/", 1)[1])


def used(api: httpx.Client, project_id: int) -> int:
    r = api.get(f"/api/v2.0/quotas/{project_id}")
    assert r.status_code == 200, r.text
    return int(r.json()["used"]["storage"])


def set_limit(api: httpx.Client, project_id: int, storage: int) -> None:
    r = api.put(f"/api/v2.0/quotas/{project_id}", json={"hard": {"storage": storage}})
    assert r.status_code == 200, r.text


def upload(client: httpx.Client, repo: str, data: bytes) -> httpx.Response:
    """Monolithic upload; the response is returned, not checked."""
    return client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data,
                       headers={"Content-Type": "application/octet-stream"})


def upload_chunked(client: httpx.Client, repo: str, data: bytes) -> httpx.Response:
    """POST, PATCH, then the closing PUT; the closing response is returned."""
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    r = client.patch(location, content=data, headers={"Content-Type": "application/octet-stream",
                                                      "Content-Range": f"0-{len(data) - 1}"})
    assert r.status_code == 202, r.text
    return client.put(r.headers["Location"], params={"digest": sha256(data)})


def put_manifest(client: httpx.Client, repo: str, ref: str, body: bytes, media_type: str) -> httpx.Response:
    return client.put(f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": media_type})


def run_gc(api: httpx.Client, *, timeout: float = 120, **parameters: Any) -> dict[str, Any]:
    """Start a manual garbage collection and wait for it to end; returns the run (status not checked)."""
    deadline = time.monotonic() + timeout
    while True:
        r = api.post("/api/v2.0/system/gc/schedule",
                     json={"schedule": {"type": "Manual"}, "parameters": parameters})
        if r.status_code == 201:
            break
        assert r.status_code == 409 and time.monotonic() < deadline, r.text  # a previous run still going
        time.sleep(0.1)
    gc_id = int(r.headers["Location"].rsplit("/", 1)[1])
    while time.monotonic() < deadline:
        run: dict[str, Any] = api.get(f"/api/v2.0/system/gc/{gc_id}").json()
        if run["job_status"] in FINAL:
            if run["job_status"] != "Success":
                run["log"] = api.get(f"/api/v2.0/system/gc/{gc_id}/log").text
            return run
        time.sleep(0.1)
    raise AssertionError(f"gc {gc_id} did not finish in {timeout} s")


def error_of(response: httpx.Response) -> dict[str, Any]:
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors[0]

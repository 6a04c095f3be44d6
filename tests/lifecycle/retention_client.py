"""Helpers for the retention and immutability tests: projects, policies, runs and what they deleted."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Generator
from typing import Any

import httpx

API = "/api/v2.0"
FINAL = ("Success", "Error", "Stopped")
DELETION = re.compile(r"^\S+ (would delete|deleted) (\S+)@(sha256:[0-9a-f]{64})", re.MULTILINE)


class FastAuth(httpx.Auth):
    """What a real client does, so each request does not pay for a password hash: /api/v2.0 through a
    portal session (cookie and CSRF header), /v2 through bearer tokens, one per repository."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url, self.username, self.password = base_url, username, password
        self.tokens: dict[str, str] = {}
        self.cookies: httpx.Cookies | None = None
        self.csrf = ""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path = request.url.path
        if path.startswith("/v2/") and (repo := _repository(path)):
            if repo not in self.tokens:
                self.tokens[repo] = self._token(repo)
            request.headers["Authorization"] = f"Bearer {self.tokens[repo]}"
        elif path.startswith(API):
            if self.cookies is None:
                self._login()
            assert self.cookies is not None
            request.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            request.headers["X-Harbor-CSRF-Token"] = self.csrf
        else:
            basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            request.headers["Authorization"] = f"Basic {basic}"
        yield request

    def _token(self, repo: str) -> str:
        r = httpx.get(f"{self.base_url}/service/token", auth=(self.username, self.password),
                      params={"service": "portside", "scope": f"repository:{repo}:pull,push,delete"}, timeout=60)
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    def _login(self) -> None:
        r = httpx.post(f"{self.base_url}/c/login", data={"principal": self.username, "password": self.password},
                       timeout=60)
        assert r.status_code == 200, r.text
        self.cookies, self.csrf = r.cookies, r.headers["x-harbor-csrf-token"]


def _repository(path: str) -> str | None:
    """The repository a /v2 path names (the part before /blobs/, /manifests/, /tags/ or /referrers/)."""
    match = re.match(r"^/v2/(.+?)/(blobs|manifests|tags|referrers)/", path)
    return match.group(1) if match else None


def fast_client(base_url: str, username: str, password: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, auth=FastAuth(base_url, username, password), timeout=60)


def create_project(admin: httpx.Client, name: str) -> int:
    r = admin.post(f"{API}/projects", json={"project_name": name})
    assert r.status_code == 201, r.text
    return int(admin.get(f"{API}/projects/{name}").json()["project_id"])


def selector(pattern: str, decoration: str = "matches", untagged: bool = False) -> dict[str, Any]:
    return {"kind": "doublestar", "decoration": decoration, "pattern": pattern,
            "extras": '{"untagged":true}' if untagged else '{"untagged":false}'}


def rule(template: str, n: int | None = None, *, tags: str = "**", untagged: bool = False,
         repositories: str = "**", decoration: str = "matches", repo_decoration: str = "repoMatches",
         rule_id: int = 1, disabled: bool = False) -> dict[str, Any]:
    return {"id": rule_id, "priority": 0, "disabled": disabled, "action": "retain", "template": template,
            "params": {template: n} if n is not None else {},
            "tag_selectors": [selector(tags, decoration, untagged)],
            "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": repo_decoration,
                                                "pattern": repositories}]}}


def policy(project_id: int, rules: list[dict[str, Any]], cron: str = "") -> dict[str, Any]:
    return {"algorithm": "or", "rules": rules, "trigger": {"kind": "Schedule", "settings": {"cron": cron}},
            "scope": {"level": "project", "ref": project_id}}


def create_policy(admin: httpx.Client, body: dict[str, Any]) -> int:
    r = admin.post(f"{API}/retentions", json=body)
    assert r.status_code == 201, r.text
    return int(r.headers["Location"].rsplit("/", 1)[1])


def start_run(admin: httpx.Client, policy_id: int, *, dry_run: bool) -> int:
    r = admin.post(f"{API}/retentions/{policy_id}/executions", json={"dry_run": dry_run})
    assert r.status_code == 201, r.text
    return int(r.headers["Location"].rsplit("/", 1)[1])


def wait_run(admin: httpx.Client, policy_id: int, execution_id: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = admin.get(f"{API}/retentions/{policy_id}/executions/{execution_id}")
        assert r.status_code == 200, r.text
        if r.json()["status"] in FINAL:
            return dict(r.json())
        time.sleep(0.2)
    raise AssertionError(f"retention execution {execution_id} did not finish")


def run(admin: httpx.Client, policy_id: int, *, dry_run: bool) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """Run a policy to its end; returns the execution and the (repository, digest) pairs it (would have)
    deleted, read from the task logs."""
    execution_id = start_run(admin, policy_id, dry_run=dry_run)
    execution = wait_run(admin, policy_id, execution_id)
    assert execution["status"] == "Success", execution
    return execution, deletions(admin, policy_id, execution_id, "would delete" if dry_run else "deleted")


def tasks(admin: httpx.Client, policy_id: int, execution_id: int) -> list[dict[str, Any]]:
    r = admin.get(f"{API}/retentions/{policy_id}/executions/{execution_id}/tasks", params={"page_size": 100})
    assert r.status_code == 200, r.text
    return list(r.json())


def task_log(admin: httpx.Client, policy_id: int, execution_id: int, task_id: int) -> str:
    r = admin.get(f"{API}/retentions/{policy_id}/executions/{execution_id}/tasks/{task_id}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    return r.text


def deletions(admin: httpx.Client, policy_id: int, execution_id: int, verb: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for t in tasks(admin, policy_id, execution_id):
        for v, repo, digest in DELETION.findall(task_log(admin, policy_id, execution_id, t["id"])):
            assert v == verb, f"a {'dry' if verb == 'would delete' else 'real'} run logged {v!r}"
            found.add((repo, digest))
    return found


def manifest_status(client: httpx.Client, repo: str, ref: str) -> int:
    return client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": ", ".join([
        "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"])}).status_code

"""Runs after the other tests of tests/auth (on each backend): the audit log holds the logins, pushes and
deletes, and neither the server log nor the audit log holds a password, robot secret or token."""

from __future__ import annotations

import re
import time
from typing import Any

from tests.auth.conftest import Harbor, Team, bearer_client, call, execute, fetch_token, ok, unique
from tests.oci_client import make_image, push_image
from tests.servers import RunningServer

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
BASIC = re.compile(r"Basic\s+[A-Za-z0-9+/]{12,}=*")


def audit_entries(harbor: Harbor, q: str, want: int, timeout: float = 20) -> list[dict[str, Any]]:
    """Entries matching `q`, waiting for the server's buffered audit writer to catch up."""
    deadline = time.monotonic() + timeout
    while True:
        r = ok(harbor.api.get("/api/v2.0/audit-logs", params={"q": q, "page_size": 100}), 200)
        entries: list[dict[str, Any]] = r.json()
        if len(entries) >= want or time.monotonic() > deadline:
            return entries
        time.sleep(0.3)


def test_audit_log_lists_logins_pushes_and_deletes(auth_server: RunningServer, harbor: Harbor, team: Team) -> None:
    maintainer = team.users["maintainer"]
    ghost = unique("ghost")
    # Two failed logins: one at the token endpoint, one with Basic credentials on /v2.
    assert call(auth_server, "GET", "/service/token", params={"service": "portside"},
                     auth=(ghost, "Nope12345"), timeout=60).status_code == 401
    assert call(auth_server, "GET", "/v2/", auth=(ghost, "Nope12345")).status_code == 401
    # A push and a delete, through a token (its issue is a successful login).
    repo = f"{team.private}/{unique('audited')}"
    token = fetch_token(auth_server, (maintainer.name, maintainer.secret), f"repository:{repo}:pull,push,delete",
                        secrets=harbor.secrets)
    with bearer_client(auth_server, token) as c:
        image = push_image(c, repo, "v1", make_image(n_layers=1, layer_size=128))
        assert c.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202

    logins = audit_entries(harbor, f"username={ghost}", want=2)
    assert len(logins) == 2, logins
    assert {(e["operation"], e["resource_type"]) for e in logins} == {("login", "login")}

    artifacts = audit_entries(harbor, f"resource=~{repo.split('/')[1]}", want=2)
    ops = {(e["operation"], e["resource_type"], e["username"]) for e in artifacts}
    assert ("create", "artifact", maintainer.name) in ops, artifacts
    assert ("delete", "artifact", maintainer.name) in ops, artifacts
    assert all(e["resource"].startswith(repo) for e in artifacts), artifacts
    for entry in artifacts:
        assert set(entry) >= {"id", "username", "resource", "resource_type", "operation", "op_time"}

    tokens = audit_entries(harbor, f"username={maintainer.name}", want=1)
    assert any(e["operation"] == "login" for e in tokens), tokens

    # Only administrators (and project members with audit-log:list) read it; anonymous callers not at all.
    assert call(auth_server, "GET", "/api/v2.0/audit-logs").status_code == 401


def test_no_secret_in_logs(auth_server: RunningServer, harbor: Harbor, secrets_seen: set[str]) -> None:
    log = auth_server.log()
    # The log is a real one: it saw the token endpoint and registry traffic of the tests above.
    assert "/service/token" in log and "/v2/" in log
    assert len(secrets_seen) > 5
    leaked = [s for s in secrets_seen if s in log]
    assert not leaked, f"{len(leaked)} secret(s) in the server log"
    assert not JWT.search(log), "a JSON web token (registry token or session) is in the server log"
    assert not BASIC.search(log), "Basic credentials are in the server log"

    rows = execute(auth_server, "SELECT username, resource, detail FROM audit_logs")
    assert rows, "the audit log is not empty after the tests above"
    text = "\n".join(" ".join(str(v) for v in row) for row in rows)
    assert not [s for s in secrets_seen if s in text], "a secret is in the audit log"
    assert not JWT.search(text)

"""The management commands (`portside user|project|robot ...`) on a fresh SQLite data directory, then a
server started on that directory accepting what they created."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.oci_client import push_image
from tests.servers import RunningServer

ADMIN_PASSWORD = "Adm1n-Password"


def portside(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTSIDE_")}
    return subprocess.run([sys.executable, "-m", "portside", *args, "--data-dir", str(data_dir)], env=env,
                          input=stdin, capture_output=True, text=True, timeout=120,
                          start_new_session=True)  # no controlling terminal: password prompts read stdin


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def fails(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert message in result.stderr, result.stderr


def test_first_setup_without_the_api(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert not data.exists()
    assert "created user alice" in ok(portside(data, "user", "create", "alice", "--password", "First-Passw0rd",
                                               "--email", "alice@example.com"))
    assert (data / "portside.db").exists()
    fails(portside(data, "user", "create", "alice", "--password", "First-Passw0rd"), "already exists")
    fails(portside(data, "user", "create", "weak", "--password", "short"), "8 to 128")
    # Without --password the command prompts (twice, to confirm).
    out = ok(portside(data, "user", "create", "carol", "--admin", stdin="Prompted-Passw0rd\nPrompted-Passw0rd\n"))
    assert "created user carol" in out and "system administrator" in out
    ok(portside(data, "user", "passwd", "alice", "--password", "Second-Passw0rd"))
    fails(portside(data, "user", "passwd", "nobody", "--password", "Second-Passw0rd"), "not found")
    listing = ok(portside(data, "user", "list"))
    assert re.search(r"alice\s+no\s+alice@example.com", listing), listing
    assert re.search(r"carol\s+yes", listing), listing

    ok(portside(data, "project", "create", "demo", "--owner", "alice"))
    ok(portside(data, "project", "create", "open", "--public"))
    fails(portside(data, "project", "create", "demo"), "already exists")
    fails(portside(data, "project", "create", "Bad Name"), "invalid project name")
    projects = ok(portside(data, "project", "list"))
    assert re.search(r"demo\s+no\s+0", projects) and re.search(r"open\s+yes\s+0", projects), projects

    created = ok(portside(data, "robot", "create", "ci", "--project", "demo", "--permission", "pull",
                          "--permission", "push", "--duration", "7"))
    assert "robot$demo+ci" in created
    match = re.search(r"^secret: (\S+)$", created, re.M)
    assert match, created
    secret = match.group(1)
    fails(portside(data, "robot", "create", "ci", "--project", "demo", "--permission", "pull"), "already exists")
    fails(portside(data, "robot", "create", "x", "--project", "missing", "--permission", "pull"), "not found")
    fails(portside(data, "robot", "create", "y", "--project", "demo", "--permission", "fly"), "unknown")

    server = RunningServer(data, f"sqlite:///{data / 'portside.db'}", auth=True,
                           env={"PORTSIDE_ADMIN_PASSWORD": ADMIN_PASSWORD}).start()
    try:
        api = f"{server.url}/api/v2.0"
        me = httpx.get(f"{api}/users/current", auth=("alice", "Second-Passw0rd"))
        assert me.status_code == 200, me.text
        assert me.json()["email"] == "alice@example.com" and me.json()["sysadmin_flag"] is False
        assert httpx.get(f"{api}/users/current", auth=("alice", "First-Passw0rd")).status_code == 401
        carol = httpx.get(f"{api}/users/current", auth=("carol", "Prompted-Passw0rd"))
        assert carol.status_code == 200 and carol.json()["sysadmin_flag"] is True
        # The server's own first-start administrator exists alongside them.
        assert httpx.get(f"{api}/users/current", auth=("admin", ADMIN_PASSWORD)).status_code == 200

        members = httpx.get(f"{api}/projects/demo/members", auth=("alice", "Second-Passw0rd")).json()
        assert [(m["entity_name"], m["role_name"]) for m in members] == [("alice", "projectAdmin")]

        with httpx.Client(base_url=server.url, auth=("robot$demo+ci", secret), timeout=60) as robot:
            image = push_image(robot, "demo/app", "v1")
            r = robot.get("/v2/demo/app/manifests/v1", headers={"Accept": image.manifest["mediaType"]})
            assert r.status_code == 200
        robots = httpx.get(f"{api}/robots", params={"q": "Level=project"}, auth=("carol", "Prompted-Passw0rd"))
        assert robots.status_code == 200, robots.text
        entry = next(r for r in robots.json() if r["name"] == "robot$demo+ci")
        assert entry["duration"] == 7 and entry["creator"] == "cli" and "secret" not in entry

        audit = httpx.get(f"{api}/audit-logs", params={"q": "username=cli", "page_size": 50},
                          auth=("carol", "Prompted-Passw0rd")).json()
        assert {(e["operation"], e["resource_type"], e["resource"]) for e in audit} >= {
            ("create", "user", "alice"), ("update", "user", "alice"), ("create", "project", "demo"),
            ("create", "robot", "robot$demo+ci")}
        assert secret not in server.log()
    finally:
        server.stop()

    # The commands also work next to (and after) a server that has used the directory.
    assert "robot$demo+ci" not in ok(portside(data, "user", "list"))
    assert re.search(r"demo\s+no\s+1", ok(portside(data, "project", "list")))

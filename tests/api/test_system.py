"""/api/v2.0/systeminfo, /health, /statistics and /search through HTTP."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from portside import __version__
from tests.api.accounts import API, Accounts, error_message
from tests.oci_client import OCI_INDEX, OCI_MANIFEST, descriptor, make_image, push_image, push_manifest
from tests.servers import RunningServer

ANONYMOUS_INFO = {"auth_mode", "primary_auth_mode", "self_registration", "banner_message", "current_time",
                  "oidc_provider_name"}
STATISTIC_KEYS = {"private_project_count", "private_repo_count", "public_project_count", "public_repo_count",
                  "total_project_count", "total_repo_count", "total_storage_consumption"}
SEARCH_REPOSITORY_KEYS = {"project_id", "project_name", "project_public", "repository_name", "pull_count",
                          "artifact_count"}


@pytest.fixture
def accounts(auth_server: RunningServer, admin: httpx.Client) -> Iterator[Accounts]:
    a = Accounts(auth_server, admin)
    yield a
    a.close()


def test_systeminfo(accounts: Accounts, anon: httpx.Client, auth_server: RunningServer) -> None:
    public = anon.get(f"{API}/systeminfo")
    assert public.status_code == 200
    assert set(public.json()) == ANONYMOUS_INFO  # no version or URLs for anonymous callers
    assert public.json()["auth_mode"] == "db_auth" and public.json()["self_registration"] is False

    info = accounts.admin.get(f"{API}/systeminfo").json()
    assert set(info) >= ANONYMOUS_INFO
    assert info["harbor_version"] == __version__
    assert info["registry_url"] == auth_server.host
    assert info["external_url"] == auth_server.url
    assert info["with_chartmuseum"] is False and info["read_only"] is False and info["has_ca_root"] is False
    assert info["project_creation_restriction"] == "everyone"
    assert info["registry_storage_provider_name"] == "filesystem"
    assert info["auth_mode"] == "db_auth" and info["self_registration"] is False
    assert info["current_time"].endswith("Z")
    # Any signed-in user gets the full answer too.
    assert accounts.user().client.get(f"{API}/systeminfo").json()["harbor_version"] == __version__


def test_health(anon: httpx.Client) -> None:
    r = anon.get(f"{API}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy"
    assert [(c["name"], c["status"]) for c in body["components"]] == [
        ("core", "healthy"), ("database", "healthy"), ("storage", "healthy")]


def stats(client: httpx.Client) -> dict[str, int]:
    r = client.get(f"{API}/statistics")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == STATISTIC_KEYS
    return dict(body)


def test_statistics(accounts: Accounts, anon: httpx.Client) -> None:
    error_message(anon.get(f"{API}/statistics"), 401)
    private, _ = accounts.project()
    public, _ = accounts.project(public=True)
    before = stats(accounts.admin)
    image = push_image(accounts.basic_admin, f"{private}/one", "v1")
    push_image(accounts.basic_admin, f"{private}/two", "v1")
    push_image(accounts.basic_admin, f"{public}/three", "v1")

    after = stats(accounts.admin)
    assert after["private_repo_count"] == before["private_repo_count"] + 2
    assert after["public_repo_count"] == before["public_repo_count"] + 1
    assert after["total_repo_count"] == before["total_repo_count"] + 3
    pushed = len(image.config) + sum(len(layer) for layer in image.layers)
    assert after["total_storage_consumption"] >= before["total_storage_consumption"] + 3 * pushed
    total = int(accounts.admin.get(f"{API}/projects", params={"page_size": 1}).headers["x-total-count"])
    assert after["total_project_count"] == total
    assert after["private_project_count"] + after["public_project_count"] == total

    # A member of one private project counts that project, every public one, and no totals.
    member = accounts.user()
    accounts.member(private, member, "guest")
    mine = stats(member.client)
    assert mine == {
        "private_project_count": 1, "private_repo_count": 2,
        "public_project_count": after["public_project_count"], "public_repo_count": after["public_repo_count"],
        "total_project_count": 0, "total_repo_count": 0, "total_storage_consumption": 0,
    }
    outsider = stats(accounts.user().client)
    assert outsider["private_project_count"] == 0 and outsider["private_repo_count"] == 0


def search(client: httpx.Client, q: str) -> dict[str, Any]:
    r = client.get(f"{API}/search", params={"q": q})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"project", "repository"}
    return dict(body)


def test_search_respects_visibility(accounts: Accounts, anon: httpx.Client) -> None:
    private, private_id = accounts.project()
    public, public_id = accounts.project(public=True)
    push_image(accounts.basic_admin, f"{private}/app", "v1")
    push_image(accounts.basic_admin, f"{public}/app", "v1")
    # An index and its two children count as one artifact.
    children = [make_image(), make_image()]
    for child in children:
        push_image(accounts.basic_admin, f"{private}/multi", child.digest, child)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [descriptor(OCI_MANIFEST, c.body) for c in children]}
    r = push_manifest(accounts.basic_admin, f"{private}/multi", "latest", json.dumps(index).encode(), OCI_INDEX)
    assert r.status_code == 201, r.text

    found = search(accounts.admin, private)
    assert [p["name"] for p in found["project"]] == [private]
    assert found["project"][0]["project_id"] == private_id
    repos = {r["repository_name"]: r for r in found["repository"]}
    assert set(repos) == {f"{private}/app", f"{private}/multi"}
    assert all(set(r) == SEARCH_REPOSITORY_KEYS for r in found["repository"])
    assert repos[f"{private}/app"]["project_id"] == private_id
    assert repos[f"{private}/app"]["project_name"] == private
    assert repos[f"{private}/app"]["project_public"] is False
    assert repos[f"{private}/app"]["artifact_count"] == 1
    assert repos[f"{private}/multi"]["artifact_count"] == 1
    assert isinstance(repos[f"{private}/app"]["pull_count"], int)

    # Repository names match too, across projects.
    both = search(accounts.admin, "/app")
    assert {f"{private}/app", f"{public}/app"} <= {r["repository_name"] for r in both["repository"]}

    outsider = accounts.user()
    assert search(outsider.client, private) == {"project": [], "repository": []}
    assert search(anon, private) == {"project": [], "repository": []}
    seen = search(anon, public)
    assert [p["name"] for p in seen["project"]] == [public]
    assert [(r["repository_name"], r["project_public"], r["project_id"]) for r in seen["repository"]] == [
        (f"{public}/app", True, public_id)]

    member = accounts.user()
    accounts.member(private, member, "developer")
    mine = search(member.client, private)
    assert [p["name"] for p in mine["project"]] == [private]
    assert len(mine["repository"]) == 2
    error_message(anon.get(f"{API}/search"), 400)


# shared/ sits beside the checkout (on developer machines and in CI alike).
_BESIDE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "harbor-swagger.yaml"
HARBOR_SWAGGER = Path(os.environ.get("HARBOR_SWAGGER", str(_BESIDE)))


def test_shapes_match_harbor_swagger() -> None:
    """The JSON names these tests check are Harbor's (from its swagger definitions)."""
    if not HARBOR_SWAGGER.exists():
        pytest.skip(f"Harbor's swagger file is not at {HARBOR_SWAGGER} (set HARBOR_SWAGGER)")
    from tests.api.test_audit import AUDIT_KEYS
    from tests.api.test_members import MEMBER_KEYS
    from tests.api.test_robots import CREATED_KEYS, ROBOT_KEYS
    from tests.api.test_users import USER_KEYS

    definitions = yaml.safe_load(HARBOR_SWAGGER.read_text())["definitions"]

    def names(definition: str) -> set[str]:
        return set(definitions[definition]["properties"])

    assert names("ProjectMemberEntity") == MEMBER_KEYS
    assert names("UserResp") - {"oidc_user_meta"} == USER_KEYS
    assert names("AuditLog") == AUDIT_KEYS
    assert names("RobotCreated") == CREATED_KEYS
    # Robot: the secret is never returned; Portside names the creator instead of creator_type/creator_ref.
    assert names("Robot") - {"secret", "creator_type", "creator_ref"} | {"creator"} == ROBOT_KEYS
    assert {"secret"} == names("RobotSec")
    assert names("Statistic") == STATISTIC_KEYS
    assert names("SearchRepository") == SEARCH_REPOSITORY_KEYS
    assert {"project", "repository"} == names("Search")
    assert names("GeneralInfo") >= ANONYMOUS_INFO
    assert {"status", "components"} == names("OverallHealthStatus")
    assert {"name", "status", "error"} == names("ComponentHealthStatus")

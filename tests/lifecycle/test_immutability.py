"""Immutable tag rules end to end: the API, and enforcement on every path that could move or delete a
tag (registry pushes and deletes, the artifact, tag and repository endpoints, and retention)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.lifecycle.retention_client import (
    API,
    create_policy,
    create_project,
    fast_client,
    manifest_status,
    policy,
    rule,
    run,
    selector,
    task_log,
    tasks,
)
from tests.oci_client import OCI_MANIFEST, Image, make_image, push_blob, push_image, push_manifest
from tests.servers import RunningServer


@pytest.fixture
def admin(auth_server: RunningServer) -> Iterator[httpx.Client]:
    with fast_client(auth_server.url, "admin", ADMIN_PASSWORD) as c:
        yield c


def immutable_rule(tags: str, repositories: str = "**", decoration: str = "matches",
                   repo_decoration: str = "repoMatches", disabled: bool = False) -> dict[str, Any]:
    return {"disabled": disabled, "action": "immutable", "template": "immutable_template",
            "tag_selectors": [selector(tags, decoration)],
            "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": repo_decoration,
                                                "pattern": repositories}]}}


def add_rule(admin: httpx.Client, project: str, body: dict[str, Any]) -> int:
    r = admin.post(f"{API}/projects/{project}/immutabletagrules", json=body)
    assert r.status_code == 201, r.text
    return int(r.headers["Location"].rsplit("/", 1)[1])


def push_blobs(admin: httpx.Client, repo: str, image: Image) -> Image:
    for blob in (image.config, *image.layers):
        push_blob(admin, repo, blob)
    return image


def refused(r: httpx.Response, code: str, *words: str) -> None:
    # Harbor's API answers 412 PRECONDITION for immutable tags; the registry keeps 403 DENIED.
    assert r.status_code == (412 if code == "PRECONDITION" else 403), r.text
    error = r.json()["errors"][0]
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error


def test_rules_api(admin: httpx.Client, anon: httpx.Client, project_name: str) -> None:
    project_id = create_project(admin, project_name)
    rules = f"{API}/projects/{project_name}/immutabletagrules"
    first = add_rule(admin, project_name, immutable_rule("v*", "app/**"))
    second = add_rule(admin, str(project_id), immutable_rule("release-*", decoration="matches"))
    listed = admin.get(rules)
    assert listed.status_code == 200 and listed.headers["X-Total-Count"] == "2"
    by_id = {r["id"]: r for r in listed.json()}
    assert by_id[first]["project_id"] == project_id and by_id[first]["action"] == "immutable"
    assert by_id[first]["template"] == "immutable_template" and by_id[first]["disabled"] is False
    assert by_id[first]["tag_selectors"][0]["pattern"] == "v*"
    assert by_id[first]["scope_selectors"]["repository"][0]["pattern"] == "app/**"

    # Enable/disable with the whole rule or with just the flag; both are kept.
    assert admin.put(f"{rules}/{first}", json={**by_id[first], "disabled": True}).status_code == 200
    assert admin.put(f"{rules}/{second}", json={"disabled": True}).status_code == 200
    assert all(r["disabled"] for r in admin.get(rules).json())
    assert admin.get(rules, params={"q": "disabled=true"}).headers["X-Total-Count"] == "2"
    assert admin.get(rules, params={"page_size": 1}).json()[0]["id"] in (first, second)

    for body, field in [(immutable_rule("v[1"), "tag_selectors[0].pattern"),
                        ({**immutable_rule("x"), "tag_selectors": []}, "tag_selectors"),
                        (immutable_rule("x", repositories="{a"), "scope_selectors.repository[0].pattern"),
                        (immutable_rule("x", decoration="repoMatches"), "tag_selectors[0].decoration"),
                        ({**immutable_rule("x"), "template": "latestPushedK"}, "template")]:
        r = admin.post(rules, json=body)
        assert r.status_code == 400 and field in r.json()["errors"][0]["message"], r.text
    r = admin.put(f"{rules}/{first}", json={"tag_selectors": [selector("]")], "disabled": False})
    assert r.status_code == 200  # "]" alone is a literal: well formed
    r = admin.post(rules, json={**immutable_rule("release-*"), "disabled": True})
    assert r.status_code == 409, r.text  # the same selectors as rule `second`
    assert admin.put(f"{rules}/99999999", json={"disabled": True}).status_code == 404
    assert admin.delete(f"{rules}/99999999").status_code == 404
    assert anon.get(rules).status_code == 401
    assert anon.post(rules, json=immutable_rule("x")).status_code == 401

    for i in range(13):
        add_rule(admin, project_name, immutable_rule(f"t{i}-*"))
    r = admin.post(rules, json=immutable_rule("one-too-many"))
    assert r.status_code == 400 and "15" in r.json()["errors"][0]["message"]
    assert admin.delete(f"{rules}/{second}").status_code == 200
    assert admin.get(rules).headers["X-Total-Count"] == "14"

    # Another project's rule is not reachable through this project.
    other = f"{project_name}x"
    create_project(admin, other)
    assert admin.delete(f"{API}/projects/{other}/immutabletagrules/{first}").status_code == 404


def test_immutable_tags_cannot_move_or_be_deleted(admin: httpx.Client, project_name: str) -> None:
    create_project(admin, project_name)
    repo = f"{project_name}/app"
    rule_id = add_rule(admin, project_name, immutable_rule("v*"))
    first = push_image(admin, repo, "v1")
    assert push_manifest(admin, repo, "v1", first.body).status_code == 201  # the same manifest again is fine

    other = make_image()
    push_image(admin, repo, "latest", other)  # "latest" is not immutable
    assert push_image(admin, repo, "latest").digest != other.digest  # and moves freely
    retag = push_blobs(admin, repo, make_image())
    r = push_manifest(admin, repo, "v1", retag.body)
    refused(r, "DENIED", "v1", f"immutable tag rule {rule_id}")
    r = admin.put(f"/v2/{repo}/manifests/{retag.digest}", params={"tag": "v1"}, content=retag.body,
                  headers={"Content-Type": OCI_MANIFEST})
    refused(r, "DENIED", "v1", f"immutable tag rule {rule_id}")
    assert admin.get(f"/v2/{repo}/manifests/v1").content == first.body

    # A refused push changes nothing, not even a manifest stored by digest alongside.
    fresh = push_blobs(admin, repo, make_image())
    r = admin.put(f"/v2/{repo}/manifests/{fresh.digest}", params={"tag": ["v1", "new"]}, content=fresh.body,
                  headers={"Content-Type": OCI_MANIFEST})
    refused(r, "DENIED", "v1")
    assert manifest_status(admin, repo, fresh.digest) == 404
    assert manifest_status(admin, repo, "new") == 404

    # Deletes, through the registry and through the management API.
    refused(admin.delete(f"/v2/{repo}/manifests/v1"), "DENIED", "v1", "cannot be deleted")
    refused(admin.delete(f"/v2/{repo}/manifests/{first.digest}"), "DENIED", "v1", f"immutable tag rule {rule_id}")
    artifacts = f"{API}/projects/{project_name}/repositories/app/artifacts"
    refused(admin.delete(f"{artifacts}/v1"), "PRECONDITION", "v1")
    refused(admin.delete(f"{artifacts}/{first.digest}"), "PRECONDITION", "v1")
    refused(admin.delete(f"{artifacts}/{first.digest}/tags/v1"), "PRECONDITION", "v1")
    refused(admin.delete(f"{API}/projects/{project_name}/repositories/app"), "PRECONDITION", "v1")
    assert admin.get(f"/v2/{repo}/manifests/v1").content == first.body
    # Mutable tags still go.
    assert admin.delete(f"/v2/{repo}/manifests/latest").status_code == 202

    # Adding a tag to an immutable artifact is fine; a new immutable tag is created normally.
    r = admin.post(f"{artifacts}/{first.digest}/tags", json={"name": "extra"})
    assert r.status_code == 201, r.text
    push_image(admin, repo, "v2")

    # Disabled, the rule protects nothing.
    assert admin.put(f"{API}/projects/{project_name}/immutabletagrules/{rule_id}",
                     json={"disabled": True}).status_code == 200
    assert push_manifest(admin, repo, "v1", retag.body).status_code == 201
    assert admin.delete(f"/v2/{repo}/manifests/v2").status_code == 202


def test_a_rule_added_after_pushes_applies_at_once_on_every_worker(admin: httpx.Client, project_name: str) -> None:
    """Workers remember a repository's rules (most have none); a new rule must reach all of them
    before the next push or delete, and so must its removal."""
    create_project(admin, project_name)
    repo = f"{project_name}/app"
    admin.headers["Connection"] = "close"  # a new connection per request, so both workers serve pushes
    for _ in range(6):  # v1 moves freely, and every worker has looked for rules
        push_image(admin, repo, "v1")
    kept = admin.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}).content
    rule_id = add_rule(admin, project_name, immutable_rule("v*"))
    for _ in range(6):
        moved = push_blobs(admin, repo, make_image())
        refused(push_manifest(admin, repo, "v1", moved.body), "DENIED", "v1", f"immutable tag rule {rule_id}")
        refused(admin.delete(f"/v2/{repo}/manifests/v1"), "DENIED", "v1", "cannot be deleted")
    assert admin.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}).content == kept
    assert admin.delete(f"{API}/projects/{project_name}/immutabletagrules/{rule_id}").status_code == 200
    for _ in range(4):
        push_image(admin, repo, "v1")


def test_rules_follow_their_scope(admin: httpx.Client, project_name: str) -> None:
    create_project(admin, project_name)
    add_rule(admin, project_name, immutable_rule("dev-*", "app", decoration="excludes"))
    app, web = f"{project_name}/app", f"{project_name}/web"
    for repo in (app, web):
        push_image(admin, repo, "dev-1")
        push_image(admin, repo, "stable")
    assert admin.delete(f"/v2/{app}/manifests/dev-1").status_code == 202  # excluded from the rule
    refused(admin.delete(f"/v2/{app}/manifests/stable"), "DENIED", "stable")
    for tag in ("dev-1", "stable"):  # another repository: out of the rule's scope
        assert admin.delete(f"/v2/{web}/manifests/{tag}").status_code == 202


def test_retention_never_removes_immutable_artifacts(admin: httpx.Client, project_name: str) -> None:
    project_id = create_project(admin, project_name)
    repo = f"{project_name}/app"
    release = push_image(admin, repo, "release-1")
    builds = [push_image(admin, repo, f"b{i}") for i in range(3)]
    add_rule(admin, project_name, immutable_rule("release-*"))
    policy_id = create_policy(admin, policy(project_id, [rule("latestPushedK", 1, tags="b*")]))
    _, would = run(admin, policy_id, dry_run=True)
    real, deleted = run(admin, policy_id, dry_run=False)
    assert would == deleted == {(repo, b.digest) for b in builds[:2]}
    assert admin.get(f"/v2/{repo}/tags/list").json()["tags"] == ["b2", "release-1"]
    assert admin.get(f"/v2/{repo}/manifests/release-1").content == release.body
    (task,) = tasks(admin, policy_id, real["id"])
    assert "immutable tag release-1" in task_log(admin, policy_id, real["id"], task["id"])
    assert (task["total"], task["retained"]) == (4, 2)

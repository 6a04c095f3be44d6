"""Retention rules with Harbor's label selectors (kind "label", withLabels / withoutLabels): as pure
functions, and end to end with labels put on artifacts through the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from portside.errors import Invalid
from portside.lifecycle.immutability import parse_immutable_rule
from portside.lifecycle.retention import Artifact, metadata, parse_rule, plan
from tests.conftest import ADMIN_PASSWORD
from tests.lifecycle.retention_client import (
    API,
    create_policy,
    create_project,
    fast_client,
    manifest_status,
    policy,
    run,
)
from tests.oci_client import push_image
from tests.servers import RunningServer

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
REPO = [
    Artifact(1, "sha256:a", NOW - timedelta(days=1), ("v1",), labels=("release", "qa")),
    Artifact(2, "sha256:b", NOW - timedelta(days=2), ("v2",), labels=("release",)),
    Artifact(3, "sha256:c", NOW - timedelta(days=3), ("v3",)),
    Artifact(4, "sha256:d", NOW - timedelta(days=4), (), labels=("qa",)),
]


def label_rule(decoration: str, pattern: str, *, tags: str = "**", untagged: bool = True) -> dict[str, Any]:
    return {"template": "always", "tag_selectors": [
        {"kind": "doublestar", "decoration": "matches", "pattern": tags,
         "extras": '{"untagged":true}' if untagged else ""},
        {"kind": "label", "decoration": decoration, "pattern": pattern}]}


@pytest.mark.parametrize(("decoration", "pattern", "kept"), [
    ("withLabels", "release", {"a", "b"}),
    ("withLabels", "release, qa", {"a"}),
    ("withLabels", "qa", {"a", "d"}),
    ("withoutLabels", "qa", {"b", "c"}),
    ("withoutLabels", "release,qa", {"c"}),
    ("withLabels", "nobody", set()),
])
def test_label_selectors_select_by_the_labels_carried(decoration: str, pattern: str, kept: set[str]) -> None:
    result = plan(REPO, [parse_rule(label_rule(decoration, pattern), "r", 0)], NOW)
    assert {d.removeprefix("sha256:") for d in result.kept} == kept


def test_label_selectors_combine_with_tag_selectors() -> None:
    rule = parse_rule(label_rule("withLabels", "qa", tags="v*", untagged=False), "r", 0)
    assert set(plan(REPO, [rule], NOW).kept) == {"sha256:a"}
    assert rule.as_json()["tag_selectors"][1] == {"kind": "label", "decoration": "withLabels", "pattern": "qa",
                                                  "extras": ""}


def test_bad_label_selectors_are_refused() -> None:
    for decoration, pattern, message in (("matches", "x", "decoration"), ("withLabels", " , ", "pattern"),
                                         ("withLabels", 3, "pattern")):
        with pytest.raises(Invalid, match=message):
            parse_rule({"template": "always", "tag_selectors": [
                {"kind": "label", "decoration": decoration, "pattern": pattern}]}, "r", 0)
    with pytest.raises(Invalid, match="kind"):  # immutable rules have no label selectors, as in Harbor
        parse_immutable_rule({"tag_selectors": [{"kind": "label", "decoration": "withLabels", "pattern": "x"}],
                              "scope_selectors": {}}, 1)
    assert {"display_text": "Labels", "kind": "label", "decorations": ["withLabels", "withoutLabels"]} in \
        metadata()["tag_selectors"]


@pytest.fixture
def admin(auth_server: RunningServer) -> Iterator[httpx.Client]:
    with fast_client(auth_server.url, "admin", ADMIN_PASSWORD) as c:
        yield c


def test_a_run_keeps_the_labelled_artifacts(admin: httpx.Client, project_name: str) -> None:
    project_id = create_project(admin, project_name)
    repo = f"{project_name}/app"
    images = {tag: push_image(admin, repo, tag) for tag in ("keep", "also", "drop")}
    r = admin.post(f"{API}/labels", json={"name": "keep-me", "scope": "p", "project_id": project_id})
    assert r.status_code == 201, r.text
    label_id = int(r.headers["Location"].rsplit("/", 1)[1])
    for tag in ("keep", "also"):
        r = admin.post(f"{API}/projects/{project_name}/repositories/app/artifacts/{tag}/labels", json={"id": label_id})
        assert r.status_code == 200, r.text
    policy_id = create_policy(admin, policy(project_id, [{
        "id": 1, "priority": 0, "disabled": False, "action": "retain", "template": "always", "params": {},
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "**"},
                          {"kind": "label", "decoration": "withLabels", "pattern": "keep-me"}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
    }]))
    _, deleted = run(admin, policy_id, dry_run=False)
    assert deleted == {(repo, images["drop"].digest)}
    assert manifest_status(admin, repo, "keep") == 200 and manifest_status(admin, repo, "drop") == 404

"""Tag retention end to end over HTTP: policies, dry runs against real runs, the article's shorthand,
scheduled runs, stops, policy changes during a run, validation, permissions and cascades."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.lifecycle.retention_client import (
    API,
    create_policy,
    create_project,
    deletions,
    fast_client,
    manifest_status,
    policy,
    rule,
    run,
    start_run,
    task_log,
    tasks,
    wait_run,
)
from tests.oci_client import OCI_INDEX, Image, descriptor, make_image, push_image, push_manifest
from tests.servers import RunningServer

SIGNATURE = "application/vnd.example.signature"


@pytest.fixture
def admin(auth_server: RunningServer) -> Iterator[httpx.Client]:
    """The administrator, signed in as clients do (a portal session, registry tokens), so that the many
    pushes here do not each pay for a password hash."""
    with fast_client(auth_server.url, "admin", ADMIN_PASSWORD) as c:
        yield c


def push_untagged(admin: httpx.Client, repo: str) -> Image:
    image = make_image(n_layers=1)
    return push_image(admin, repo, image.digest, image)


def push_index(admin: httpx.Client, repo: str, tag: str) -> tuple[str, list[Image]]:
    children = [push_untagged(admin, repo) for _ in range(2)]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [descriptor(c.manifest["mediaType"], c.body) for c in children]}
    r = push_manifest(admin, repo, tag, index, OCI_INDEX)
    assert r.status_code == 201, r.text
    return r.headers["Docker-Content-Digest"], children


def push_signature(admin: httpx.Client, repo: str, subject: Image) -> Image:
    sig = make_image(n_layers=1, subject=descriptor(subject.manifest["mediaType"], subject.body),
                     artifactType=SIGNATURE)
    return push_image(admin, repo, sig.digest, sig)


def test_dry_run_reports_exactly_what_the_real_run_deletes(admin: httpx.Client, project_name: str) -> None:
    project_id = create_project(admin, project_name)
    app, tools, other = f"{project_name}/app", f"{project_name}/tools", f"{project_name}/other"
    versions = {f"v{i}": push_image(admin, app, f"v{i}") for i in range(1, 6)}
    loose = push_untagged(admin, app)
    index_digest, children = push_index(admin, app, "multi")
    sig_old = push_signature(admin, app, versions["v1"])
    sig_new = push_signature(admin, app, versions["v5"])
    dev = [push_image(admin, tools, f"dev-{i}") for i in range(2)]
    stable = push_image(admin, tools, "stable")
    untouched = push_image(admin, other, "v0")

    policy_id = create_policy(admin, policy(project_id, [
        rule("latestPushedK", 2, tags="v*", repositories="app", rule_id=1),
        rule("always", tags="stable", repositories="{app,tools}", rule_id=2),
    ]))
    expected = {(app, versions[v].digest) for v in ("v1", "v2", "v3")} | {
        (app, loose.digest), (app, index_digest), (app, sig_old.digest),
        *((app, c.digest) for c in children), *((tools, d.digest) for d in dev)}

    dry, would_delete = run(admin, policy_id, dry_run=True)
    assert dry["dry_run"] is True and dry["trigger"] == "MANUAL"
    assert would_delete == expected
    for repo, digest in expected:  # a dry run changes nothing
        assert manifest_status(admin, repo, digest) == 200
    assert admin.get(f"/v2/{app}/tags/list").json()["tags"] == ["multi", "v1", "v2", "v3", "v4", "v5"]

    by_repo = {t["repository"]: t for t in tasks(admin, policy_id, dry["id"])}
    # one task per repository in scope (`other` has none), named as Harbor does: without the project
    assert set(by_repo) == {"app", "tools"}
    assert (by_repo["app"]["total"], by_repo["app"]["retained"]) == (7, 2)  # v1-v5, the loose one, the index
    assert (by_repo["tools"]["total"], by_repo["tools"]["retained"]) == (3, 1)
    assert all(t["status"] == "Success" and t["start_time"] and t["end_time"] for t in by_repo.values())

    real, deleted = run(admin, policy_id, dry_run=False)
    assert real["dry_run"] is False
    assert deleted == would_delete
    for repo, digest in expected:
        assert manifest_status(admin, repo, digest) == 404
    for ref in ("v4", "v5", versions["v4"].digest, sig_new.digest):
        assert manifest_status(admin, app, ref) == 200
    assert admin.get(f"/v2/{app}/tags/list").json()["tags"] == ["v4", "v5"]
    assert admin.get(f"/v2/{tools}/tags/list").json()["tags"] == ["stable"]
    assert admin.get(f"/v2/{tools}/manifests/stable").content == stable.body
    assert admin.get(f"/v2/{other}/manifests/v0").content == untouched.body
    referrers = admin.get(f"/v2/{app}/referrers/{versions['v5'].digest}").json()["manifests"]
    assert [m["digest"] for m in referrers] == [sig_new.digest]

    # A second real run finds nothing more to do.
    _, again = run(admin, policy_id, dry_run=False)
    assert again == set()

    listed = admin.get(f"{API}/retentions/{policy_id}/executions", params={"page_size": 2})
    assert listed.status_code == 200 and listed.headers["X-Total-Count"] == "3"
    assert [e["id"] for e in listed.json()] == [e["id"] for e in sorted(listed.json(), key=lambda e: -e["id"])]
    assert 'rel="next"' in listed.headers["Link"]


ARTICLE_BODY = ('{"schedule": {"type": "Hourly", "cron": "0 * * * *"},'
                '"rules": [{"action": "retain", "parameters": {"n": 3, "tagSelectors": ["*"]}}]}')
BRIEF_BODY = {"schedule": {"type": "Hourly", "cron": "0 * * * *"},
              "rules": [{"action": "retain", "parameters": {"n": 3}, "tagSelectors": ["*"]}]}


def test_the_article_shorthand_on_project_1(admin: httpx.Client, project_name: str) -> None:
    library = admin.get(f"{API}/projects/1").json()
    assert library["name"] == "library"
    repos = [f"library/{project_name}-{i}" for i in range(2)]
    pushed = {repo: [push_image(admin, repo, f"build-{n}") for n in range(5)] for repo in repos}
    try:
        # Verbatim from the article (section 4.1): the shorthand with tagSelectors inside parameters.
        r = admin.put(f"{API}/projects/1/retention", content=ARTICLE_BODY, headers={"Content-Type": "application/json"})
        assert r.status_code in (200, 201), r.text
        policy_id = int(r.headers["Location"].rsplit("/", 1)[1])
        stored = admin.get(f"{API}/projects/1/retention").json()
        assert stored["id"] == policy_id and stored["scope"] == {"level": "project", "ref": 1}
        assert stored["trigger"]["kind"] == "Schedule" and stored["trigger"]["settings"]["cron"] == "0 * * * *"
        assert stored["trigger"]["next_scheduled_time"].endswith(":00:00Z")  # hourly, on the hour
        (only,) = stored["rules"]
        assert (only["template"], only["params"], only["action"]) == ("latestPushedK", {"latestPushedK": 3}, "retain")
        assert only["tag_selectors"][0]["pattern"] == "*"
        assert admin.get(f"{API}/projects/1").json()["metadata"]["retention_id"] == str(policy_id)
        assert admin.get(f"{API}/retentions/{policy_id}").json() == stored

        # The brief's variant (tagSelectors beside parameters) replaces the same policy.
        r = admin.put(f"{API}/projects/1/retention", json=BRIEF_BODY)
        assert r.status_code == 200, r.text
        assert int(r.headers["Location"].rsplit("/", 1)[1]) == policy_id

        _, deleted = run(admin, policy_id, dry_run=False)
        for repo, images in pushed.items():
            assert admin.get(f"/v2/{repo}/tags/list").json()["tags"] == ["build-2", "build-3", "build-4"]
            assert {(repo, i.digest) for i in images[:2]} <= deleted
            for image in images[:2]:
                assert manifest_status(admin, repo, image.digest) == 404
    finally:
        policy_now = admin.get(f"{API}/projects/1/retention")
        if policy_now.status_code == 200:
            assert admin.delete(f"{API}/retentions/{policy_now.json()['id']}").status_code == 200
    assert admin.get(f"{API}/projects/1/retention").status_code == 404
    assert "retention_id" not in admin.get(f"{API}/projects/1").json()["metadata"]


def test_a_scheduled_run_fires(admin: httpx.Client, project_name: str) -> None:
    project_id = create_project(admin, project_name)
    repo = f"{project_name}/app"
    images = [push_image(admin, repo, f"t{i}") for i in range(3)]
    policy_id = create_policy(admin, policy(project_id, [rule("latestPushedK", 1)], cron="*/2 * * * * *"))
    deadline = time.monotonic() + 45
    scheduled: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not scheduled:
        runs = admin.get(f"{API}/retentions/{policy_id}/executions").json()
        scheduled = [e for e in runs if e["trigger"] == "SCHEDULE"]
        time.sleep(0.3)
    assert scheduled, "the schedule never fired"
    first = wait_run(admin, policy_id, scheduled[-1]["id"])
    assert first["status"] == "Success" and first["dry_run"] is False
    assert admin.get(f"/v2/{repo}/tags/list").json()["tags"] == ["t2"]
    assert manifest_status(admin, repo, images[0].digest) == 404

    # Without a cron the policy runs only by hand: the schedule is gone.
    body = admin.get(f"{API}/retentions/{policy_id}").json()
    body["trigger"]["settings"]["cron"] = ""
    assert admin.put(f"{API}/retentions/{policy_id}", json=body).status_code == 200
    assert "next_scheduled_time" not in admin.get(f"{API}/retentions/{policy_id}").json()["trigger"]
    time.sleep(1.5)  # let a run that fired just before the change settle
    count = len(admin.get(f"{API}/retentions/{policy_id}/executions").json())
    time.sleep(4.5)
    assert len(admin.get(f"{API}/retentions/{policy_id}/executions").json()) == count


def test_stop_a_run(admin: httpx.Client, project_name: str) -> None:
    project_id = create_project(admin, project_name)
    for i in range(15):
        push_image(admin, f"{project_name}/r{i:02}", "t0", make_image(n_layers=1, layer_size=64))
    policy_id = create_policy(admin, policy(project_id, [rule("latestPushedK", 0)]))
    execution_id = start_run(admin, policy_id, dry_run=False)
    r = admin.patch(f"{API}/retentions/{policy_id}/executions/{execution_id}", json={"action": "stop"})
    assert r.status_code == 200, r.text
    execution = wait_run(admin, policy_id, execution_id)
    assert execution["status"] == "Stopped"
    statuses = [t["status"] for t in tasks(admin, policy_id, execution_id)]
    assert len(statuses) == 15 and "Stopped" in statuses
    r = admin.patch(f"{API}/retentions/{policy_id}/executions/{execution_id}", json={"action": "pause"})
    assert r.status_code == 400 and "action" in r.json()["errors"][0]["message"]
    assert admin.patch(f"{API}/retentions/{policy_id}/executions/999999", json={"action": "stop"}).status_code == 404


def test_a_policy_change_during_a_run_is_safe(admin: httpx.Client, project_name: str) -> None:
    project_id = create_project(admin, project_name)
    repos = [f"{project_name}/r{i}" for i in range(4)]
    pushed = {repo: [push_image(admin, repo, f"t{n}", make_image(n_layers=1, layer_size=64)) for n in range(4)]
              for repo in repos}
    policy_id = create_policy(admin, policy(project_id, [rule("latestPushedK", 1)]))
    execution_id = start_run(admin, policy_id, dry_run=False)
    # Change the policy at once (keep everything): the run under way keeps the policy it started with.
    body = policy(project_id, [rule("always")])
    assert admin.put(f"{API}/retentions/{policy_id}", json=body).status_code == 200
    execution = wait_run(admin, policy_id, execution_id)
    assert execution["status"] == "Success"
    deleted = deletions(admin, policy_id, execution_id, "deleted")
    assert deleted == {(repo, i.digest) for repo, images in pushed.items() for i in images[:3]}
    for repo in repos:
        assert admin.get(f"/v2/{repo}/tags/list").json()["tags"] == ["t3"]
    assert admin.get(f"{API}/retentions/{policy_id}").json()["rules"][0]["template"] == "always"

    # Deleting the policy while it runs stops the run; nothing breaks, the project forgets the policy.
    for repo in repos:
        for n in range(4, 8):
            push_image(admin, repo, f"t{n}", make_image(n_layers=1, layer_size=64))
    admin.put(f"{API}/retentions/{policy_id}", json=policy(project_id, [rule("latestPushedK", 1)]))
    execution_id = start_run(admin, policy_id, dry_run=False)
    assert admin.delete(f"{API}/retentions/{policy_id}").status_code == 200
    assert admin.get(f"{API}/retentions/{policy_id}").status_code == 404
    assert admin.get(f"{API}/retentions/{policy_id}/executions").status_code == 404
    assert "retention_id" not in admin.get(f"{API}/projects/{project_id}").json()["metadata"]
    assert admin.get(f"{API}/retentions/{policy_id}/executions/{execution_id}").status_code == 404
    time.sleep(3)  # let the stopped run's tasks end
    for repo in repos:  # whatever the stopped run got to, each repository keeps at least its newest tag
        assert "t7" in admin.get(f"/v2/{repo}/tags/list").json()["tags"]


def test_bad_input_is_refused_naming_the_field(admin: httpx.Client, project_name: str) -> None:
    project_id = create_project(admin, project_name)
    good = policy(project_id, [rule("latestPushedK", 3)])

    def refused(body: Any, field: str) -> None:
        r = admin.post(f"{API}/retentions", json=body)
        assert r.status_code == 400, r.text
        assert field in r.json()["errors"][0]["message"], r.json()

    refused({**good, "trigger": {"kind": "Schedule", "settings": {"cron": "every day"}}}, "trigger.settings.cron")
    refused(policy(project_id, [rule("keepForever", 3)]), "rules[0].template")
    refused(policy(project_id, [rule("latestPushedK", 3, tags="v[1")]), "rules[0].tag_selectors[0].pattern")
    refused(policy(project_id, [rule("latestPushedK", 3, repositories="{a,b")]),
            "rules[0].scope_selectors.repository[0].pattern")
    refused(policy(project_id, [rule("latestPushedK", -1)]), "rules[0].params.latestPushedK")
    refused(policy(project_id, [rule("nDaysSinceLastPull", -5)]), "rules[0].params.nDaysSinceLastPull")
    refused(policy(project_id, [rule("always", rule_id=i + 1) for i in range(16)]), "rules")
    refused({**good, "scope": {"level": "system", "ref": project_id}}, "scope.level")
    refused({**good, "scope": {"level": "project", "ref": 99999999}}, "scope.ref")
    refused([good], "body")
    r = admin.put(f"{API}/projects/{project_id}/retention",
                  json={"rules": [{"action": "retain", "parameters": {"n": -3}}]})
    assert r.status_code == 400 and "latestPushedK" in r.json()["errors"][0]["message"]
    r = admin.put(f"{API}/projects/{project_id}/retention",
                  json={"schedule": {"type": "Custom", "cron": "whenever"}, "rules": [{"parameters": {"n": 1}}]})
    assert r.status_code == 400 and "schedule.cron" in r.json()["errors"][0]["message"]
    assert admin.get(f"{API}/projects/{project_id}/retention").status_code == 404  # nothing was stored

    policy_id = create_policy(admin, good)
    r = admin.post(f"{API}/retentions", json=good)
    assert r.status_code == 409 and str(policy_id) in r.json()["errors"][0]["message"]
    r = admin.put(f"{API}/retentions/{policy_id}", json=policy(project_id, [rule("latestPulledN", -2)]))
    assert r.status_code == 400 and "rules[0].params.latestPulledN" in r.json()["errors"][0]["message"]
    assert admin.get(f"{API}/retentions/{policy_id}").json()["rules"][0]["template"] == "latestPushedK"
    r = admin.post(f"{API}/retentions/{policy_id}/executions", json={"dry_run": "yes"})
    assert r.status_code == 400 and "dry_run" in r.json()["errors"][0]["message"]
    assert admin.get(f"{API}/retentions/99999999").status_code == 404


def test_metadata_permissions_and_project_cascade(admin: httpx.Client, anon: httpx.Client,
                                                  project_name: str) -> None:
    data = admin.get(f"{API}/retentions/metadatas").json()
    assert {t["rule_template"] for t in data["templates"]} == {
        "latestPushedK", "latestPulledN", "nDaysSinceLastPush", "nDaysSinceLastPull", "always"}
    assert anon.get(f"{API}/retentions/metadatas").status_code == 401

    project_id = create_project(admin, project_name)
    policy_id = create_policy(admin, policy(project_id, [rule("always")], cron="0 0 0 * * *"))
    assert admin.get(f"{API}/projects/{project_name}").json()["metadata"]["retention_id"] == str(policy_id)
    assert anon.get(f"{API}/retentions/{policy_id}").status_code == 401
    assert anon.post(f"{API}/retentions/{policy_id}/executions", json={}).status_code == 401

    # A developer may not manage retention; a maintainer may.
    for user, role in (("dev", 2), ("maint", 4)):
        name = f"{project_name}{user}"
        r = admin.post(f"{API}/users", json={"username": name, "email": f"{name}@example.com", "realname": name,
                                             "password": "Passw0rd!Passw0rd"})
        assert r.status_code == 201, r.text
        r = admin.post(f"{API}/projects/{project_name}/members",
                       json={"role_id": role, "member_user": {"username": name}})
        assert r.status_code == 201, r.text
    with httpx.Client(base_url=str(admin.base_url), auth=(f"{project_name}dev", "Passw0rd!Passw0rd")) as dev:
        assert dev.get(f"{API}/retentions/{policy_id}").status_code == 403
        assert dev.put(f"{API}/projects/{project_name}/retention", json=BRIEF_BODY).status_code == 403
    with httpx.Client(base_url=str(admin.base_url), auth=(f"{project_name}maint", "Passw0rd!Passw0rd")) as maint:
        assert maint.get(f"{API}/retentions/{policy_id}").status_code == 200
        execution_id = start_run(maint, policy_id, dry_run=True)
        assert wait_run(maint, policy_id, execution_id)["status"] == "Success"

    # Deleting the project deletes its policy (and the schedule no longer launches anything).
    assert admin.delete(f"{API}/projects/{project_name}").status_code == 200
    assert admin.get(f"{API}/retentions/{policy_id}").status_code == 404


def test_task_log_says_why(admin: httpx.Client, project_name: str) -> None:
    project_id = create_project(admin, project_name)
    repo = f"{project_name}/app"
    old, new = push_image(admin, repo, "old"), push_image(admin, repo, "new")
    policy_id = create_policy(admin, policy(project_id, [rule("latestPushedK", 1)]))
    execution, _ = run(admin, policy_id, dry_run=True)
    (task,) = tasks(admin, policy_id, execution["id"])
    log = task_log(admin, policy_id, execution["id"], task["id"])
    assert f"retained {repo}@{new.digest} [new]: rule 1 (latestPushedK 1)" in log
    assert f"would delete {repo}@{old.digest} [old]" in log
    r = admin.get(f"{API}/retentions/{policy_id}/executions/{execution['id']}/tasks/99999999")
    assert r.status_code == 404


def test_pull_and_age_templates_use_the_recorded_times(admin: httpx.Client, project_name: str) -> None:
    project_id = create_project(admin, project_name)
    repo = f"{project_name}/app"
    a, b, c = (push_image(admin, repo, tag) for tag in ("a", "b", "c"))
    assert admin.get(f"/v2/{repo}/manifests/b").status_code == 200  # b is the only one pulled
    deadline = time.monotonic() + 30  # pulls are written in batches
    artifact = f"{API}/projects/{project_name}/repositories/app/artifacts/{b.digest}"
    while time.monotonic() < deadline and not admin.get(artifact).json().get("pull_time"):
        time.sleep(0.5)
    assert admin.get(artifact).json()["pull_time"]
    everything = {(repo, i.digest) for i in (a, b, c)}
    policy_id = create_policy(admin, policy(project_id, [rule("latestPulledN", 1)]))
    for template, n, kept in [("latestPulledN", 1, [b]), ("nDaysSinceLastPull", 1, [b]),
                              ("nDaysSinceLastPush", 1, [a, b, c]), ("nDaysSinceLastPush", 0, []),
                              ("latestPushedK", 2, [b, c])]:
        assert admin.put(f"{API}/retentions/{policy_id}",
                         json=policy(project_id, [rule(template, n)])).status_code == 200
        _, would_delete = run(admin, policy_id, dry_run=True)
        assert would_delete == everything - {(repo, i.digest) for i in kept}, template

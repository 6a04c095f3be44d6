"""The two Harbor client libraries scripts use, driving Portside unchanged: `harborapi` (async, pydantic
models that validate every answer) and `harbor-api-client` (generated from Harbor's swagger, import name
`harbor_client`). Each walks projects, repositories, artifacts and tags, users, members, robots, quotas,
retention, immutable tag rules, garbage collection and audit logs, plus the users' article's two snippets.
Images are pushed through /v2 with the test helpers; everything else goes through the client under test.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import pytest

from portside.jobs.queue import FINAL
from tests.api.artifact_support import Registry
from tests.conftest import ADMIN_PASSWORD
from tests.servers import RunningServer

T = TypeVar("T")
ARTICLE_RETENTION = {"schedule": {"type": "Hourly", "cron": "0 * * * *"},
                     "rules": [{"action": "retain", "parameters": {"n": 3, "tagSelectors": ["*"]}}]}


def names() -> tuple[str, str, str]:
    tail = uuid.uuid4().hex[:10]
    return f"hc{tail}", f"hcuser{tail}", f"hcbot{tail}"


def eventually(check: Callable[[], T], what: str, timeout: float = 60) -> T:
    """Poll until `check` returns something truthy (jobs and audit entries land asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


async def eventually_async(check: Callable[[], Awaitable[T]], what: str, timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def older_than(push_time: str, days: int) -> bool:
    # clean_old_images.py's own test, as written in the article
    return datetime.utcnow() - datetime.strptime(push_time, '%Y-%m-%dT%H:%M:%SZ') > timedelta(days=days)


# -- harborapi ------------------------------------------------------------------------------------


def test_harborapi(auth_server: RunningServer, registry: Registry) -> None:
    asyncio.run(_harborapi(auth_server, registry))


async def _harborapi(server: RunningServer, registry: Registry) -> None:
    from harborapi import HarborAsyncClient
    from harborapi.exceptions import Conflict, NotFound, PreconditionFailed
    from harborapi.models import (
        Access,
        ImmutableRule,
        ImmutableSelector,
        ProjectMetadata,
        ProjectReq,
        RetentionPolicy,
        RetentionPolicyScope,
        RetentionRule,
        RetentionRuleTrigger,
        RetentionSelector,
        RobotCreate,
        RobotPermission,
        Schedule,
        ScheduleObj,
        Tag,
        UserCreationReq,
        UserProfile,
    )

    project, username, robot_name = names()
    client = HarborAsyncClient(url=f"{server.url}/api/v2.0", username="admin", secret=ADMIN_PASSWORD,
                               retry=None, timeout=60)
    assert await client.ping() == "Pong"

    # projects
    location = await client.create_project(ProjectReq(project_name=project, metadata=ProjectMetadata(public=False)))
    assert location.endswith(f"/projects/{project}")  # harborapi asks for the name (X-Resource-Name-In-Location)
    assert await client.project_exists(project)
    pid = (await client.get_project(project)).project_id
    assert pid is not None
    assert [p.name for p in await client.get_projects(query=f"name={project}")] == [project]
    await client.update_project(project, ProjectReq(metadata=ProjectMetadata(auto_scan=True, severity="high")))
    metadata = (await client.get_project(pid)).metadata
    assert metadata is not None and metadata.auto_scan == "true" and metadata.severity == "high"
    assert (await client.get_project_metadata(project)).auto_scan == "true"

    # repositories, artifacts, tags
    first = registry.push(f"{project}/team/app", "1.0")
    second = registry.push(f"{project}/team/app", "2.0")
    registry.push(f"{project}/web", "latest")
    repos = await client.get_repositories(project)
    assert {r.name for r in repos} == {f"{project}/team/app", f"{project}/web"}
    assert f"{project}/web" in {r.name for r in await client.get_repositories(query=f"name=~{project}/")}
    repo = await client.get_repository(project, "team/app")
    assert repo.artifact_count == 2
    artifacts = await client.get_artifacts(project, "team/app", with_immutable_status=True)
    assert {a.digest for a in artifacts} == {first.digest, second.digest}
    artifact = await client.get_artifact(project, "team/app", "1.0")
    assert artifact.digest == first.digest and artifact.tags and artifact.tags[0].name == "1.0"
    await client.create_artifact_tag(project, "team/app", first.digest, Tag(name="stable"))
    tags = await client.get_artifact_tags(project, "team/app", first.digest)
    assert {t.name for t in tags} == {"1.0", "stable"}
    await client.delete_artifact_tag(project, "team/app", first.digest, "stable")
    assert {t.name for t in await client.get_artifact_tags(project, "team/app", first.digest)} == {"1.0"}
    await client.delete_artifact(project, "team/app", "2.0")
    with pytest.raises(NotFound):
        await client.get_artifact(project, "team/app", second.digest)

    # users and members
    await client.create_user(UserCreationReq(username=username, email=f"{username}@example.com",
                                             realname="H C", password="Passw0rd!Passw0rd", comment="x"))
    user = await client.get_user_by_username(username)
    assert user.user_id is not None
    assert [u.username for u in await client.get_users(query=f"username={username}")] == [username]
    await client.update_user(user.user_id, UserProfile(email=f"{username}@example.org", realname="Renamed"))
    assert (await client.get_user(user.user_id)).realname == "Renamed"
    await client.add_project_member_user(project, username, 2)
    members = await client.get_project_members(project)
    assert {m.entity_name: m.role_id for m in members}[username] == 2

    # robots
    created = await client.create_robot(RobotCreate(
        name=robot_name, level="project", duration=-1, description="ci",
        permissions=[RobotPermission(kind="project", namespace=project,
                                     access=[Access(resource="repository", action="pull")])]))
    assert created.name and created.name.endswith(robot_name) and created.secret and created.id
    assert created.id in {r.id for r in await client.get_robots(query=f"name=~{robot_name}")}
    await client.delete_robot(created.id)

    # quotas
    quotas = await client.get_quotas(reference="project", reference_id=str(pid))
    assert len(quotas) == 1 and quotas[0].id is not None
    assert (await client.get_quota(quotas[0].id)).ref is not None

    # immutable tag rules: a protected tag cannot be deleted (412 from the API)
    registry.push(f"{project}/team/app", "release-1")
    await client.create_project_immutable_tag_rule(project, ImmutableRule(
        action="immutable", template="immutable_template", disabled=False,
        tag_selectors=[ImmutableSelector(kind="doublestar", decoration="matches", pattern="release-*")],
        scope_selectors={"repository": [ImmutableSelector(kind="doublestar", decoration="repoMatches",
                                                          pattern="**")]}))
    assert len(await client.get_project_immutable_tag_rules(project)) == 1
    with pytest.raises(PreconditionFailed):
        await client.delete_artifact(project, "team/app", "release-1")
    protected = await client.get_artifact(project, "team/app", "release-1", with_immutable_status=True)
    assert protected.tags and protected.tags[0].immutable is True

    # retention: create a policy, run it (dry), see the execution and its tasks
    policy_location = await client.create_retention_policy(RetentionPolicy(
        algorithm="or", scope=RetentionPolicyScope(level="project", ref=pid),
        trigger=RetentionRuleTrigger(kind="Schedule", settings={"cron": ""}),
        rules=[RetentionRule(action="retain", template="latestPushedK", params={"latestPushedK": 1},
                             tag_selectors=[RetentionSelector(kind="doublestar", decoration="matches", pattern="**")],
                             scope_selectors={"repository": [RetentionSelector(
                                 kind="doublestar", decoration="repoMatches", pattern="**")]})]))
    policy_id = await client.get_project_retention_id(project)
    assert policy_id is not None and policy_location.endswith(f"/{policy_id}")
    assert (await client.get_retention_policy(policy_id)).rules
    await client.start_retention_execution(policy_id, dry_run=True)
    executions = await client.get_retention_executions(policy_id)
    assert len(executions) == 1 and executions[0].dry_run is True
    execution_id = executions[0].id
    assert execution_id is not None
    async def finished() -> str | None:
        status = (await client.get_retention_executions(policy_id))[0].status
        return status if status in FINAL else None

    assert await eventually_async(finished, "the retention run") == "Success"
    # harborapi's defaults send `page=&page_size=`: empty values mean the defaults
    tasks = await client.get_retention_tasks(policy_id, execution_id)
    assert {t.repository for t in tasks} == {"team/app", "web"}

    # garbage collection: the schedule, a manual (dry) run, the history
    schedule = await client.get_gc_schedule()
    assert schedule is not None
    async def start_gc() -> str | None:
        try:
            return await client.create_gc_schedule(Schedule(
                schedule=ScheduleObj(type="Manual"), parameters={"delete_untagged": False, "dry_run": True}))
        except Conflict:  # another test's run is still going
            return None

    gc_id = int((await eventually_async(start_gc, "a free GC slot")).rsplit("/", 1)[1])
    assert gc_id in {job.id for job in await client.get_gc_jobs()}

    async def gc_finished() -> bool:
        return (await client.get_gc_job(gc_id)).job_status in FINAL

    await eventually_async(gc_finished, "the GC run")

    # audit logs
    await eventually_async(lambda: client.get_audit_logs(query=f"resource=~{project}"), "audit entries")

    # the system bits scripts ask for
    volumes = await client.get_system_volume_info()
    assert volumes.storage and volumes.storage[0].total
    perms = await client.get_current_user_permissions(scope=f"/project/{pid}", relative=True)
    assert any(p.resource == "repository" and p.action == "push" for p in perms)

    # the article: its retention PUT on the project, and clean_old_images.py (list, then delete by digest)
    await client.put(f"/projects/{pid}/retention", json=ARTICLE_RETENTION)
    for artifact_json in await client.get(f"/projects/{pid}/artifacts", follow_links=False):
        if older_than(artifact_json["push_time"], 0) and artifact_json["repository_name"].endswith("/web"):
            await client.delete(f"/projects/{pid}/artifacts/{artifact_json['digest']}")
    assert [a.name for a in await client.get_artifact_tags(project, "team/app", first.digest)] == ["1.0"]
    assert await client.get_artifacts(project, "web") == []

    # deletes: a project with repositories refuses (412), then goes once emptied
    member_id = {m.entity_name: m.id for m in members}[username]
    assert member_id is not None
    await client.remove_project_member(project, member_id)
    await client.delete_user(user.user_id)
    with pytest.raises(NotFound):
        await client.get_user(user.user_id)
    with pytest.raises(PreconditionFailed):
        await client.delete_project(project)
    with pytest.raises(Conflict):
        await client.create_project(ProjectReq(project_name=project))
    rule_id = (await client.get_project_immutable_tag_rules(project))[0].id
    assert rule_id is not None
    await client.delete_project_immutable_tag_rule(project, rule_id)
    for r in await client.get_repositories(project):
        await client.delete_repository(project, r.name.partition("/")[2])
    await client.delete_project(project)
    with pytest.raises(NotFound):
        await client.get_project(project)


# -- harbor-api-client (generated from Harbor's swagger) ------------------------------------------


def test_harbor_api_client(auth_server: RunningServer, registry: Registry) -> None:
    import harbor_client as hc
    from harbor_client.rest import ApiException

    def refused(status: int, call: Callable[[], object]) -> None:
        with pytest.raises(ApiException) as caught:
            call()
        assert caught.value.status == status, caught.value.body

    project, username, robot_name = names()
    config = hc.Configuration()
    config.host = f"{auth_server.url}/api/v2.0"
    config.username, config.password = "admin", ADMIN_PASSWORD
    client = hc.ApiClient(config)
    projects, repositories, artifacts = hc.ProjectApi(client), hc.RepositoryApi(client), hc.ArtifactApi(client)
    assert hc.PingApi(client).get_ping() == "Pong"

    # projects
    _, status, headers = projects.create_project_with_http_info(
        hc.ProjectReq(project_name=project, metadata=hc.ProjectMetadata(public="false")))
    pid = projects.get_project(project).project_id
    assert status == 201 and headers["Location"] == f"/api/v2.0/projects/{pid}"
    projects.head_project(project_name=project)
    assert [p.name for p in projects.list_projects(q=f"name={project}")] == [project]
    projects.update_project(project, hc.ProjectReq(metadata=hc.ProjectMetadata(auto_scan="true")))
    assert projects.get_project(str(pid), x_is_resource_name=False).metadata.auto_scan == "true"
    metadatas = hc.ProjectMetadataApi(client)
    metadatas.add_project_metadatas(project, metadata={"severity": "high"})
    assert metadatas.get_project_metadata(project, "severity") == {"severity": "high"}
    metadatas.update_project_metadata(project, "severity", metadata={"severity": "low"})
    metadatas.delete_project_metadata(project, "severity")
    assert "severity" not in metadatas.list_project_metadatas(project)

    # repositories, artifacts, tags (repository names as Harbor's docs say to pass them: slashes encoded)
    first = registry.push(f"{project}/team/app", "1.0")
    second = registry.push(f"{project}/team/app", "2.0")
    registry.push(f"{project}/web", "latest")
    assert {r.name for r in repositories.list_repositories(project)} == {f"{project}/team/app", f"{project}/web"}
    assert f"{project}/web" in {r.name for r in repositories.list_all_repositories(q=f"name=~{project}/")}
    assert repositories.get_repository(project, "team%2Fapp").artifact_count == 2
    listed = artifacts.list_artifacts(project, "team%2Fapp", with_immutable_status=True)
    assert {a.digest for a in listed} == {first.digest, second.digest}
    assert artifacts.get_artifact(project, "team%2Fapp", "1.0").digest == first.digest
    artifacts.create_tag(project, "team%2Fapp", first.digest, hc.Tag(name="stable"))
    assert {t.name for t in artifacts.list_tags(project, "team%2Fapp", first.digest)} == {"1.0", "stable"}
    artifacts.delete_tag(project, "team%2Fapp", first.digest, "stable")
    artifacts.delete_artifact(project, "team%2Fapp", "2.0")
    refused(404, lambda: artifacts.get_artifact(project, "team%2Fapp", second.digest))

    # labels: a project label on an artifact, shown with with_label, then taken off and deleted
    labels = hc.LabelApi(client)
    _, status, headers = labels.create_label_with_http_info(
        hc.Label(name=f"{project}-qa", color="#00ff00", scope="p", project_id=pid))
    label_id = int(headers["Location"].rsplit("/", 1)[1])
    assert status == 201 and labels.get_label_by_id(label_id).name == f"{project}-qa"
    assert [lb.id for lb in labels.list_labels(scope="p", project_id=pid)] == [label_id]
    artifacts.add_label(project, "team%2Fapp", "1.0", hc.Label(id=label_id))
    refused(409, lambda: artifacts.add_label(project, "team%2Fapp", "1.0", hc.Label(id=label_id)))
    labelled = artifacts.get_artifact(project, "team%2Fapp", "1.0", with_label=True)
    assert [lb.id for lb in labelled.labels] == [label_id]
    artifacts.remove_label(project, "team%2Fapp", "1.0", label_id)
    assert not artifacts.get_artifact(project, "team%2Fapp", "1.0", with_label=True).labels
    labels.update_label(label_id, hc.Label(description="checked by QA"))
    labels.delete_label(label_id)
    refused(404, lambda: labels.get_label_by_id(label_id))

    # users and members
    users = hc.UserApi(client)
    users.create_user(hc.UserCreationReq(username=username, email=f"{username}@example.com", realname="H C",
                                         password="Passw0rd!Passw0rd"))
    (user,) = users.list_users(q=f"username={username}")
    users.update_user_profile(user.user_id, hc.UserProfile(email=f"{username}@example.org", realname="Renamed"))
    assert users.get_user(user.user_id).realname == "Renamed"
    members = hc.MemberApi(client)
    members.create_project_member(project, project_member=hc.ProjectMember(
        role_id=2, member_user=hc.UserEntity(username=username)))
    member = {m.entity_name: m for m in members.list_project_members(project)}[username]
    assert member.role_id == 2

    # robots
    robots = hc.RobotApi(client)
    created = robots.create_robot(hc.RobotCreate(
        name=robot_name, level="project", duration=-1,
        permissions=[hc.RobotPermission(kind="project", namespace=project,
                                        access=[hc.Access(resource="repository", action="pull")])]))
    assert created.secret and created.id in {r.id for r in robots.list_robot(q=f"name=~{robot_name}")}
    robots.delete_robot(created.id)

    # quotas
    quotas = hc.QuotaApi(client).list_quotas(reference="project", reference_id=str(pid))
    assert len(quotas) == 1 and hc.QuotaApi(client).get_quota(quotas[0].id).id == quotas[0].id

    # immutable tag rules
    registry.push(f"{project}/team/app", "release-1")
    immutable = hc.ImmutableApi(client)
    immutable.create_immu_rule(project, hc.ImmutableRule(
        action="immutable", template="immutable_template", disabled=False,
        tag_selectors=[hc.ImmutableSelector(kind="doublestar", decoration="matches", pattern="release-*")],
        scope_selectors={"repository": [hc.ImmutableSelector(kind="doublestar", decoration="repoMatches",
                                                             pattern="**")]}))
    (rule,) = immutable.list_immu_rules(project)
    refused(412, lambda: artifacts.delete_artifact(project, "team%2Fapp", "release-1"))
    tags = artifacts.list_tags(project, "team%2Fapp", "release-1", with_immutable_status=True)
    assert [(t.name, t.immutable) for t in tags] == [("release-1", True)]

    # retention: create a policy, run it (dry), its executions and tasks
    retention = hc.RetentionApi(client)
    retention.create_retention(hc.RetentionPolicy(
        algorithm="or", scope=hc.RetentionPolicyScope(level="project", ref=pid),
        trigger=hc.RetentionRuleTrigger(kind="Schedule", settings={"cron": ""}),
        rules=[hc.RetentionRule(action="retain", template="latestPushedK", params={"latestPushedK": 1},
                                tag_selectors=[hc.RetentionSelector(kind="doublestar", decoration="matches",
                                                                    pattern="**")],
                                scope_selectors={"repository": [hc.RetentionSelector(
                                    kind="doublestar", decoration="repoMatches", pattern="**")]})]))
    policy_id = int(projects.get_project(project).metadata.retention_id)
    retention.trigger_retention_execution(policy_id, body={"dry_run": True})
    execution = eventually(lambda: next((e for e in retention.list_retention_executions(policy_id)
                                         if e.status in FINAL), None),
                           "the retention run")
    assert execution.status == "Success" and execution.dry_run is True
    tasks = retention.list_retention_tasks(policy_id, execution.id)
    assert {t.repository for t in tasks} == {"team/app", "web"}

    # garbage collection: the schedule, a manual dry run, the history
    gc = hc.GcApi(client)
    gc.get_gc_schedule()
    def start_gc() -> str | None:
        try:
            _, _, headers = gc.create_gc_schedule_with_http_info(hc.Schedule(
                schedule=hc.ScheduleObj(type="Manual"), parameters={"delete_untagged": False, "dry_run": True}))
        except ApiException as exc:
            assert exc.status == 409, exc.body  # another test's run is still going
            return None
        return str(headers["Location"])

    gc_id = int(eventually(start_gc, "a free GC slot").rsplit("/", 1)[1])
    assert gc_id in {job.id for job in gc.get_gc_history()}
    eventually(lambda: gc.get_gc(gc_id).job_status in FINAL, "the GC run")

    # audit logs, volumes, permissions
    eventually(lambda: hc.AuditlogApi(client).list_audit_logs(q=f"resource=~{project}"), "audit entries")
    assert hc.SysteminfoApi(client).get_volumes().storage[0].total > 0
    granted = users.get_current_user_permissions(scope=f"/project/{pid}", relative=True)
    assert ("repository", "push") in {(p.resource, p.action) for p in granted}

    # the article: its retention PUT on the project, and clean_old_images.py (list, then delete by digest)
    client.call_api(f"/projects/{pid}/retention", "PUT", body=ARTICLE_RETENTION, auth_settings=["basic"],
                    header_params={"Content-Type": "application/json"})
    for artifact in projects.list_artifacts_of_project(str(pid)):
        if older_than(artifact.push_time.strftime('%Y-%m-%dT%H:%M:%SZ'), 0) and artifact.repository_name.endswith(
                "/web"):
            client.call_api(f"/projects/{pid}/artifacts/{artifact.digest}", "DELETE", auth_settings=["basic"])
    assert artifacts.list_artifacts(project, "web") == []

    # deletes: a project with repositories refuses (412), then goes once emptied
    members.delete_project_member(project, member.id)
    users.delete_user(user.user_id)
    refused(404, lambda: users.get_user(user.user_id))
    refused(412, lambda: projects.delete_project(project))
    refused(409, lambda: projects.create_project(hc.ProjectReq(project_name=project)))
    immutable.delete_immu_rule(project, rule.id)
    for repository in repositories.list_repositories(project):
        repositories.delete_repository(project, repository.name.partition("/")[2].replace("/", "%2F"))
    projects.delete_project(project)
    refused(404, lambda: projects.get_project(project))

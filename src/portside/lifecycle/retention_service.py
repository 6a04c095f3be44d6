"""Retention policies: create, replace, delete, schedule and run them.

A project has at most one policy; its id is also kept in the project's metadata as `retention_id`,
as Harbor does. The policy's `trigger.settings.cron` becomes a schedule of the job system.
"""

from __future__ import annotations

from typing import Any

from portside.errors import Conflict, Invalid, NotFound
from portside.jobs.queue import FINAL, JobQueue
from portside.jobs.scheduler import Scheduler
from portside.lifecycle.retention import Policy, expand_shorthand, is_shorthand, parse_policy
from portside.lifecycle.retention_jobs import RETENTION_VENDOR
from portside.metadata.database import Database
from portside.metadata.projects import ProjectQueries
from portside.metadata.retention import PolicyRow, RetentionQueries

METADATA_KEY = "retention_id"


def _stored(row: PolicyRow) -> Policy:
    return parse_policy(row.body, project_id=row.project_id).with_id(row.id)


class RetentionService:
    def __init__(self, db: Database, queries: RetentionQueries, projects: ProjectQueries, jobs: JobQueue,
                 scheduler: Scheduler) -> None:
        self.db = db
        self.queries = queries
        self.projects = projects
        self.jobs = jobs
        self.scheduler = scheduler

    async def get(self, policy_id: int) -> Policy:
        async with self.db.read() as conn:
            row = await self.queries.policy(conn, policy_id)
        if row is None:
            raise NotFound(f"retention policy {policy_id} not found")
        return _stored(row)

    async def for_project(self, project_id: int) -> Policy | None:
        async with self.db.read() as conn:
            row = await self.queries.policy_of_project(conn, project_id)
        return _stored(row) if row else None

    async def create(self, raw: Any) -> Policy:
        policy = parse_policy(raw)
        if await self.projects.by_id(policy.project_id) is None:
            raise Invalid(f"scope.ref: project {policy.project_id} not found")
        async with self.db.write(conflict=f"project {policy.project_id} already has a retention policy") as conn:
            existing = await self.queries.policy_of_project(conn, policy.project_id)
            if existing is not None:
                raise Conflict(f"project {policy.project_id} already has retention policy {existing.id}; "
                               f"change it with PUT /api/v2.0/retentions/{existing.id}")
            policy_id = await self.queries.create_policy(conn, policy.project_id, policy.as_json())
            await self._set_metadata(conn, policy.project_id, str(policy_id))
        policy = policy.with_id(policy_id)
        await self._schedule(policy)
        return policy

    async def update(self, policy_id: int, raw: Any) -> Policy:
        current = await self.get(policy_id)
        policy = parse_policy(raw, project_id=current.project_id).with_id(policy_id)
        if policy.project_id != current.project_id:
            raise Invalid(f"scope.ref: policy {policy_id} belongs to project {current.project_id} and cannot move "
                          "to another project")
        async with self.db.write() as conn:
            if await self.queries.policy(conn, policy_id) is None:
                raise NotFound(f"retention policy {policy_id} not found")
            await self.queries.update_policy(conn, policy_id, policy.as_json())
        await self._schedule(policy)
        return policy

    async def put_for_project(self, project_id: int, raw: Any) -> tuple[Policy, bool]:
        """Create or replace the project's policy from the shorthand or a RetentionPolicy body;
        True when it was created."""
        body = expand_shorthand(raw, project_id) if is_shorthand(raw) else raw
        if isinstance(body, dict) and body.get("scope") is None:
            body = {**body, "scope": {"level": "project", "ref": project_id}}
        policy = parse_policy(body)
        if policy.project_id != project_id:
            raise Invalid(f"scope.ref: this is the retention policy of project {project_id}")
        existing = await self.for_project(project_id)
        if existing is not None and existing.id is not None:
            return await self.update(existing.id, body), False
        try:
            return await self.create(body), True
        except Conflict:  # created concurrently: replace it
            again = await self.for_project(project_id)
            if again is None or again.id is None:
                raise
            return await self.update(again.id, body), False

    async def delete(self, policy_id: int) -> None:
        policy = await self.get(policy_id)
        async with self.db.write() as conn:
            await self.queries.delete_policy(conn, policy_id)
            project = await self.projects.by_id(policy.project_id, conn)
            if project is not None and project.settings.get(METADATA_KEY) == str(policy_id):
                await self._set_metadata(conn, policy.project_id, None)
        await self.scheduler.set(RETENTION_VENDOR, policy_id, None, None)
        for e in await self.jobs.executions(RETENTION_VENDOR, policy_id):
            if e.status not in FINAL:
                await self.jobs.stop(e.id)

    async def run(self, policy_id: int, *, dry_run: bool) -> int:
        """Start a run now; refused while another run of the policy is under way."""
        await self.get(policy_id)
        running = [e for e in await self.jobs.executions(RETENTION_VENDOR, policy_id) if e.status not in FINAL]
        if running:
            raise Conflict(f"retention execution {running[0].id} of policy {policy_id} is still running")
        execution_id = await self.scheduler.launch(RETENTION_VENDOR, policy_id, {"dry_run": dry_run}, "MANUAL")
        if execution_id is None:
            raise NotFound(f"retention policy {policy_id} not found")
        return execution_id

    async def next_run(self, policy_id: int) -> str | None:
        s = await self.scheduler.get(RETENTION_VENDOR, policy_id)
        return s.next_run_at.strftime("%Y-%m-%dT%H:%M:%SZ") if s else None

    async def _schedule(self, policy: Policy) -> None:
        assert policy.id is not None
        if policy.cron:
            await self.scheduler.set(RETENTION_VENDOR, policy.id, "Custom", policy.cron)
        else:
            await self.scheduler.set(RETENTION_VENDOR, policy.id, None, None)

    async def _set_metadata(self, conn: Any, project_id: int, value: str | None) -> None:
        project = await self.projects.by_id(project_id, conn)
        if project is None:
            return
        settings = {k: v for k, v in project.settings.items() if k != METADATA_KEY}
        if value is not None:
            settings[METADATA_KEY] = value
        await self.projects.update(conn, project_id, settings=settings)

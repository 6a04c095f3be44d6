"""Retention as jobs: an execution per run, a task per repository in the policy's scope.

The launcher snapshots the policy into every task, so a policy changed or deleted while a run is
under way cannot mix two versions within one run; each task plans its repository afresh (from the
database as it is when the task starts) and deletes through guarded, per-artifact transactions.
A dry run plans exactly as a real run does and reports the plan without changing anything.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from portside.errors import TagImmutable
from portside.jobs.queue import FINAL, JobQueue
from portside.jobs.scheduler import Launcher
from portside.jobs.worker import Handler, JobContext
from portside.lifecycle.immutability import ImmutabilityService
from portside.lifecycle.retention import Artifact, Policy, parse_policy, plan
from portside.lifecycle.selectors import relative_repository
from portside.metadata.database import Database
from portside.metadata.retention import ManifestState, RetentionQueries

RETENTION_VENDOR = "RETENTION"
RETENTION_TASK = "retention"
CHECKPOINT_EVERY = 20

log = logging.getLogger("portside.jobs")
Log = Callable[[str], None]
Checkpoint = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


def to_artifact(m: ManifestState) -> Artifact:
    newest_tag = max((ts for _, ts in m.tags), default=m.pushed_at)
    return Artifact(id=m.id, digest=m.digest, pushed_at=max(m.pushed_at, newest_tag),
                    tags=tuple(name for name, _ in m.tags), pulled_at=m.pulled_at, children=m.children,
                    subject=m.subject, labels=m.labels)


class RetentionRunner:
    """Plans and applies a policy to one repository."""

    def __init__(self, db: Database, queries: RetentionQueries, immutability: ImmutabilityService) -> None:
        self.db = db
        self.queries = queries
        self.immutability = immutability

    async def run_repository(self, policy: Policy, repository: str, *, dry_run: bool, log: Log = lambda _: None,
                             checkpoint: Checkpoint = _nothing, now: datetime | None = None) -> dict[str, Any]:
        report: dict[str, Any] = {"repository": repository, "dry_run": dry_run, "total": 0, "retained": 0,
                                  "deleted": [], "skipped": []}
        relative = relative_repository(repository)[1]
        rules = policy.rules_for(relative)
        async with self.db.read() as conn:
            state = await self.queries.repository_state(conn, repository)
            if state is None:
                log(f"repository {repository} no longer exists; nothing to do")
                return report
            if state.project_id != policy.project_id:
                log(f"repository {repository} is not in project {policy.project_id}; left alone")
                return report
            protected = await self.immutability.protected(conn, state.id, repository)
        if not rules:
            log(f"no enabled rule of policy {policy.id} selects {repository}; left alone")
            return report
        by_id = {m.id: m for m in state.manifests}
        result = plan([to_artifact(m) for m in state.manifests], rules, now or datetime.now(UTC), protected)
        report.update(total=result.total, retained=result.retained)
        verb = "would delete" if dry_run else "deleted"
        log(f"{'dry run: ' if dry_run else ''}{repository}: {result.total} candidate(s), {result.retained} retained, "
            f"{len(result.deleted)} artifact(s) to delete; rules: {', '.join(r.describe() for r in rules)}")
        for a in (a for a in result.candidates if a.digest in result.kept):
            log(f"retained {repository}@{a.label()}: {result.kept[a.digest]}")
        for i, a in enumerate(result.deleted):
            if i % CHECKPOINT_EVERY == 0:
                await checkpoint()
            if dry_run:
                log(f"{verb} {repository}@{a.label()}")
                report["deleted"].append(a.digest)
                continue
            async with self.db.write() as conn:
                try:
                    await self.immutability.check_manifest_delete(conn, state.id, repository, a.id, a.digest)
                except TagImmutable as exc:
                    reason: str | None = exc.message
                else:
                    reason = await self.queries.delete_if_unchanged(
                        conn, state.id, a.id, a.digest, frozenset(a.tags), by_id[a.id].pushed_at)
            if reason is None:
                log(f"{verb} {repository}@{a.label()}")
                report["deleted"].append(a.digest)
            else:
                log(f"skipped {repository}@{a.label()}: {reason}")
                report["skipped"].append(a.digest)
        log(f"done: {len(report['deleted'])} artifact(s) {verb}, {len(report['skipped'])} skipped")
        return report


def retention_handler(runner: RetentionRunner) -> Handler:
    async def handle(ctx: JobContext) -> dict[str, Any]:
        policy = parse_policy(ctx.params["policy"]).with_id(int(ctx.params["policy_id"]))
        return await runner.run_repository(policy, str(ctx.params["repository"]),
                                           dry_run=bool(ctx.params.get("dry_run")), log=ctx.log,
                                           checkpoint=ctx.checkpoint)

    return handle


def retention_launcher(queue: JobQueue, queries: RetentionQueries) -> Launcher:
    async def launch(policy_id: int, params: dict[str, Any], trigger: str) -> int | None:
        async with queries.db.read() as conn:
            row = await queries.policy(conn, policy_id)
        if row is None:
            log.info("retention policy %d is gone; nothing launched", policy_id)
            if trigger == "SCHEDULE":
                await queries.forget_schedule(RETENTION_VENDOR, policy_id)
            return None
        if trigger == "SCHEDULE" and any(e.status not in FINAL
                                         for e in await queue.executions(RETENTION_VENDOR, policy_id)):
            log.info("retention policy %d is still running; this schedule tick is skipped", policy_id)
            return None
        policy = parse_policy(row.body, project_id=row.project_id).with_id(policy_id)
        dry_run = bool(params.get("dry_run", False))
        snapshot = policy.as_json()
        work = [(RETENTION_TASK, {"policy_id": policy_id, "repository": name, "dry_run": dry_run, "policy": snapshot})
                for name in await queries.repositories(policy.project_id)
                if policy.rules_for(relative_repository(name)[1])]
        return await queue.submit(RETENTION_VENDOR, vendor_id=policy_id, trigger=trigger,
                                  params={"dry_run": dry_run}, work=work, max_attempts=2)

    return launch

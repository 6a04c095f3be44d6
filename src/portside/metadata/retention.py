"""Retention policies, the repository snapshots retention plans on, and its guarded deletes.

A delete re-checks, under the manifest's row lock and in one transaction, that nothing changed since
the plan: the manifest is still there with the same push time and the same tags, and no index of the
repository lists it. Anything else means someone pushed meanwhile; the artifact is then skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from portside.metadata.database import Database
from portside.metadata.models import (
    ArtifactLabel,
    Label,
    Manifest,
    ManifestReference,
    Repository,
    RetentionPolicy,
    Schedule,
    Tag,
    Task,
    table,
)
from portside.metadata.queries import now

policies = table(RetentionPolicy)
repos = table(Repository)
manifests = table(Manifest)
refs = table(ManifestReference)
tags = table(Tag)
tasks_table = table(Task)
schedules = table(Schedule)
artifact_labels = table(ArtifactLabel)
labels = table(Label)


@dataclass(frozen=True, slots=True)
class PolicyRow:
    id: int
    project_id: int
    body: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ManifestState:
    id: int
    digest: str
    pushed_at: datetime
    pulled_at: datetime | None
    subject: str | None
    children: tuple[str, ...]
    tags: tuple[tuple[str, datetime], ...]  # (name, updated_at)
    labels: tuple[str, ...] = ()  # names of the labels it carries


@dataclass(frozen=True, slots=True)
class RepositoryState:
    id: int
    name: str
    project_id: int | None
    manifests: list[ManifestState]


def aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _policy(r: Any) -> PolicyRow:
    return PolicyRow(r.id, r.project_id, json.loads(r.policy or "{}"), r.created_at, r.updated_at)


class RetentionQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- policies ------------------------------------------------------------------------------

    async def policy(self, conn: AsyncConnection, policy_id: int) -> PolicyRow | None:
        row = (await conn.execute(select(policies).where(policies.c.id == policy_id))).first()
        return _policy(row) if row else None

    async def policy_of_project(self, conn: AsyncConnection, project_id: int) -> PolicyRow | None:
        row = (await conn.execute(select(policies).where(policies.c.project_id == project_id))).first()
        return _policy(row) if row else None

    async def create_policy(self, conn: AsyncConnection, project_id: int, body: dict[str, Any]) -> int:
        ts = now()
        result = await conn.execute(insert(policies).values(
            project_id=project_id, policy=json.dumps(body), created_at=ts, updated_at=ts).returning(policies.c.id))
        return int(result.scalar_one())

    async def update_policy(self, conn: AsyncConnection, policy_id: int, body: dict[str, Any]) -> None:
        await conn.execute(update(policies).where(policies.c.id == policy_id).values(
            policy=json.dumps(body), updated_at=now()))

    async def delete_policy(self, conn: AsyncConnection, policy_id: int) -> None:
        await conn.execute(delete(policies).where(policies.c.id == policy_id))

    async def forget_schedule(self, vendor_type: str, policy_id: int) -> None:
        """Drop the schedule of a policy that no longer exists (its project was deleted)."""
        async with self.db.write() as conn:
            await conn.execute(delete(schedules).where(schedules.c.vendor_type == vendor_type,
                                                       schedules.c.vendor_id == policy_id))

    # -- what a run looks at -------------------------------------------------------------------

    async def repositories(self, project_id: int) -> list[str]:
        async with self.db.read() as conn:
            query = select(repos.c.name).where(repos.c.project_id == project_id).order_by(repos.c.name)
            return list((await conn.execute(query)).scalars())

    async def repository_state(self, conn: AsyncConnection, name: str) -> RepositoryState | None:
        repo = (await conn.execute(select(repos.c.id, repos.c.name, repos.c.project_id).where(
            repos.c.name == name))).first()
        if repo is None:
            return None
        rows = (await conn.execute(select(
            manifests.c.id, manifests.c.digest, manifests.c.pushed_at, manifests.c.pulled_at,
            manifests.c.subject_digest).where(manifests.c.repository_id == repo.id).order_by(manifests.c.id))).all()
        children: dict[int, list[str]] = {}
        listed = (select(refs.c.manifest_id, refs.c.digest)
                  .select_from(refs.join(manifests, manifests.c.id == refs.c.manifest_id))
                  .where(manifests.c.repository_id == repo.id, refs.c.kind == "manifest")
                  .order_by(refs.c.manifest_id, refs.c.digest))
        for ref in await conn.execute(listed):
            children.setdefault(ref.manifest_id, []).append(ref.digest)
        tag_rows: dict[int, list[tuple[str, datetime]]] = {}
        tagged = select(tags.c.name, tags.c.manifest_id, tags.c.updated_at).where(
            tags.c.repository_id == repo.id).order_by(tags.c.name)
        for t in await conn.execute(tagged):
            tag_rows.setdefault(t.manifest_id, []).append((t.name, aware(t.updated_at)))
        label_names: dict[int, list[str]] = {}
        labelled = (select(artifact_labels.c.manifest_id, labels.c.name)
                    .select_from(artifact_labels.join(labels, labels.c.id == artifact_labels.c.label_id)
                                 .join(manifests, manifests.c.id == artifact_labels.c.manifest_id))
                    .where(manifests.c.repository_id == repo.id).order_by(labels.c.name))
        for la in await conn.execute(labelled):
            label_names.setdefault(la.manifest_id, []).append(la.name)
        states = [ManifestState(r.id, r.digest, aware(r.pushed_at), aware(r.pulled_at) if r.pulled_at else None,
                                r.subject_digest, tuple(children.get(r.id, ())), tuple(tag_rows.get(r.id, ())),
                                tuple(label_names.get(r.id, ())))
                  for r in rows]
        return RepositoryState(repo.id, repo.name, repo.project_id, states)

    async def delete_if_unchanged(self, conn: AsyncConnection, repo_id: int, manifest_id: int, digest: str,
                                  expected_tags: frozenset[str], pushed_at: datetime) -> str | None:
        """Delete the manifest and its tags unless it changed since the plan; returns why it was skipped."""
        query = select(manifests.c.id, manifests.c.pushed_at).where(
            manifests.c.id == manifest_id, manifests.c.repository_id == repo_id, manifests.c.digest == digest)
        if self.db.dialect == "postgresql":
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            return "already gone"
        if aware(row.pushed_at) != aware(pushed_at):
            return "pushed again since the plan"
        names = await conn.execute(select(tags.c.name).where(tags.c.manifest_id == manifest_id))
        current = frozenset(names.scalars())
        if current != expected_tags:
            return f"its tags changed since the plan (now: {', '.join(sorted(current)) or 'none'})"
        parent = (await conn.execute(
            select(manifests.c.digest)
            .select_from(refs.join(manifests, manifests.c.id == refs.c.manifest_id))
            .where(manifests.c.repository_id == repo_id, refs.c.digest == digest, refs.c.kind == "manifest",
                   manifests.c.id != manifest_id)
            .limit(1))).scalar()
        if parent is not None:
            return f"index {parent} lists it"
        await conn.execute(delete(tags).where(tags.c.manifest_id == manifest_id))
        await conn.execute(delete(refs).where(refs.c.manifest_id == manifest_id))
        await conn.execute(delete(manifests).where(manifests.c.id == manifest_id))
        return None

    async def task_results(self, execution_id: int) -> dict[int, dict[str, Any]]:
        """The recorded result of each task of an execution (the job queue's rows carry no result)."""
        async with self.db.read() as conn:
            rows = await conn.execute(select(tasks_table.c.id, tasks_table.c.result).where(
                tasks_table.c.execution_id == execution_id))
            return {int(r.id): json.loads(r.result or "{}") for r in rows}

"""Reads and writes behind the management API's repositories, artifacts and tags (SQLAlchemy Core).

An *artifact* is a manifest row; a *top-level* artifact is one that no index in its repository lists
and that is not an accessory (a referrer whose subject is in the repository) - Harbor lists only
those unless asked for `base=*`. Write methods take the open transaction from `Database.write()`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, exists, func, insert, not_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from portside.errors import Invalid
from portside.listquery import ListQuery, Term
from portside.metadata.database import Database
from portside.metadata.listing import Field, Listing, condition, fetch_page, ordered
from portside.metadata.models import (
    ArtifactLabel,
    Manifest,
    ManifestReference,
    Repository,
    RepositoryBlob,
    Tag,
    table,
)
from portside.metadata.queries import now
from portside.numbers import parse_int

repos = table(Repository)
manifests = table(Manifest)
refs = table(ManifestReference)
tags = table(Tag)
links = table(RepositoryBlob)
artifact_labels = table(ArtifactLabel)

CHUNK = 500  # keep IN (...) lists well under every backend's bound-parameter limit


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    id: int
    name: str
    project_id: int | None
    description: str
    pull_count: int
    created_at: datetime
    updated_at: datetime
    artifact_count: int


@dataclass(frozen=True, slots=True)
class ArtifactRow:
    """A manifest without its bytes."""

    id: int
    repository_id: int
    repository_name: str
    project_id: int | None
    digest: str
    manifest_media_type: str
    artifact_type: str | None
    subject_digest: str | None
    annotations: dict[str, str]
    manifest_size: int
    pushed_at: datetime
    pulled_at: datetime | None


@dataclass(frozen=True, slots=True)
class TagRow:
    repository_id: int
    name: str
    manifest_id: int
    updated_at: datetime


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), CHUNK):
        yield values[i:i + CHUNK]


def top_level(m: Any) -> ColumnElement[bool]:
    """SQL condition on a manifests table (or alias) `m`: neither listed by an index in its repository
    nor an accessory of an artifact in its repository."""
    parent = manifests.alias("parent_manifest")
    subject = manifests.alias("subject_manifest")
    is_child = exists().where(
        refs.c.kind == "manifest", refs.c.digest == m.c.digest, refs.c.manifest_id == parent.c.id,
        parent.c.repository_id == m.c.repository_id,
    )
    is_accessory = and_(m.c.subject_digest.is_not(None), exists().where(
        subject.c.repository_id == m.c.repository_id, subject.c.digest == m.c.subject_digest))
    return and_(not_(is_child), not_(is_accessory))


def _tags_condition(term: Term) -> ColumnElement[bool]:
    """`tags=*` tagged, `tags=nil` untagged, `tags=v` / `tags=~v` / `tags={a b}` some tag matches."""
    tagged = exists().where(tags.c.manifest_id == manifests.c.id)
    if term.kind == "exact" and term.values == ("*",):
        return tagged
    if term.kind == "exact" and term.values == ("nil",):
        return not_(tagged)
    return exists().where(tags.c.manifest_id == manifests.c.id, condition(Field(tags.c.name), term))


def _labels_condition(term: Term) -> ColumnElement[bool]:
    """`labels=(1 2)` or `labels=1`: the artifact carries every one of these labels (Harbor's AND list)."""
    ids = {parse_int(v, low=1) for v in term.values}
    if term.kind not in ("exact", "any") or None in ids or not ids:
        raise Invalid("filter labels by id: labels=ID or labels=(ID1 ID2), the artifact carrying all of them")
    return and_(true(), *(exists().where(artifact_labels.c.manifest_id == manifests.c.id,
                                         artifact_labels.c.label_id == i) for i in sorted(i for i in ids if i)))


def _base_condition(term: Term) -> ColumnElement[bool]:
    if term.kind != "exact" or term.values != ("*",):
        raise Invalid('the value of "base" can only be "*" (exact match)')
    return true()  # every artifact, not just the top-level ones: see `artifact_page`


_ARTIFACT_FIELDS = {
    "digest": Field(manifests.c.digest), "manifest_media_type": Field(manifests.c.media_type),
    "artifact_type": Field(manifests.c.artifact_type), "push_time": Field(manifests.c.pushed_at, kind="time"),
    "pull_time": Field(manifests.c.pulled_at, kind="time"), "id": Field(manifests.c.id, kind="int"),
    "tags": Field(condition=_tags_condition), "labels": Field(condition=_labels_condition),
    "base": Field(condition=_base_condition),
}
_ARTIFACT_SORTABLE = {"push_time": manifests.c.pushed_at, "pull_time": manifests.c.pulled_at, "id": manifests.c.id,
                      "digest": manifests.c.digest, "repository_name": repos.c.name}
DERIVED = frozenset({"media_type", "type"})  # read from the manifest's content, filtered after the SQL
REPOSITORY_ARTIFACTS = Listing("artifacts", _ARTIFACT_FIELDS, _ARTIFACT_SORTABLE, (("push_time", True), ("id", True)),
                               manifests.c.id, passive=DERIVED)
PROJECT_ARTIFACTS = Listing(
    "artifacts", {**_ARTIFACT_FIELDS, "repository_name": Field(repos.c.name)}, _ARTIFACT_SORTABLE,
    REPOSITORY_ARTIFACTS.default_sort, manifests.c.id, passive=DERIVED)


_counted = manifests.alias("counted")
ARTIFACT_COUNT = (select(func.count()).select_from(_counted)
                  .where(_counted.c.repository_id == repos.c.id, top_level(_counted)).scalar_subquery())
REPOSITORIES = Listing(
    "repositories",
    fields={"name": Field(repos.c.name), "id": Field(repos.c.id, kind="int"),
            "project_id": Field(repos.c.project_id, kind="int"),
            "creation_time": Field(repos.c.created_at, kind="time"),
            "update_time": Field(repos.c.updated_at, kind="time"),
            "pull_count": Field(repos.c.pull_count, kind="int"), "artifact_count": Field(ARTIFACT_COUNT, kind="int")},
    sortable={"name": repos.c.name, "creation_time": repos.c.created_at, "update_time": repos.c.updated_at,
              "pull_count": repos.c.pull_count, "artifact_count": ARTIFACT_COUNT, "id": repos.c.id},
    default_sort=(("creation_time", True), ("id", True)),
    unique=repos.c.id,
)


def _artifact(row: Any) -> ArtifactRow:
    return ArtifactRow(
        row.id, row.repository_id, row.repository_name, row.project_id, row.digest, row.media_type,
        row.artifact_type, row.subject_digest, json.loads(row.annotations) if row.annotations else {},
        row.size, row.pushed_at, row.pulled_at,
    )


def _repository(row: Any) -> RepositoryRow:
    return RepositoryRow(row.id, row.name, row.project_id, row.description or "", int(row.pull_count or 0),
                         row.created_at, row.updated_at, int(row.artifact_count or 0))


class ArtifactQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- repositories --------------------------------------------------------------------------

    def _repositories(self) -> Select[Any]:
        return select(repos.c.id, repos.c.name, repos.c.project_id, repos.c.description, repos.c.pull_count,
                      repos.c.created_at, repos.c.updated_at, ARTIFACT_COUNT.label("artifact_count"))

    async def repository_page(self, conn: AsyncConnection, query: ListQuery,
                              project_ids: Collection[int] | None) -> tuple[list[RepositoryRow], int]:
        """One page of the repositories of the given projects (None: of every project) and the number of
        all matches."""
        extra = [repos.c.project_id.is_not(None)]
        if project_ids is not None:
            extra.append(repos.c.project_id.in_(sorted(project_ids)))
        rows, total = await fetch_page(conn, REPOSITORIES, self._repositories(), query, extra)
        return [_repository(r) for r in rows], total

    async def repository(self, conn: AsyncConnection, name: str) -> RepositoryRow | None:
        row = (await conn.execute(self._repositories().where(repos.c.name == name))).first()
        return _repository(row) if row else None

    async def set_description(self, conn: AsyncConnection, repo_id: int, description: str) -> None:
        await conn.execute(update(repos).where(repos.c.id == repo_id).values(description=description,
                                                                              updated_at=now()))

    async def delete_repository(self, conn: AsyncConnection, repo_id: int) -> None:
        """The repository row and everything in it (explicitly: SQLite cascades are not relied on)."""
        in_repo = select(manifests.c.id).where(manifests.c.repository_id == repo_id)
        await conn.execute(delete(tags).where(tags.c.repository_id == repo_id))
        await conn.execute(delete(refs).where(refs.c.manifest_id.in_(in_repo)))
        await conn.execute(delete(manifests).where(manifests.c.repository_id == repo_id))
        await conn.execute(delete(links).where(links.c.repository_id == repo_id))
        await conn.execute(delete(repos).where(repos.c.id == repo_id))

    # -- artifacts -----------------------------------------------------------------------------

    def _artifacts(self) -> Select[Any]:
        return (
            select(manifests.c.id, manifests.c.repository_id, repos.c.name.label("repository_name"),
                   repos.c.project_id, manifests.c.digest, manifests.c.media_type, manifests.c.artifact_type,
                   manifests.c.subject_digest, manifests.c.annotations, manifests.c.size, manifests.c.pushed_at,
                   manifests.c.pulled_at)
            .select_from(manifests.join(repos, repos.c.id == manifests.c.repository_id))
        )

    async def artifact_page(self, conn: AsyncConnection, query: ListQuery, *, repository_id: int | None = None,
                            project_id: int | None = None, everything: bool = False,
                            ) -> tuple[list[ArtifactRow], int]:
        """One page of the artifacts of a repository or a project (top-level ones unless `base=*`) and
        the number of all matches; `everything` ignores the paging (for filters applied afterwards)."""
        listing = REPOSITORY_ARTIFACTS if repository_id is not None else PROJECT_ARTIFACTS
        extra: list[ColumnElement[bool]] = []
        if repository_id is not None:
            extra.append(manifests.c.repository_id == repository_id)
        if project_id is not None:
            extra.append(repos.c.project_id == project_id)
        if not query.has("base"):
            extra.append(top_level(manifests))
        if everything:
            rows = await conn.execute(ordered(listing, self._artifacts(), query, extra))
            found = [_artifact(r) for r in rows]
            return found, len(found)
        rows, total = await fetch_page(conn, listing, self._artifacts(), query, extra)
        return [_artifact(r) for r in rows], total

    async def artifact_by_digest(self, conn: AsyncConnection, repo_id: int, digest: str) -> ArtifactRow | None:
        row = (await conn.execute(self._artifacts().where(
            manifests.c.repository_id == repo_id, manifests.c.digest == digest))).first()
        return _artifact(row) if row else None

    async def artifacts_with_digest(self, conn: AsyncConnection, project_id: int, digest: str) -> list[ArtifactRow]:
        """The manifests with this digest in any repository of the project."""
        query = self._artifacts().where(repos.c.project_id == project_id, manifests.c.digest == digest)
        return [_artifact(r) for r in await conn.execute(query.order_by(manifests.c.id))]

    async def artifact_by_tag(self, conn: AsyncConnection, repo_id: int, tag: str) -> ArtifactRow | None:
        query = self._artifacts().join(tags, tags.c.manifest_id == manifests.c.id).where(
            tags.c.repository_id == repo_id, tags.c.name == tag)
        row = (await conn.execute(query)).first()
        return _artifact(row) if row else None

    async def artifacts_by_digests(self, conn: AsyncConnection, repo_id: int,
                                   digests: Iterable[str]) -> list[ArtifactRow]:
        wanted = sorted(set(digests))
        found: list[ArtifactRow] = []
        for part in _chunks(wanted):
            query = self._artifacts().where(manifests.c.repository_id == repo_id, manifests.c.digest.in_(part))
            found.extend(_artifact(r) for r in await conn.execute(query))
        return found

    async def contents(self, conn: AsyncConnection, ids: Iterable[int]) -> dict[int, bytes]:
        wanted = sorted(set(ids))
        found: dict[int, bytes] = {}
        for part in _chunks(wanted):
            query = select(manifests.c.id, manifests.c.content).where(manifests.c.id.in_(part))
            found.update({r.id: bytes(r.content) for r in await conn.execute(query)})
        return found

    async def accessories(self, conn: AsyncConnection, repo_ids: Iterable[int],
                          subjects: Iterable[str]) -> list[ArtifactRow]:
        """Manifests in these repositories whose subject is one of these digests."""
        repo_list, subject_list = sorted(set(repo_ids)), sorted(set(subjects))
        if not repo_list or not subject_list:
            return []
        found: list[ArtifactRow] = []
        for part in _chunks(subject_list):
            query = self._artifacts().where(manifests.c.repository_id.in_(repo_list),
                                            manifests.c.subject_digest.in_(part)).order_by(manifests.c.id)
            found.extend(_artifact(r) for r in await conn.execute(query))
        return found

    async def parents(self, conn: AsyncConnection, repo_id: int, digest: str) -> list[str]:
        """Digests of indexes in the repository that list this manifest."""
        query = (
            select(manifests.c.digest)
            .select_from(refs.join(manifests, manifests.c.id == refs.c.manifest_id))
            .where(manifests.c.repository_id == repo_id, refs.c.digest == digest, refs.c.kind == "manifest")
            .order_by(manifests.c.digest)
        )
        return list((await conn.execute(query)).scalars())

    async def delete_reference(self, conn: AsyncConnection, parent_id: int, child_digest: str) -> None:
        await conn.execute(delete(refs).where(refs.c.manifest_id == parent_id, refs.c.digest == child_digest,
                                              refs.c.kind == "manifest"))

    async def delete_artifact(self, conn: AsyncConnection, manifest_id: int) -> None:
        await conn.execute(delete(tags).where(tags.c.manifest_id == manifest_id))
        await conn.execute(delete(refs).where(refs.c.manifest_id == manifest_id))
        await conn.execute(delete(manifests).where(manifests.c.id == manifest_id))

    # -- tags ----------------------------------------------------------------------------------

    async def tags(self, conn: AsyncConnection, *, repository_id: int | None = None,
                   project_id: int | None = None, manifest_id: int | None = None) -> list[TagRow]:
        query = select(tags.c.repository_id, tags.c.name, tags.c.manifest_id, tags.c.updated_at).order_by(
            tags.c.repository_id, tags.c.name)
        if project_id is not None:
            query = query.select_from(tags.join(repos, repos.c.id == tags.c.repository_id)).where(
                repos.c.project_id == project_id)
        if repository_id is not None:
            query = query.where(tags.c.repository_id == repository_id)
        if manifest_id is not None:
            query = query.where(tags.c.manifest_id == manifest_id)
        return [TagRow(r.repository_id, r.name, r.manifest_id, r.updated_at) for r in await conn.execute(query)]

    async def tags_of(self, conn: AsyncConnection, manifest_ids: Iterable[int]) -> list[TagRow]:
        wanted = sorted(set(manifest_ids))
        found: list[TagRow] = []
        for part in _chunks(wanted):
            query = (select(tags.c.repository_id, tags.c.name, tags.c.manifest_id, tags.c.updated_at)
                     .where(tags.c.manifest_id.in_(part)).order_by(tags.c.name))
            found.extend(TagRow(r.repository_id, r.name, r.manifest_id, r.updated_at)
                         for r in await conn.execute(query))
        return found

    async def tag(self, conn: AsyncConnection, repo_id: int, name: str) -> TagRow | None:
        row = (await conn.execute(select(tags).where(tags.c.repository_id == repo_id, tags.c.name == name))).first()
        return TagRow(row.repository_id, row.name, row.manifest_id, row.updated_at) if row else None

    async def create_tag(self, conn: AsyncConnection, repo_id: int, name: str, manifest_id: int) -> None:
        """A plain insert: raises WriteConflict (from `Database.write`) when the repository already has the tag."""
        await conn.execute(insert(tags).values(repository_id=repo_id, name=name, manifest_id=manifest_id,
                                               updated_at=now()))

    async def delete_tag(self, conn: AsyncConnection, repo_id: int, name: str) -> bool:
        result = await conn.execute(delete(tags).where(tags.c.repository_id == repo_id, tags.c.name == name))
        return bool(result.rowcount)

"""Project storage quotas: refuse a push that would take a project over its limit.

A project's usage is the size of the distinct digests it holds (blobs linked into its repositories,
and its manifests); a blob shared by many repositories or manifests of one project counts once, and
only content new to the project adds to it. The check runs inside the push's own write transaction,
before anything is linked, with the project row locked (PostgreSQL; SQLite runs one writer at a
time anyway), so concurrent pushes into one project are checked one after the other and can never
overshoot together. Projects without a limit skip all of it: whether a project has one is cached
like the project rows themselves, until a write to projects (any worker, any replica) invalidates it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from portside.errors import Invalid, NotFound, QuotaExceeded
from portside.metadata.changes import ACCESS
from portside.metadata.database import Database
from portside.metadata.quotas import QuotaQueries
from portside.metadata.quotas import QuotaRow as QuotaRow  # the row type the API shows
from portside.metadata.readcache import ReadCache
from portside.numbers import INT64_MAX, parse_int
from portside.oci import mediatypes as mt
from portside.oci.manifest import ParsedManifest

UNLIMITED = -1
RESOURCES = frozenset({"storage"})
SORT_KEYS = {"hard.storage": lambda q: q.hard, "used.storage": lambda q: q.used}


def project_of(repository: str) -> str | None:
    head, sep, _ = repository.partition("/")
    return head if sep else None


@dataclass(frozen=True, slots=True)
class QuotaFilter:
    reference: str | None = None
    reference_id: str | None = None
    sort: str | None = None


class QuotaService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.queries = QuotaQueries(db)
        self._limited = ReadCache(db.changes, slot=ACCESS, max_entries=10_000)  # project name -> has a limit

    # -- enforcement, inside the push's transaction ---------------------------------------------

    async def check(self, conn: AsyncConnection, repository: str, additions: Iterable[tuple[str, int]]) -> None:
        """Raise QuotaExceeded when linking these (digest, size) pairs into `repository` would take its
        project over the limit. Digests the project already holds add nothing."""
        project = project_of(repository)
        if project is None:
            return
        loaded: list[tuple[int, int] | None] = []  # the row a cache miss read (and locked) just now

        async def has_limit() -> bool:
            loaded.append(await self.queries.limit_for_push(conn, project))
            return loaded[0] is not None

        if not await self._limited.get_or_load(project, has_limit):
            return
        # A cached "limited" still needs the row read now, locked, for the current limit.
        limited = loaded[0] if loaded else await self.queries.limit_for_push(conn, project)
        if limited is None:
            return
        project_id, limit = limited
        sizes = dict(additions)
        present = await self.queries.present(conn, project_id, sizes)
        adding = sum(size for digest, size in sizes.items() if digest not in present)
        if adding == 0:
            return
        used = await self.queries.usage(conn, project_id)
        if used + adding > limit:
            raise QuotaExceeded(
                f"quota exceeded: adding {adding} bytes to project {project} would use {used + adding} of its "
                f"{limit}-byte limit",
                detail={"project": project, "limit": limit, "used": used, "adding": adding},
            )

    async def check_blob(self, conn: AsyncConnection, repository: str, digest: str, size: int) -> None:
        await self.check(conn, repository, [(digest, size)])

    async def check_manifest(self, conn: AsyncConnection, repository: str, digest: str, size: int,
                             parsed: ParsedManifest) -> None:
        """The manifest itself, and the empty-JSON config blob the push links on its own when used.
        Every other blob it names must already be linked in the repository, so is already counted."""
        additions = [(digest, size)]
        if parsed.config is not None and parsed.config.digest == mt.EMPTY_JSON_DIGEST:
            additions.append((mt.EMPTY_JSON_DIGEST, len(mt.EMPTY_JSON)))
        await self.check(conn, repository, additions)

    # -- reading and setting --------------------------------------------------------------------

    async def usage(self, project_id: int) -> int:
        async with self.db.read() as conn:
            return await self.queries.usage(conn, project_id)

    async def get(self, project_id: int) -> QuotaRow:
        found = await self.queries.quotas(project_id)
        if not found:
            raise NotFound(f"quota {project_id} not found")
        return found[0]

    async def list(self, flt: QuotaFilter) -> list[QuotaRow]:
        if flt.reference is not None and flt.reference != "project":
            return []
        project_id = None
        if flt.reference_id is not None:
            project_id = parse_int(flt.reference_id, low=1)
            if project_id is None:
                return []
        rows = await self.queries.quotas(project_id)
        if flt.sort:
            key = flt.sort.lstrip("-")
            if key not in SORT_KEYS:
                raise Invalid(f"cannot sort quotas by {key!r}; use one of {sorted(SORT_KEYS)} (prefix - to reverse)")
            rows.sort(key=SORT_KEYS[key], reverse=flt.sort.startswith("-"))
        return rows

    async def set_hard(self, project_id: int, hard: dict[str, int]) -> QuotaRow:
        unknown = set(hard) - RESOURCES
        if unknown:
            raise Invalid(f"unsupported quota resource(s) {sorted(unknown)}; only 'storage' is counted")
        if "storage" not in hard:
            raise Invalid("hard.storage is required: a number of bytes, or -1 for unlimited")
        storage = hard["storage"]
        if isinstance(storage, bool) or not isinstance(storage, int) or not UNLIMITED <= storage <= INT64_MAX:
            raise Invalid("hard.storage must be -1 (unlimited) or a number of bytes")
        if not await self.queries.set_limit(project_id, storage):
            raise NotFound(f"quota {project_id} not found")
        return await self.get(project_id)

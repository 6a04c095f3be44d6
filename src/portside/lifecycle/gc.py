"""Online garbage collection: mark what manifests reference, sweep the rest, never pause pushes.

Order of a run:
1. with `delete_untagged`, remove untagged manifests (not index children, not referrers of a live
   subject) pushed before the time window; repeat while that frees more;
2. for each candidate blob, in one transaction holding the blob row lock: drop repository links no
   manifest of that repository names, then, if no link is left, delete the row and the file;
3. files with no row (a crash between publish and commit) get an old row and go through step 2;
4. uploads that received no bytes for longer than the upload limit are purged.

The time window (hours) spares everything linked or pushed recently, so in-flight pushes, whose
layers are linked before their manifest arrives, are never broken.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from portside.metadata.database import Database
from portside.metadata.gc import GcQueries
from portside.oci.digest import Digest
from portside.storage.ports import BlobStore

Log = Callable[[str], None]
Checkpoint = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class GcOptions:
    delete_untagged: bool = False
    dry_run: bool = False
    time_window_hours: float = 2.0
    upload_max_age_hours: float = 24.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> GcOptions:
        return cls(
            delete_untagged=bool(params.get("delete_untagged", False)),
            dry_run=bool(params.get("dry_run", False)),
            time_window_hours=float(params.get("time_window", 2)),
            upload_max_age_hours=float(params.get("upload_max_age_hours", 24)),
        )


@dataclass
class GcReport:
    dry_run: bool
    deleted_manifests: list[str] = field(default_factory=list)
    deleted_blobs: int = 0
    deleted_links: int = 0
    freed_bytes: int = 0
    purged_uploads: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["deleted_manifest_count"] = len(self.deleted_manifests)
        return data


async def _nothing() -> None:
    return None


class GarbageCollector:
    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store
        self.queries = GcQueries(db)

    async def run(self, options: GcOptions, log: Log = lambda _: None,
                  checkpoint: Checkpoint = _nothing) -> GcReport:
        started = datetime.now(UTC)
        cutoff = started - timedelta(hours=options.time_window_hours)
        report = GcReport(options.dry_run)
        log(f"garbage collection started: delete_untagged={options.delete_untagged} dry_run={options.dry_run} "
            f"time_window={options.time_window_hours}h")
        if options.delete_untagged:
            await self._untagged(cutoff, options, report, log, checkpoint)
        await self._orphan_files(cutoff, options, log)
        for i, digest in enumerate(await self.queries.candidate_digests(cutoff)):
            if i % 100 == 0:
                await checkpoint()
            await self._collect(digest, cutoff, options, report, log)
        await self._uploads(started - timedelta(hours=options.upload_max_age_hours), options, report, log)
        log(f"done: {report.deleted_blobs} blob(s), {report.freed_bytes} bytes, "
            f"{len(report.deleted_manifests)} manifest(s), {report.deleted_links} link(s), "
            f"{report.purged_uploads} upload(s){' would be' if options.dry_run else ''} removed")
        return report

    async def _untagged(self, cutoff: datetime, options: GcOptions, report: GcReport, log: Log,
                        checkpoint: Checkpoint) -> None:
        seen: set[int] = set()
        while True:
            found = [m for m in await self.queries.untagged_manifests(cutoff) if m.id not in seen]
            if not found:
                return
            for m in found:
                seen.add(m.id)
                await checkpoint()
                if options.dry_run or await self.queries.delete_if_still_untagged(m.id, cutoff):
                    report.deleted_manifests.append(f"{m.repository}@{m.digest}")
                    log(f"{'would delete' if options.dry_run else 'deleted'} untagged manifest "
                        f"{m.repository}@{m.digest}")
            if options.dry_run:
                return  # deleting them would expose more; a dry run reports the first layer

    async def _collect(self, digest: str, cutoff: datetime, options: GcOptions, report: GcReport,
                       log: Log) -> None:
        async with self.db.write() as conn:
            locked = await self.queries.lock_blob(conn, digest)
            if locked is None:
                return
            size, last_linked = locked
            if options.dry_run:
                report.deleted_links += await self.queries.count_unreferenced_links(conn, digest, cutoff)
                return  # a dry run cannot know which unlinked blobs a real run would free beyond these
            report.deleted_links += await self.queries.drop_unreferenced_links(conn, digest, cutoff)
            if last_linked >= cutoff or await self.queries.has_links(conn, digest):
                return
            await self.queries.delete_blob_row(conn, digest)
            await self.store.delete(Digest.parse(digest))
        report.deleted_blobs += 1
        report.freed_bytes += size
        log(f"deleted blob {digest} ({size} bytes)")

    async def _orphan_files(self, cutoff: datetime, options: GcOptions, log: Log) -> None:
        known = await self.queries.known_digests()
        async for digest, size, mtime in self.store.iter_digests():
            if str(digest) in known or datetime.fromtimestamp(mtime, UTC) >= cutoff:
                continue
            log(f"found file without metadata: {digest}")
            if not options.dry_run:
                await self.queries.adopt_orphan(str(digest), size)

    async def _uploads(self, cutoff: datetime, options: GcOptions, report: GcReport, log: Log) -> None:
        # Uploads that received no bytes within the window: abandoned sessions, and directories a
        # crash left behind. A session lives in its directory, so removing that ends it.
        stale = [upload_id async for upload_id, last_active in self.store.iter_uploads()
                 if datetime.fromtimestamp(last_active, UTC) < cutoff]
        for upload_id in stale:
            report.purged_uploads += 1
            if options.dry_run:
                continue
            await self.store.cancel_upload(upload_id)
            log(f"purged upload session {upload_id}")

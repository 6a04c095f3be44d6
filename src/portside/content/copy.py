"""Server-side artifact copy (Harbor's CopyArtifact): the destination repository gets links to the
source's blobs and copies of its manifest rows - no blob byte moves.

As Harbor does, the copy takes the artifact's index children (children first), its accessories
(signatures, SBOMs... whose subject it is) and the tags the source artifact carries; a copy into a
repository that already holds the artifact only brings the tags over. It is checked as a push would be:
the destination project's quota for the content new to it (first, as a push does: the project row is
locked before any blob row), and its immutable tag rules for tags that would move. Everything happens in
one write transaction with the source's blob rows locked, so garbage collection cannot take a blob
between the read and the link, and a refused copy leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from portside.errors import Invalid, ManifestBlobUnknown, NotFound
from portside.metadata.artifacts import ArtifactQueries, ArtifactRow
from portside.metadata.queries import RegistryQueries
from portside.oci.digest import Digest, looks_like_digest
from portside.oci.manifest import ParsedManifest, parse_manifest
from portside.oci.names import check_name, check_tag

if TYPE_CHECKING:
    from portside.lifecycle.immutability import ImmutabilityService
    from portside.lifecycle.quotas import QuotaService

MAX_DEPTH = 8  # index nesting, as artifact assembly bounds it


@dataclass(frozen=True, slots=True)
class SourceRef:
    repository: str
    reference: str  # a tag or a digest

    @classmethod
    def parse(cls, value: str) -> SourceRef:
        """`project/repository:tag` or `project/repository@sha256:...`."""
        name, at, digest = value.partition("@")
        if at:
            if "/" not in name:
                raise Invalid(f"from={value!r}: the repository must be named with its project, project/repository")
            return cls(check_name(name), str(Digest.parse(digest)))
        name, colon, tag = value.rpartition(":")
        if not colon or "/" in tag or "/" not in name:
            raise Invalid(f"from={value!r} names no artifact: use project/repository:tag or project/repository@digest")
        return cls(check_name(name), check_tag(tag))


@dataclass(slots=True)
class _Manifest:
    row: ArtifactRow
    content: bytes
    parsed: ParsedManifest


@dataclass(frozen=True, slots=True)
class CopyResult:
    digest: str
    tags: tuple[str, ...]


class ArtifactCopier:
    def __init__(self, registry: RegistryQueries, artifacts: ArtifactQueries, *,
                 quotas: QuotaService | None = None, immutability: ImmutabilityService | None = None) -> None:
        self.registry = registry
        self.artifacts = artifacts
        self.db = registry.db
        self.quotas = quotas
        self.immutability = immutability

    async def copy(self, source: SourceRef, destination: str) -> CopyResult:
        check_name(destination)
        async with self.db.write(access=False) as conn:  # content only
            src_repo_id = await self.registry.repository_id(conn, source.repository)
            if src_repo_id is None:
                raise NotFound(f"repository {source.repository} not found")
            root = await self._resolve(conn, src_repo_id, source)
            ordered: list[_Manifest] = []
            await self._collect(conn, src_repo_id, root, ordered, set(), 0)
            for acc in await self.artifacts.accessories(conn, [src_repo_id], [root.digest]):
                if acc.id != root.id:
                    await self._collect(conn, src_repo_id, acc, ordered, {m.row.digest for m in ordered}, 1)
            tags = tuple(t.name for t in await self.artifacts.tags(conn, manifest_id=root.id))
            blobs = {d.digest: d.size for m in ordered for d in m.parsed.blobs}
            if self.quotas is not None:
                await self.quotas.check(conn, destination,
                                        [*blobs.items(), *((m.row.digest, len(m.content)) for m in ordered)])
            # The source's blob rows, locked as a push locks the ones it links; then the links.
            have = await self.registry.linked_digests(conn, src_repo_id, blobs, exclusive=True)
            missing = sorted(set(blobs) - set(have))
            if missing:
                raise ManifestBlobUnknown(f"{source.repository} lacks blob(s) its manifests name: "
                                          f"{', '.join(missing[:5])}")
            dst_repo_id = await self.registry.ensure_repository(conn, destination)
            for digest, size in sorted(have.items()):
                await self.registry.link_blob(conn, destination, digest, size)
            ids: dict[str, int] = {}
            for m in ordered:  # children before the indexes that list them
                refs = [(d.digest, "blob") for d in m.parsed.blobs] + [(d.digest, "manifest")
                                                                      for d in m.parsed.children]
                ids[m.row.digest] = await self.registry.store_manifest(
                    conn, dst_repo_id, digest=m.row.digest, media_type=m.row.manifest_media_type,
                    content=m.content, artifact_type=m.row.artifact_type, subject=m.row.subject_digest,
                    annotations=m.row.annotations or None, references=refs)
            if self.immutability is not None and tags:
                await self.immutability.check_retag(conn, dst_repo_id, destination, tags, ids[root.digest])
            for tag in tags:
                await self.registry.set_tag(conn, dst_repo_id, tag, ids[root.digest])
        return CopyResult(root.digest, tags)

    async def _resolve(self, conn: AsyncConnection, repo_id: int, source: SourceRef) -> ArtifactRow:
        if looks_like_digest(source.reference):
            found = await self.artifacts.artifact_by_digest(conn, repo_id, source.reference)
        else:
            found = await self.artifacts.artifact_by_tag(conn, repo_id, source.reference)
        if found is None:
            sep = "@" if looks_like_digest(source.reference) else ":"
            raise NotFound(f"artifact {source.repository}{sep}{source.reference} not found")
        return found

    async def _collect(self, conn: AsyncConnection, repo_id: int, row: ArtifactRow, ordered: list[_Manifest],
                       seen: set[str], depth: int) -> None:
        """Append `row` after the manifests it lists (depth first), each once."""
        if row.digest in seen:
            return
        seen.add(row.digest)
        content = (await self.artifacts.contents(conn, [row.id]))[row.id]
        parsed = parse_manifest(content, row.manifest_media_type)
        if parsed.children:
            if depth >= MAX_DEPTH:
                raise NotFound(f"{row.repository_name}@{row.digest} nests indexes deeper than {MAX_DEPTH}")
            wanted = [d.digest for d in parsed.children]
            children = {c.digest: c for c in await self.artifacts.artifacts_by_digests(conn, repo_id, wanted)}
            absent = sorted(set(wanted) - set(children))
            if absent:
                raise ManifestBlobUnknown(f"{row.repository_name} lacks manifest(s) its index lists: "
                                          f"{', '.join(absent[:5])}")
            for digest in dict.fromkeys(wanted):
                await self._collect(conn, repo_id, children[digest], ordered, seen, depth + 1)
        ordered.append(_Manifest(row, content, parsed))

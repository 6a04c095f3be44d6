"""Artifacts as Harbor presents them: manifests with a type, a total size, attributes from the image
config, index references, tags and accessories; deletes that take children and accessories along.

Harbor's rules, followed here:
- the artifact's `media_type` is the config's media type (an index's own media type, or the
  `org.opencontainers.artifactType` annotation of an index, as CNAB bundles use);
- its size is the manifest's length plus its config and layer sizes; an index's is its length plus
  its children's sizes;
- deleting an artifact an index lists is refused; deleting an index also deletes the children no
  other index lists and no tag names, and an artifact's accessories go with it.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from portside.errors import BlobUnknown, Conflict, InUse, Invalid, NotFound
from portside.listquery import ListQuery, matches
from portside.metadata.artifacts import DERIVED, ArtifactQueries
from portside.metadata.artifacts import ArtifactRow as ArtifactRow  # the row types the API shows
from portside.metadata.artifacts import RepositoryRow as RepositoryRow
from portside.metadata.artifacts import TagRow as TagRow
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest, looks_like_digest
from portside.oci.names import check_tag
from portside.storage.ports import BlobStore

if TYPE_CHECKING:
    from portside.lifecycle.immutability import ImmutabilityService

IMAGE, CHART, CNAB, UNKNOWN = "IMAGE", "CHART", "CNAB", "UNKNOWN"
CNAB_MEDIA_TYPES = frozenset({"application/vnd.cnab.manifest.v1", "application/vnd.cnab.config.v1+json"})
IMAGE_CONFIGS = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})
# Harbor's default processor names unregistered types after the middle of `application/vnd.X.NAME.config.V+json`.
_TYPE_FROM_MEDIA_TYPE = re.compile(r"^application/vnd\.[^.]*\.(.*)\.config\.[^.]*\+json$")
ACCESSORY_TYPES = {
    "application/vnd.dev.cosign.artifact.sig.v1+json": "signature.cosign",
    "application/vnd.cncf.notary.signature": "signature.notation",
    "application/vnd.goharbor.harbor.sbom.v1": "sbom.harbor",
}
MAX_CONFIG_BYTES = 1 << 20  # larger configs are not read for extra_attrs
CONFIG_CACHE_ENTRIES = 2048
MAX_INDEX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Reference:
    parent_id: int
    child_id: int | None
    child_digest: str
    platform: dict[str, Any] | None
    annotations: dict[str, str] | None
    urls: list[str] | None


@dataclass(frozen=True, slots=True)
class Accessory:
    row: ArtifactRow
    subject_id: int
    size: int
    type: str


@dataclass(slots=True)
class Artifact:
    row: ArtifactRow
    media_type: str
    type: str
    size: int = 0
    extra_attrs: dict[str, Any] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)
    tags: list[TagRow] = field(default_factory=list)
    accessories: list[Accessory] = field(default_factory=list)


@dataclass(slots=True)
class Candidate:
    """A listed artifact before assembly: enough to filter, sort and page on."""

    row: ArtifactRow
    tags: list[TagRow]
    content: bytes | None = None

    @property
    def media_type(self) -> str:
        return classify(self.row.manifest_media_type, _doc(self.content))[0] if self.content else ""

    @property
    def type(self) -> str:
        return classify(self.row.manifest_media_type, _doc(self.content))[1] if self.content else ""


def _latest_in_repository(candidates: list[Candidate]) -> list[Candidate]:
    """The most recently pushed of each repository's candidates (the highest id among equals), in order."""
    latest: dict[int, Candidate] = {}
    for c in candidates:
        seen = latest.get(c.row.repository_id)
        if seen is None or (c.row.pushed_at, c.row.id) > (seen.row.pushed_at, seen.row.id):
            latest[c.row.repository_id] = c
    chosen = {id(c) for c in latest.values()}
    return [c for c in candidates if id(c) in chosen]


def _doc(content: bytes | None) -> dict[str, Any]:
    try:
        doc = json.loads(content or b"{}")
    except (ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def classify(manifest_media_type: str, doc: dict[str, Any]) -> tuple[str, str]:
    """(Harbor's artifact media_type, its type) from the manifest."""
    if manifest_media_type in mt.INDEXES or "manifests" in doc:
        annotations = doc.get("annotations") or {}
        media_type = annotations.get("org.opencontainers.artifactType") or manifest_media_type
        return media_type, (CNAB if media_type in CNAB_MEDIA_TYPES else IMAGE)
    config = doc.get("config") or {}
    media_type = str(config.get("mediaType") or "")
    if media_type in IMAGE_CONFIGS:
        return media_type, IMAGE
    if media_type == mt.HELM_CONFIG:
        return media_type, CHART
    if media_type in CNAB_MEDIA_TYPES:
        return media_type, CNAB
    match = _TYPE_FROM_MEDIA_TYPE.match(media_type)
    return media_type, (match.group(1).upper() if match else UNKNOWN)


def own_size(doc: dict[str, Any], manifest_size: int) -> int:
    """An image manifest's size: its own bytes, its config and its layers."""
    size = manifest_size
    config = doc.get("config")
    if isinstance(config, dict):
        size += int(config.get("size") or 0)
    for layer in doc.get("layers") or []:
        if isinstance(layer, dict):
            size += int(layer.get("size") or 0)
    return size


def accessory_type(row: ArtifactRow) -> str:
    return ACCESSORY_TYPES.get(row.artifact_type or "", "subject.accessory")


class ArtifactService:
    def __init__(self, queries: ArtifactQueries, store: BlobStore, *,
                 immutability: ImmutabilityService | None = None) -> None:
        self.queries = queries
        self.db = queries.db
        self.store = store
        self.immutability = immutability  # refuses deleting immutable tags and what they name
        self._configs: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # -- repositories --------------------------------------------------------------------------

    async def repository_page(self, query: ListQuery, project_ids: Collection[int] | None,
                              ) -> tuple[list[RepositoryRow], int]:
        """One page of the repositories of the given projects (None: of every project), and their number."""
        async with self.db.read() as conn:
            return await self.queries.repository_page(conn, query, project_ids)

    async def repository(self, project_id: int, name: str) -> RepositoryRow:
        async with self.db.read() as conn:
            repo = await self.queries.repository(conn, name)
        if repo is None or (repo.project_id is not None and repo.project_id != project_id):
            raise NotFound(f"repository {name} not found")
        return repo

    async def update_repository(self, repo: RepositoryRow, *, description: str | None) -> None:
        if description is None:
            return
        async with self.db.write() as conn:
            await self.queries.set_description(conn, repo.id, description)

    async def delete_repository(self, repo: RepositoryRow) -> None:
        async with self.db.write() as conn:
            if self.immutability is not None:
                await self.immutability.check_repository_delete(conn, repo.id, repo.name)
            await self.queries.delete_repository(conn, repo.id)

    # -- listing -------------------------------------------------------------------------------

    async def listing(self, query: ListQuery, *, repository_id: int | None = None, project_id: int | None = None,
                      latest_in_repository: bool = False) -> tuple[list[Candidate], int]:
        """One page of the artifacts of a repository or a project, with their tags, and the number of all
        matches. Filtering, sorting and paging are SQL's, except for the types read from the manifests
        (`media_type`, `type`) and `latest_in_repository`: those select among the SQL's matches here."""
        latest = latest_in_repository and query.has("media_type", "artifact_type")
        afterwards = query.has(*DERIVED) or latest
        async with self.db.read() as conn:
            rows, total = await self.queries.artifact_page(conn, query, repository_id=repository_id,
                                                           project_id=project_id, everything=afterwards)
            contents = await self.queries.contents(conn, (r.id for r in rows)) if query.has(*DERIVED) else {}
            candidates = [Candidate(r, [], contents.get(r.id)) for r in rows]
            if afterwards:
                candidates = [c for c in candidates
                              if all(matches(t, getattr(c, t.key)) for t in query.terms if t.key in DERIVED)]
                if latest:
                    candidates = _latest_in_repository(candidates)
                total = len(candidates)
                candidates = candidates[query.offset:query.offset + query.limit]
            tag_rows = await self.queries.tags_of(conn, (c.row.id for c in candidates))
        by_manifest: dict[int, list[TagRow]] = {}
        for t in tag_rows:
            by_manifest.setdefault(t.manifest_id, []).append(t)
        for c in candidates:
            c.tags = by_manifest.get(c.row.id, [])
        return candidates, total

    async def resolve(self, repo: RepositoryRow, reference: str) -> ArtifactRow:
        async with self.db.read() as conn:
            return await self._resolve(conn, repo, reference)

    async def _resolve(self, conn: AsyncConnection, repo: RepositoryRow, reference: str) -> ArtifactRow:
        if looks_like_digest(reference):
            found = await self.queries.artifact_by_digest(conn, repo.id, str(Digest.parse(reference)))
        else:
            found = await self.queries.artifact_by_tag(conn, repo.id, check_tag(reference))
        if found is None:
            raise NotFound(f"artifact {repo.name}{'@' if looks_like_digest(reference) else ':'}{reference} not found")
        return found

    async def get(self, repo: RepositoryRow, reference: str, *, with_accessory: bool = False) -> Artifact:
        async with self.db.read() as conn:
            row = await self._resolve(conn, repo, reference)
            tag_rows = await self.queries.tags(conn, manifest_id=row.id)
        return (await self.assemble([Candidate(row, tag_rows)], with_accessory=with_accessory))[0]

    async def assemble(self, candidates: list[Candidate], *, with_accessory: bool = False) -> list[Artifact]:
        """Full artifacts for a page of candidates: sizes, extra_attrs, references, accessories."""
        async with self.db.read() as conn:
            missing = [c.row.id for c in candidates if c.content is None]
            loaded = await self.queries.contents(conn, missing) if missing else {}
            out = []
            for c in candidates:
                content = c.content if c.content is not None else loaded.get(c.row.id, b"{}")
                out.append(await self._assemble(conn, c.row, content, c.tags))
            if with_accessory and out:
                await self._add_accessories(conn, out)
        return out

    async def _assemble(self, conn: AsyncConnection, row: ArtifactRow, content: bytes,
                        tag_rows: list[TagRow]) -> Artifact:
        doc = _doc(content)
        media_type, kind = classify(row.manifest_media_type, doc)
        art = Artifact(row, media_type, kind, tags=tag_rows)
        if "manifests" in doc or row.manifest_media_type in mt.INDEXES:
            art.references, art.size = await self._index_parts(conn, row, doc, 0)
        else:
            art.size = own_size(doc, row.manifest_size)
            art.extra_attrs = await self._extra_attrs(doc, kind)
        return art

    async def _index_parts(self, conn: AsyncConnection, row: ArtifactRow, doc: dict[str, Any],
                           depth: int) -> tuple[list[Reference], int]:
        entries = [e for e in doc.get("manifests") or [] if isinstance(e, dict) and isinstance(e.get("digest"), str)]
        children = await self.queries.artifacts_by_digests(conn, row.repository_id, (e["digest"] for e in entries))
        by_digest = {c.digest: c for c in children}
        contents = await self.queries.contents(conn, (c.id for c in children))
        size = row.manifest_size
        references = []
        for entry in entries:
            child = by_digest.get(entry["digest"])
            if child is not None:
                child_doc = _doc(contents.get(child.id))
                if ("manifests" in child_doc or child.manifest_media_type in mt.INDEXES) and depth < MAX_INDEX_DEPTH:
                    size += (await self._index_parts(conn, child, child_doc, depth + 1))[1]
                else:
                    size += own_size(child_doc, child.manifest_size)
            references.append(Reference(
                parent_id=row.id, child_id=child.id if child else None, child_digest=entry["digest"],
                platform=entry.get("platform") if isinstance(entry.get("platform"), dict) else None,
                annotations=entry.get("annotations") or None, urls=entry.get("urls") or None,
            ))
        return references, size

    async def _add_accessories(self, conn: AsyncConnection, arts: list[Artifact]) -> None:
        found = await self.queries.accessories(conn, {a.row.repository_id for a in arts}, {a.row.digest for a in arts})
        contents = await self.queries.contents(conn, (f.id for f in found))
        for art in arts:
            for acc in found:
                if acc.repository_id == art.row.repository_id and acc.subject_digest == art.row.digest:
                    size = own_size(_doc(contents.get(acc.id)), acc.manifest_size)
                    art.accessories.append(Accessory(acc, art.row.id, size, accessory_type(acc)))

    async def _extra_attrs(self, doc: dict[str, Any], kind: str) -> dict[str, Any]:
        """From the config blob: an image's architecture, os, created, author and config; the whole
        config of a chart or of a type Harbor derives from its media type; nothing otherwise."""
        config = doc.get("config")
        if not isinstance(config, dict) or kind in (UNKNOWN, CNAB):
            return {}
        parsed = await self._config(str(config.get("digest") or ""), int(config.get("size") or 0))
        if kind != IMAGE:
            return parsed
        found = parsed.get("config")
        inner: dict[str, Any] = found if isinstance(found, dict) else {}
        author = parsed.get("author") or ""
        found_labels = inner.get("Labels")
        labels: dict[str, Any] = found_labels if isinstance(found_labels, dict) else {}
        if not author:
            author = labels.get("org.opencontainers.image.authors") or labels.get("maintainer") or ""
        return {"architecture": parsed.get("architecture", ""), "os": parsed.get("os", ""),
                "created": parsed.get("created"), "author": author, "config": inner}

    async def _config(self, digest: str, size: int) -> dict[str, Any]:
        """A config blob parsed as a JSON object ({} when absent, too large or not JSON); cached by digest,
        since content under a digest never changes."""
        cached = self._configs.get(digest)
        if cached is not None:
            self._configs.move_to_end(digest)
            return cached
        if size > MAX_CONFIG_BYTES:
            return {}
        try:
            parsed_digest = Digest.parse(digest)
            data = b"".join([chunk async for chunk in self.store.read(parsed_digest, 0, MAX_CONFIG_BYTES + 1)])
            value = json.loads(data) if len(data) <= MAX_CONFIG_BYTES else {}
        except (BlobUnknown, ValueError, RecursionError, OSError):  # a config nested too deeply has no attributes
            return {}
        parsed = value if isinstance(value, dict) else {}
        self._configs[digest] = parsed
        if len(self._configs) > CONFIG_CACHE_ENTRIES:
            self._configs.popitem(last=False)
        return parsed

    async def image_config(self, repo: RepositoryRow, reference: str) -> dict[str, Any] | None:
        """The parsed config of an image manifest ({} when unreadable); None for anything else (an index...)."""
        async with self.db.read() as conn:
            row = await self._resolve(conn, repo, reference)
            content = (await self.queries.contents(conn, [row.id])).get(row.id, b"{}")
        doc = _doc(content)
        config = doc.get("config")
        if "manifests" in doc or not isinstance(config, dict) or config.get("mediaType") not in IMAGE_CONFIGS:
            return None
        return await self._config(str(config.get("digest") or ""), int(config.get("size") or 0))

    # -- deletes -------------------------------------------------------------------------------

    async def delete(self, repo: RepositoryRow, reference: str) -> ArtifactRow:
        """Delete the artifact a digest or tag names, with its tags, accessories and unshared children."""
        async with self.db.write() as conn:
            root = await self._resolve(conn, repo, reference)
            await self._delete_deeply(conn, root, is_root=True, depth=0)
        return root

    async def delete_in_project(self, project_id: int, project_name: str, digest: str) -> ArtifactRow:
        """Delete by digest at the project level (what cleanup scripts call): the artifact goes from the
        one repository holding it; when several do, nothing is deleted and Conflict names them."""
        if not looks_like_digest(digest):
            raise Invalid(f"{digest!r} is not a digest: this endpoint deletes by digest (sha256:...)")
        parsed = str(Digest.parse(digest))
        async with self.db.write() as conn:
            found = await self.queries.artifacts_with_digest(conn, project_id, parsed)
            if not found:
                raise NotFound(f"artifact {parsed} not found in project {project_name}")
            holders = sorted({a.repository_name for a in found})
            if len(holders) > 1:
                raise Conflict(f"artifact {parsed} is in {len(holders)} repositories of project {project_name}: "
                               f"{', '.join(holders)}; delete it from one of them with DELETE "
                               "/api/v2.0/projects/{project}/repositories/{repository}/artifacts/{digest}")
            await self._delete_deeply(conn, found[0], is_root=True, depth=0)
        return found[0]

    async def _delete_deeply(self, conn: AsyncConnection, art: ArtifactRow, *, is_root: bool, depth: int) -> None:
        if not is_root and await self.queries.tags(conn, manifest_id=art.id):
            return  # a child someone tagged stays
        parents = await self.queries.parents(conn, art.repository_id, art.digest)
        if parents:
            if is_root:
                raise InUse(f"artifact {art.digest} is listed by index(es) {', '.join(parents[:5])} "
                            f"in {art.repository_name}; delete the index first")
            return  # another index still lists this child
        if self.immutability is not None:
            await self.immutability.check_manifest_delete(conn, art.repository_id, art.repository_name, art.id,
                                                          art.digest)
        for acc in await self.queries.accessories(conn, [art.repository_id], [art.digest]):
            if acc.id != art.id and depth < MAX_INDEX_DEPTH:
                await self._delete_deeply(conn, acc, is_root=True, depth=depth + 1)
        content = (await self.queries.contents(conn, [art.id])).get(art.id, b"{}")
        doc = _doc(content)
        listed = doc.get("manifests")
        entries: list[Any] = listed if isinstance(listed, list) else []
        digests = [e["digest"] for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str)]
        for child_digest in dict.fromkeys(digests):
            await self.queries.delete_reference(conn, art.id, child_digest)
        if digests and depth < MAX_INDEX_DEPTH:
            for child in await self.queries.artifacts_by_digests(conn, art.repository_id, digests):
                if child.id != art.id:
                    await self._delete_deeply(conn, child, is_root=False, depth=depth + 1)
        await self.queries.delete_artifact(conn, art.id)

    # -- tags ----------------------------------------------------------------------------------

    async def tags(self, art: ArtifactRow) -> list[TagRow]:
        async with self.db.read() as conn:
            return await self.queries.tags(conn, manifest_id=art.id)

    async def create_tag(self, repo: RepositoryRow, reference: str, name: str) -> tuple[ArtifactRow, TagRow]:
        check_tag(name)
        async with self.db.write(conflict=f"tag {name} already exists in {repo.name}") as conn:
            art = await self._resolve(conn, repo, reference)
            existing = await self.queries.tag(conn, repo.id, name)
            if existing is not None:
                where = "this artifact" if existing.manifest_id == art.id else "another artifact"
                raise Conflict(f"tag {name} already exists in {repo.name} (on {where})")
            await self.queries.create_tag(conn, repo.id, name, art.id)
            created = await self.queries.tag(conn, repo.id, name)
        assert created is not None
        return art, created

    async def delete_tag(self, repo: RepositoryRow, reference: str, name: str) -> ArtifactRow:
        async with self.db.write() as conn:
            art = await self._resolve(conn, repo, reference)
            existing = await self.queries.tag(conn, repo.id, name)
            if existing is None or existing.manifest_id != art.id:
                raise NotFound(f"tag {name} is not on artifact {art.digest} in {repo.name}")
            if self.immutability is not None:
                await self.immutability.check_tag_delete(conn, repo.id, repo.name, name)
            await self.queries.delete_tag(conn, repo.id, name)
        return art

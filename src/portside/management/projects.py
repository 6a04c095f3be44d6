"""Projects: create, read, update, delete with Harbor's rules."""

from __future__ import annotations

import re
from typing import Any

from portside.auth.access import project_visibility
from portside.auth.principal import Principal
from portside.auth.roles import Role
from portside.errors import Conflict, Invalid, NotEmpty, NotFound, WriteConflict
from portside.metadata.database import Database
from portside.metadata.projects import MemberRow as MemberRow  # the row types the API shows
from portside.metadata.projects import ProjectDetails as ProjectDetails
from portside.metadata.projects import ProjectQueries
from portside.metadata.projects import ProjectRow as ProjectRow
from portside.numbers import INT64_MAX, INT64_MIN, parse_int

PROJECT_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
# Harbor's project metadata keys; values are strings ("true"/"false", severities...).
METADATA_KEYS = frozenset({
    "public", "enable_content_trust", "enable_content_trust_cosign", "prevent_vul", "severity", "auto_scan",
    "auto_sbom_generation", "reuse_sys_cve_allowlist", "retention_id", "proxy_speed_kb",
})


def check_project_name(name: str) -> str:
    if not 1 <= len(name) <= 255 or not PROJECT_NAME.match(name):
        raise Invalid(f"invalid project name {name!r}: lowercase letters, digits and . _ - between them")
    return name


BOOLEAN_KEYS = frozenset({"public", "enable_content_trust", "enable_content_trust_cosign", "prevent_vul",
                          "auto_scan", "auto_sbom_generation", "reuse_sys_cve_allowlist"})
SEVERITIES = ("none", "low", "medium", "high", "critical")
# Kept by the retention endpoints; the metadata endpoints show it but do not write it (as Harbor).
READ_ONLY_KEYS = frozenset({"retention_id"})
_TRUE, _FALSE = frozenset({"1", "t", "true"}), frozenset({"0", "f", "false"})


def metadata_value(key: str, value: Any) -> str:
    """One metadata value in Harbor's stored form: "true"/"false", a lowercase severity, a number."""
    if key not in METADATA_KEYS:
        raise Invalid(f"unknown project metadata key {key!r}; known keys: {sorted(METADATA_KEYS)}")
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, (str, int)):
        text = str(value).strip()
    else:
        raise Invalid(f"metadata {key}: expected a string, got {type(value).__name__}")
    if key in BOOLEAN_KEYS:
        if text.lower() in _TRUE | _FALSE:
            return "true" if text.lower() in _TRUE else "false"
        raise Invalid(f"metadata {key}: {text!r} is not true or false")
    if key == "severity":
        if text.lower() in SEVERITIES:
            return text.lower()
        raise Invalid(f"metadata severity: {text!r} is not one of {', '.join(SEVERITIES)}")
    number = parse_int(text, low=0 if key == "retention_id" else INT64_MIN)
    if number is None:
        raise Invalid(f"metadata {key}: {text!r} is not a whole number")
    return str(number)


def normalize_metadata(metadata: dict[str, Any] | None) -> dict[str, str]:
    """Validated metadata; keys given as null are left unset."""
    return {key: metadata_value(key, value) for key, value in (metadata or {}).items() if value is not None}


class ProjectService:
    def __init__(self, db: Database, projects: ProjectQueries) -> None:
        self.db = db
        self.projects = projects

    async def create(self, name: str, *, public: bool | None, metadata: dict[str, Any] | None,
                     storage_limit: int | None, owner: Principal | None) -> ProjectRow:
        check_project_name(name)
        settings = normalize_metadata(metadata)
        is_public = public if public is not None else settings.get("public", "false") == "true"
        settings["public"] = str(is_public).lower()
        if storage_limit is not None and not -1 <= storage_limit <= INT64_MAX:
            raise Invalid("storage_limit must be -1 (unlimited) or a number of bytes")
        owner_id = owner.id if owner is not None and owner.kind == "user" else None
        already = f"project {name!r} already exists"
        async with self.db.write(conflict=already) as conn:
            if await self.projects.by_name(name, conn) is not None:
                raise Conflict(already)
            project_id = await self.projects.create(conn, name, public=is_public, owner_id=owner_id,
                                                    settings=settings,
                                                    storage_limit=-1 if storage_limit is None else storage_limit)
            if owner_id is not None:
                await self.projects.add_member(conn, project_id, owner_id, Role.PROJECT_ADMIN)
        found = await self.projects.by_id(project_id)
        assert found is not None
        return found

    async def create_on_push(self, name: str, owner_id: int | None) -> None:
        """A private project for a first push into a name that has none (open mode, or
        `auth.auto_create_projects`); pushers racing to create it all succeed."""
        try:
            async with self.db.write() as conn:
                if await self.projects.by_name(name, conn) is None:
                    await self.projects.create(conn, name, public=False, owner_id=owner_id)
        except WriteConflict:  # a concurrent first push created it (PostgreSQL does not lock the check)
            async with self.db.read() as conn:
                if await self.projects.by_name(name, conn) is None:
                    raise

    async def list_visible(self, principal: Principal) -> list[ProjectRow]:
        """The projects this principal may see, by name."""
        async with self.db.read() as conn:
            return await self.projects.visible(conn, **project_visibility(principal).as_query())

    async def details(self, principal: Principal, page: list[ProjectRow]) -> dict[int, ProjectDetails]:
        """Owner, repository count and the principal's role for a page of projects, in one query."""
        member_id = principal.id if principal.kind == "user" else None
        async with self.db.read() as conn:
            return await self.projects.details(conn, [p.id for p in page], member_id)

    async def find(self, name_or_id: str | int) -> ProjectRow | None:
        """The project of this name (a str) or id (an int), or None."""
        if isinstance(name_or_id, int):
            return await self.projects.by_id(name_or_id)
        return await self.projects.by_name(name_or_id)

    async def roles_of(self, principal: Principal) -> dict[int, int]:
        """Project id -> the principal's role there (users only; empty for others)."""
        if principal.kind != "user" or principal.id is None:
            return {}
        return await self.projects.roles_of_user(principal.id)

    async def repository_count(self, project: ProjectRow) -> int:
        async with self.db.read() as conn:
            return await self.projects.repository_count(conn, project.id)

    async def summary(self, project: ProjectRow) -> tuple[int, dict[int, int]]:
        """The project's repository count and how many members hold each role."""
        async with self.db.read() as conn:
            count = await self.projects.repository_count(conn, project.id)
            members = await self.projects.list_members(conn, project.id)
        return count, {role: sum(1 for m in members if m.role_id == role) for role in Role}

    async def get(self, name_or_id: str, *, is_name: bool | None = None) -> ProjectRow:
        """Look up by name, or by id when the value is numeric (Harbor's X-Is-Resource-Name decides)."""
        project = None
        project_id = parse_int(name_or_id, low=1) if is_name is not True else None
        if project_id is not None:
            project = await self.projects.by_id(project_id)
        if project is None and is_name is not False:
            project = await self.projects.by_name(name_or_id)
        if project is None:
            raise NotFound(f"project {name_or_id} not found")
        return project

    async def update(self, project: ProjectRow, *, public: bool | None = None,
                     metadata: dict[str, Any] | None = None, storage_limit: int | None = None) -> ProjectRow:
        settings = {**project.settings, **normalize_metadata(metadata)}
        values: dict[str, Any] = {}
        if metadata and "public" in metadata and public is None:
            public = settings["public"] == "true"
        if public is not None:
            values["public"] = public
            settings["public"] = str(public).lower()
        if storage_limit is not None:
            if not -1 <= storage_limit <= INT64_MAX:
                raise Invalid("storage_limit must be -1 (unlimited) or a number of bytes")
            values["storage_limit"] = storage_limit
        async with self.db.write() as conn:
            await self.projects.update(conn, project.id, settings=settings, **values)
        found = await self.projects.by_id(project.id)
        assert found is not None
        return found

    # -- metadata (Harbor's /projects/{id}/metadatas) ------------------------------------------------

    @staticmethod
    def metadata(project: ProjectRow) -> dict[str, str]:
        return {**project.settings, "public": str(project.public).lower()}

    async def add_metadata(self, project: ProjectRow, metadata: dict[str, Any]) -> ProjectRow:
        """Add keys the project does not have yet (Conflict for one it has)."""
        return await self._change_metadata(project, metadata, reject_existing=True)

    async def set_metadata(self, project: ProjectRow, name: str, metadata: dict[str, Any]) -> ProjectRow:
        """Set one key; the body names it, as in Harbor ({"auto_scan": "true"})."""
        if set(metadata) != {name}:
            raise Invalid(f"the body must hold exactly the key {name!r}, e.g. {{{name!r}: \"true\"}}")
        return await self._change_metadata(project, metadata, reject_existing=False)

    async def delete_metadata(self, project: ProjectRow, name: str) -> None:
        if name == "public":
            raise Invalid("public cannot be removed; set it to \"false\" instead")
        if name in READ_ONLY_KEYS:
            raise Invalid(f"{name} is kept by its own endpoints and cannot be removed here")
        async with self.db.write() as conn:
            current = await self.projects.by_id(project.id, conn)
            if current is None:
                raise NotFound(f"project {project.name} not found")
            if name not in current.settings:
                raise NotFound(f"project {project.name} has no metadata {name!r}")
            settings = {k: v for k, v in current.settings.items() if k != name}
            await self.projects.update(conn, project.id, settings=settings)

    async def _change_metadata(self, project: ProjectRow, metadata: dict[str, Any],
                               reject_existing: bool) -> ProjectRow:
        if not metadata:
            raise Invalid("the body must hold at least one metadata key")
        for key in metadata:
            if key in READ_ONLY_KEYS:
                raise Invalid(f"{key} is kept by its own endpoints and cannot be set here")
            if metadata[key] is None:
                raise Invalid(f"metadata {key}: expected a string, got null")
        values = normalize_metadata(metadata)
        async with self.db.write() as conn:
            current = await self.projects.by_id(project.id, conn)
            if current is None:
                raise NotFound(f"project {project.name} not found")
            present = set(self.metadata(current))
            if reject_existing and present & set(values):
                raise Conflict(f"project {project.name} already has metadata {', '.join(sorted(present & set(values)))}"
                               "; change it with PUT .../metadatas/{name}")
            settings = {**current.settings, **values}
            changes: dict[str, Any] = {"settings": settings}
            if "public" in values:
                changes["public"] = values["public"] == "true"
            await self.projects.update(conn, project.id, **changes)
        found = await self.projects.by_id(project.id)
        assert found is not None
        return found

    async def delete(self, project: ProjectRow) -> None:
        async with self.db.write() as conn:
            if await self.projects.repository_count(conn, project.id):
                raise NotEmpty(f"project {project.name!r} still has repositories; delete them first")
            await self.projects.delete(conn, project.id)

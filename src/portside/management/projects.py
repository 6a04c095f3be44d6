"""Projects: create, read, update, delete with Harbor's rules."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.exc import IntegrityError

from portside.auth.principal import Principal
from portside.auth.roles import Role
from portside.errors import Conflict, Invalid, NotFound
from portside.metadata.database import Database
from portside.metadata.projects import ProjectQueries, ProjectRow
from portside.numbers import INT64_MAX, parse_int

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


def normalize_metadata(metadata: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if key not in METADATA_KEYS:
            raise Invalid(f"unknown project metadata key {key!r}; known keys: {sorted(METADATA_KEYS)}")
        out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


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
        try:
            async with self.db.write() as conn:
                if await self.projects.by_name(name, conn) is not None:
                    raise Conflict(f"project {name!r} already exists")
                project_id = await self.projects.create(conn, name, public=is_public, owner_id=owner_id,
                                                        settings=settings,
                                                        storage_limit=-1 if storage_limit is None else storage_limit)
                if owner_id is not None:
                    await self.projects.add_member(conn, project_id, owner_id, Role.PROJECT_ADMIN)
        except IntegrityError:
            raise Conflict(f"project {name!r} already exists") from None
        found = await self.projects.by_id(project_id)
        assert found is not None
        return found

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

    async def delete(self, project: ProjectRow) -> None:
        async with self.db.write() as conn:
            if await self.projects.repository_count(conn, project.id):
                raise Conflict(f"project {project.name!r} still has repositories; delete them first")
            await self.projects.delete(conn, project.id)

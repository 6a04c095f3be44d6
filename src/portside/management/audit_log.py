"""Reading the audit log: which entries a caller may see, one page at a time.

System administrators see every entry; other callers see the entries of the projects where they may
list logs (`audit-log:list`), as Harbor does.
"""

from __future__ import annotations

from portside.auth.access import AccessService
from portside.auth.principal import Principal
from portside.auth.roles import PERMISSIONS, Role
from portside.listquery import ListQuery
from portside.metadata.audit import AuditQueries
from portside.metadata.audit import AuditRow as AuditRow  # the row type the API shows
from portside.metadata.database import Database
from portside.metadata.projects import ProjectQueries

LOG_PERMISSION = "audit-log:list"


class AuditLogService:
    def __init__(self, db: Database, entries: AuditQueries, projects: ProjectQueries, access: AccessService) -> None:
        self.db = db
        self.entries = entries
        self.projects = projects
        self.access = access

    async def loggable_project_ids(self, principal: Principal) -> set[int] | None:
        """Projects whose entries the caller may read; None means every entry."""
        if principal.sysadmin:
            return None
        if principal.kind == "user" and principal.id is not None:
            roles = await self.projects.roles_of_user(principal.id)
            return {pid for pid, role in roles.items() if role in Role._value2member_map_
                    and LOG_PERMISSION in PERMISSIONS[Role(role)]}
        async with self.db.read() as conn:
            every = await self.projects.all(conn)
        return {p.id for p in every if LOG_PERMISSION in await self.access.permissions(principal, p)}

    async def page_for(self, principal: Principal, query: ListQuery) -> tuple[list[AuditRow], int]:
        """A page of the entries the caller may read, and how many there are in all."""
        return await self.entries.search(query, await self.loggable_project_ids(principal))

    async def page_of_project(self, project_id: int, query: ListQuery) -> tuple[list[AuditRow], int]:
        """A page of one project's entries (the caller's right to read them is checked by the caller)."""
        return await self.entries.search(query, {project_id})

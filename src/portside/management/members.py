"""Project members: users holding a Harbor role in a project (groups are not supported)."""

from __future__ import annotations

from portside.auth.roles import Role
from portside.errors import Conflict, Invalid, NotFound
from portside.metadata.accounts import AccountQueries, UserRow
from portside.metadata.database import Database
from portside.metadata.projects import MemberRow, ProjectQueries, ProjectRow


def check_role(role_id: int | None) -> Role:
    try:
        return Role(role_id)  # type: ignore[arg-type]
    except ValueError:
        roles = ", ".join(f"{r.value} ({r.harbor_name})" for r in Role)
        raise Invalid(f"invalid role_id {role_id!r}: one of {roles}") from None


class MemberService:
    def __init__(self, db: Database, projects: ProjectQueries, accounts: AccountQueries) -> None:
        self.db = db
        self.projects = projects
        self.accounts = accounts

    async def members(self, project: ProjectRow, entity_name: str | None = None) -> list[MemberRow]:
        async with self.db.read() as conn:
            members = await self.projects.list_members(conn, project.id)
        if entity_name:
            members = [m for m in members if entity_name in m.username]
        return members

    async def get(self, project: ProjectRow, member_id: int) -> MemberRow:
        for member in await self.members(project):
            if member.id == member_id:
                return member
        raise NotFound(f"member {member_id} not found in project {project.name}")

    async def find_user(self, *, user_id: int | None, username: str | None) -> UserRow:
        user = None
        if user_id:
            user = await self.accounts.user_by_id(user_id)
        elif username:
            user = await self.accounts.user_by_name(username)
        else:
            raise Invalid("member_user needs a user_id or a username")
        if user is None:
            raise Invalid(f"user {user_id or username!r} does not exist")
        return user

    async def add(self, project: ProjectRow, user: UserRow, role_id: int | None) -> MemberRow:
        role = check_role(role_id)
        already = f"{user.username} is already a member of project {project.name}"
        async with self.db.write(conflict=already) as conn:
            if await self.projects.role_of(project.id, user.id) is not None:
                raise Conflict(already)
            member_id = await self.projects.add_member(conn, project.id, user.id, role)
        return await self.get(project, member_id)

    async def set_role(self, project: ProjectRow, member: MemberRow, role_id: int | None) -> MemberRow:
        role = check_role(role_id)
        async with self.db.write() as conn:
            await self.projects.update_member(conn, member.id, role)
        return await self.get(project, member.id)

    async def remove(self, member: MemberRow) -> None:
        async with self.db.write() as conn:
            await self.projects.remove_member(conn, member.id)

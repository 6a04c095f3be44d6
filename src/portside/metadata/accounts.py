"""Users and robot accounts."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from portside.metadata.changes import ACCESS
from portside.metadata.database import Database
from portside.metadata.models import Robot, SystemSetting, User, table
from portside.metadata.queries import now
from portside.metadata.readcache import ReadCache

users = table(User)
robots = table(Robot)
system_settings = table(SystemSetting)


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    username: str
    email: str
    realname: str
    comment: str
    password_hash: str
    sysadmin: bool
    created_at: datetime
    updated_at: datetime
    session_generation: int = 0


@dataclass(frozen=True, slots=True)
class RobotRow:
    id: int
    name: str
    description: str
    level: str
    project_id: int | None
    secret_hash: str
    disabled: bool
    duration: int
    expires_at: datetime | None
    permissions: list[dict[str, Any]]
    creator: str
    created_at: datetime
    updated_at: datetime


def _user(r: Any) -> UserRow:
    return UserRow(r.id, r.username, r.email, r.realname, r.comment, r.password_hash, bool(r.sysadmin),
                   r.created_at, r.updated_at, int(r.session_generation))


def _robot(r: Any) -> RobotRow:
    return RobotRow(r.id, r.name, r.description, r.level, r.project_id, r.secret_hash, bool(r.disabled),
                    r.duration, r.expires_at, json.loads(r.permissions or "[]"), r.creator, r.created_at,
                    r.updated_at)


class AccountQueries:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._users = ReadCache(db.changes, slot=ACCESS, max_entries=10_000)  # account writes bump ACCESS

    # -- users ---------------------------------------------------------------------------------

    async def user_by_name(self, username: str) -> UserRow | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        return _user(row) if row else None

    async def user_by_id(self, user_id: int) -> UserRow | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        return _user(row) if row else None

    async def user_by_id_cached(self, user_id: int) -> UserRow | None:
        """For checks on every request (portal sessions): valid until any account data changes, in
        any worker or replica."""
        return await self._users.get_or_load(user_id, lambda: self.user_by_id(user_id))

    async def list_users(self, conn: AsyncConnection) -> list[UserRow]:
        return [_user(r) for r in await conn.execute(select(users).order_by(users.c.id))]

    async def create_user(self, conn: AsyncConnection, username: str, password_hash: str, *,
                          sysadmin: bool = False, email: str = "", realname: str = "", comment: str = "") -> int:
        ts = now()
        result = await conn.execute(insert(users).values(
            username=username, password_hash=password_hash, sysadmin=sysadmin, email=email, realname=realname,
            comment=comment, created_at=ts, updated_at=ts,
            # Random, so a session of a deleted user never matches a new user given the same id.
            session_generation=secrets.randbelow(1 << 30),
        ).returning(users.c.id))
        return int(result.scalar_one())

    async def update_user(self, conn: AsyncConnection, user_id: int, *, end_sessions: bool = False,
                          **values: Any) -> None:
        """`end_sessions`: every portal session of the user stops working."""
        if end_sessions:
            values["session_generation"] = users.c.session_generation + 1
        await conn.execute(update(users).where(users.c.id == user_id).values(updated_at=now(), **values))

    async def delete_user(self, conn: AsyncConnection, user_id: int) -> None:
        await conn.execute(delete(users).where(users.c.id == user_id))

    # -- robots --------------------------------------------------------------------------------

    async def robot_by_name(self, name: str) -> RobotRow | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(robots).where(robots.c.name == name))).first()
        return _robot(row) if row else None

    async def robot_by_id(self, robot_id: int, conn: AsyncConnection | None = None) -> RobotRow | None:
        q = select(robots).where(robots.c.id == robot_id)
        if conn is not None:
            row = (await conn.execute(q)).first()
        else:
            async with self.db.read() as c:
                row = (await c.execute(q)).first()
        return _robot(row) if row else None

    async def list_robots(self, conn: AsyncConnection, project_id: int | None = None) -> list[RobotRow]:
        q = select(robots).order_by(robots.c.id)
        if project_id is not None:
            q = q.where(robots.c.project_id == project_id)
        return [_robot(r) for r in await conn.execute(q)]

    async def create_robot(self, conn: AsyncConnection, *, name: str, description: str, level: str,
                           project_id: int | None, secret_hash: str, duration: int, expires_at: datetime | None,
                           permissions: list[dict[str, Any]], creator: str, disabled: bool = False) -> int:
        ts = now()
        result = await conn.execute(insert(robots).values(
            name=name, description=description, level=level, project_id=project_id, secret_hash=secret_hash,
            duration=duration, expires_at=expires_at, permissions=json.dumps(permissions), creator=creator,
            disabled=disabled, created_at=ts, updated_at=ts,
        ).returning(robots.c.id))
        return int(result.scalar_one())

    async def update_robot(self, conn: AsyncConnection, robot_id: int, **values: Any) -> None:
        if "permissions" in values:
            values["permissions"] = json.dumps(values["permissions"])
        await conn.execute(update(robots).where(robots.c.id == robot_id).values(updated_at=now(), **values))

    async def delete_robot(self, conn: AsyncConnection, robot_id: int) -> None:
        await conn.execute(delete(robots).where(robots.c.id == robot_id))

    # -- shared settings -----------------------------------------------------------------------

    async def get_setting(self, key: str) -> str | None:
        async with self.db.read() as conn:
            return (await conn.execute(select(system_settings.c.value).where(system_settings.c.key == key))).scalar()

    async def put_setting_once(self, key: str, value: str) -> str:
        """Store `value` unless another replica got there first; return whichever value won."""
        async with self.db.write() as conn:
            existing = (await conn.execute(
                select(system_settings.c.value).where(system_settings.c.key == key))).scalar()
            if existing is not None:
                return str(existing)
            await conn.execute(insert(system_settings).values(key=key, value=value))
        return value

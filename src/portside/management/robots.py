"""Robot accounts (Harbor's robot v2): named permissions, expiry, disable, secrets shown once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from portside.auth.passwords import check_password_strength, generate_secret, hash_secret
from portside.auth.principal import ROBOT_PREFIX
from portside.errors import Invalid, NotFound
from portside.metadata.accounts import AccountQueries
from portside.metadata.accounts import RobotRow as RobotRow  # the row type the API shows
from portside.metadata.database import Database
from portside.metadata.projects import ProjectQueries

ROBOT_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
MAX_DURATION_DAYS = 1_000_000  # about 2,700 years: an expiry date datetime can still hold
RESOURCES: dict[str, set[str]] = {
    "repository": {"pull", "push", "delete", "list", "read", "update", "create"},
    "artifact": {"read", "list", "delete", "create"},
    "tag": {"create", "delete", "list"},
    "artifact-label": {"create", "delete"},
    "scan": {"create", "stop", "read"},
    "sbom": {"create", "stop", "read"},
    "helm-chart": {"read", "create", "delete"},
    "helm-chart-version": {"read", "create", "delete"},
    "project": {"read", "update", "delete"},
    "member": {"list", "read", "create", "update", "delete"},
    "metadata": {"list", "read", "create", "update", "delete"},
    "robot": {"list", "read", "create", "update", "delete"},
    "tag-retention": {"list", "read", "create", "update", "delete"},
    "immutable-tag": {"list", "create", "update", "delete"},
    "webhook": {"list", "read", "create", "update", "delete"},
    "notification-policy": {"list", "read", "create", "update", "delete"},
    "quota": {"read"},
    "log": {"list"},
    "audit-log": {"list"},
    "label": {"list", "read", "create", "update", "delete"},
    "accessory": {"list"},
    "preheat-policy": {"list", "read", "create", "update", "delete"},
}


@dataclass(frozen=True, slots=True)
class CreatedRobot:
    robot: RobotRow
    secret: str  # shown once; only its hash is stored


def check_duration(duration: int) -> None:
    if duration == 0 or duration < -1 or duration > MAX_DURATION_DAYS:
        raise Invalid(f"duration is a number of days up to {MAX_DURATION_DAYS}, or -1 for never expiring")


def check_permissions(level: str, permissions: list[dict[str, Any]]) -> None:
    """Well-formed robot v2 permission entries, or Invalid naming the first problem."""
    if not permissions:
        raise Invalid("a robot account needs at least one permission entry")
    for i, entry in enumerate(permissions):
        if entry.get("kind", "project") not in ("project", "system"):
            raise Invalid(f"permissions[{i}].kind must be 'project' or 'system'")
        if not entry.get("namespace"):
            raise Invalid(f"permissions[{i}].namespace is required (a project name, '*' for all, '/' for system)")
        access = entry.get("access")
        if not isinstance(access, list) or not access:
            raise Invalid(f"permissions[{i}].access must list at least one resource/action")
        for j, item in enumerate(access):
            if not isinstance(item, dict):
                raise Invalid(f"permissions[{i}].access[{j}] must be an object with resource and action")
            resource, action = item.get("resource"), item.get("action")
            if resource not in RESOURCES or action not in RESOURCES[resource] | {"*"}:
                raise Invalid(f"permissions[{i}].access[{j}]: unknown resource/action {resource!r}/{action!r}")
    if level == "project" and len(permissions) != 1:
        raise Invalid("a project-level robot has exactly one permission entry, for its own project")


class RobotService:
    def __init__(self, db: Database, accounts: AccountQueries, projects: ProjectQueries) -> None:
        self.db = db
        self.accounts = accounts
        self.projects = projects

    async def create(self, *, name: str, level: str, permissions: list[dict[str, Any]], duration: int = -1,
                     description: str = "", disabled: bool = False, secret: str | None = None,
                     creator: str = "") -> CreatedRobot:
        if level not in ("system", "project"):
            raise Invalid("level must be 'system' or 'project'")
        if not ROBOT_NAME.match(name or ""):
            raise Invalid(f"invalid robot name {name!r}: lowercase letters, digits and . _ - between them")
        check_duration(duration)
        check_permissions(level, permissions)
        project_id = None
        full_name = f"{ROBOT_PREFIX}{name}"
        if level == "project":
            namespace = permissions[0]["namespace"]
            project = await self.projects.by_name(namespace)
            if project is None:
                raise NotFound(f"project {namespace} not found")
            project_id = project.id
            full_name = f"{ROBOT_PREFIX}{project.name}+{name}"
        if secret is not None and (problem := check_password_strength(secret)):
            raise Invalid(f"secret: {problem}")
        secret = secret or generate_secret()
        expires_at = None if duration == -1 else datetime.now(UTC) + timedelta(days=duration)
        async with self.db.write(conflict=f"robot account {full_name!r} already exists") as conn:
            robot_id = await self.accounts.create_robot(
                conn, name=full_name, description=description, level=level, project_id=project_id,
                secret_hash=hash_secret(secret), duration=duration, expires_at=expires_at,
                permissions=permissions, creator=creator, disabled=disabled)
        robot = await self.accounts.robot_by_id(robot_id)
        assert robot is not None
        return CreatedRobot(robot, secret)

    async def list_all(self, project_id: int | None = None) -> list[RobotRow]:
        """Every robot, or a project's."""
        async with self.db.read() as conn:
            return await self.accounts.list_robots(conn, project_id)

    async def get(self, robot_id: int) -> RobotRow:
        robot = await self.accounts.robot_by_id(robot_id)
        if robot is None:
            raise NotFound(f"robot {robot_id} not found")
        return robot

    async def update(self, robot: RobotRow, *, description: str | None = None, disabled: bool | None = None,
                     duration: int | None = None, permissions: list[dict[str, Any]] | None = None) -> RobotRow:
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = description
        if disabled is not None:
            values["disabled"] = disabled
        if duration is not None and duration != robot.duration:
            check_duration(duration)
            values["duration"] = duration
            values["expires_at"] = None if duration == -1 else robot.created_at + timedelta(days=duration)
        if permissions is not None:
            check_permissions(robot.level, permissions)
            if robot.level == "project":
                project = await self.projects.by_id(robot.project_id or 0)
                if project is None or permissions[0]["namespace"] != project.name:
                    raise Invalid("a project-level robot's permissions must stay within its project")
            values["permissions"] = permissions
        async with self.db.write() as conn:
            await self.accounts.update_robot(conn, robot.id, **values)
        return await self.get(robot.id)

    async def refresh_secret(self, robot: RobotRow, secret: str | None = None) -> str:
        if secret is not None and (problem := check_password_strength(secret)):
            raise Invalid(f"secret: {problem}")
        secret = secret or generate_secret()
        async with self.db.write() as conn:
            await self.accounts.update_robot(conn, robot.id, secret_hash=hash_secret(secret))
        return secret

    async def delete(self, robot: RobotRow) -> None:
        async with self.db.write() as conn:
            await self.accounts.delete_robot(conn, robot.id)

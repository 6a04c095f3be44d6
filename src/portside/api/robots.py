"""/robots: robot accounts, Harbor's robot v2 API (`Robot`, `RobotCreate`, `RobotCreated`, `RobotSec`).

System robots (`robot$<name>`) belong to system administrators; project robots
(`robot$<project>+<name>`) to whoever holds robot:* permissions in their project. A robot's secret
is shown once, when it is created or refreshed; reads never return it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from portside.api.deps import PrincipalDep, ServicesDep, project_for, require_project_permission, require_sysadmin
from portside.api.pagination import PagingDep, set_page_headers
from portside.api.params import Id, Int32
from portside.api.query import Term, parse_q
from portside.api.timefmt import iso
from portside.audit.recorder import AuditEvent
from portside.auth.delegation import not_held
from portside.auth.principal import ROBOT_PREFIX, Principal
from portside.clientinfo import client_ip
from portside.errors import Denied, Invalid, NotFound, Unauthorized
from portside.management.robots import RobotRow, check_permissions
from portside.numbers import parse_int
from portside.services import Services

router = APIRouter(tags=["robot"])


class RobotCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = ""
    description: str = ""
    secret: str | None = None
    level: str = ""
    disable: bool = False
    duration: Int32 | None = None
    permissions: list[dict[str, Any]] = []


class RobotUpdate(BaseModel):
    """Harbor's `Robot` as a PUT body: name and level identify it and may not change."""

    model_config = ConfigDict(extra="ignore")
    name: str | None = None
    description: str | None = None
    level: str | None = None
    disable: bool | None = None
    duration: Int32 | None = None
    permissions: list[dict[str, Any]] | None = None


class RobotSec(BaseModel):
    model_config = ConfigDict(extra="ignore")
    secret: str | None = None


def expires_at(robot: RobotRow) -> int:
    if robot.expires_at is None:
        return -1
    ts = robot.expires_at if robot.expires_at.tzinfo else robot.expires_at.replace(tzinfo=UTC)
    return int(ts.timestamp())


def robot_json(robot: RobotRow) -> dict[str, Any]:
    """Everything but the secret (not even its hash)."""
    return {
        "id": robot.id,
        "name": robot.name,
        "description": robot.description,
        "level": robot.level,
        "duration": robot.duration,
        "editable": True,
        "disable": robot.disabled,
        "expires_at": expires_at(robot),
        "permissions": robot.permissions,
        "creator": robot.creator,
        "creation_time": iso(robot.created_at),
        "update_time": iso(robot.updated_at),
    }


def _audit(services: Services, request: Request, principal: Principal, operation: str, robot: RobotRow,
           detail: str = "") -> None:
    services.audit.record(AuditEvent(operation, "robot", robot.name, principal.name, robot.project_id,
                                     client_ip=client_ip(request), detail=detail))


async def _robot(services: Services, principal: Principal, robot_id: int) -> RobotRow:
    if principal.is_anonymous:
        raise Unauthorized("sign in to do this")
    return await services.robot_admin.get(robot_id)


async def _require(services: Services, principal: Principal, robot: RobotRow, permission: str) -> None:
    """System robots are the system administrators'; project robots need `permission` in their project.
    Callers who may not see the robot's project get 404, as for the project itself."""
    if principal.is_anonymous:
        raise Unauthorized("sign in to do this")
    if robot.level == "system" or robot.project_id is None:
        if not principal.sysadmin:
            raise Denied("only system administrators may manage system robot accounts")
        return
    project = await services.project_admin.find(robot.project_id)
    if project is None:
        raise NotFound(f"robot {robot.id} not found")
    try:
        await require_project_permission(services, principal, project, permission)
    except NotFound:
        raise NotFound(f"robot {robot.id} not found") from None


async def _require_held(services: Services, principal: Principal, permissions: list[dict[str, Any]],
                        current: list[dict[str, Any]] | None = None) -> None:
    """A robot gets no permission its grantor lacks (403), as in Harbor."""
    missing = await not_held(services.access, principal, permissions, current)
    if missing:
        shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
        raise Denied(f"{principal.name} may not grant permissions it does not hold itself: {shown}")


def _project_filter(terms: dict[str, Term]) -> int | None:
    term = terms.get("projectid")
    if term is None:
        return None
    project_id = parse_int(str(term.value), low=0) if term.kind == "exact" else None
    if project_id is None:
        raise Invalid("ProjectID must be given as ProjectID=<number>")
    return project_id


SORT_KEYS = {"id": "id", "name": "name", "level": "level", "creation_time": "created_at",
             "update_time": "updated_at", "expires_at": "expires_at", "duration": "duration"}


def _sorted(robots: list[RobotRow], sort: str | None) -> list[RobotRow]:
    if not sort:
        return robots
    key = sort.lstrip("-")
    if key not in SORT_KEYS:
        raise Invalid(f"cannot sort robots by {key!r}: use one of {sorted(SORT_KEYS)}")
    attr = SORT_KEYS[key]
    far = datetime.max.replace(tzinfo=UTC)

    def value(r: RobotRow) -> Any:
        v = getattr(r, attr)
        if isinstance(v, datetime):
            return v if v.tzinfo else v.replace(tzinfo=UTC)
        return far if v is None and attr == "expires_at" else v

    return sorted(robots, key=value, reverse=sort.startswith("-"))


@router.get("/robots")
async def list_robots(request: Request, response: Response, services: ServicesDep, principal: PrincipalDep,
                      paging: PagingDep, q: str | None = None, sort: str | None = None) -> list[dict[str, Any]]:
    terms = {k.lower().replace("_", ""): v for k, v in parse_q(q).items()}
    project_id = _project_filter(terms)
    if project_id is not None:
        project = await project_for(services, principal, str(project_id), "robot:list", "false")
        robots = await services.robot_admin.list_all(project.id)
    else:
        require_sysadmin(principal)
        robots = await services.robot_admin.list_all()
    fields: dict[str, Callable[[RobotRow], object]] = {
        "level": lambda r: r.level, "name": lambda r: r.name, "description": lambda r: r.description}
    for key, term in terms.items():
        if key in fields:
            robots = [r for r in robots if term.matches(fields[key](r))]
    robots = _sorted(robots, sort)
    set_page_headers(request, response, paging, len(robots))
    return [robot_json(r) for r in paging.slice(robots)]


@router.post("/robots", status_code=201)
async def create_robot(request: Request, body: RobotCreate, services: ServicesDep,
                       principal: PrincipalDep) -> Response:
    if principal.is_anonymous:
        raise Unauthorized("sign in to do this")
    if body.level == "project":
        if len(body.permissions) != 1 or body.permissions[0].get("kind", "project") != "project":
            raise Invalid("a project-level robot has exactly one permission entry, of kind 'project', "
                          "naming its project")
        namespace = str(body.permissions[0].get("namespace") or "")
        await project_for(services, principal, namespace, "robot:create", "true")
    elif body.level == "system":
        require_sysadmin(principal)
        for entry in body.permissions:
            namespace = str(entry.get("namespace") or "")
            if entry.get("kind", "project") == "project" and namespace not in ("", "*") \
                    and await services.project_admin.find(namespace) is None:
                raise NotFound(f"project {namespace} not found")
    else:
        raise Invalid("level must be 'system' or 'project'")
    check_permissions(body.level, body.permissions)
    await _require_held(services, principal, body.permissions)
    created = await services.robot_admin.create(
        name=body.name, level=body.level, permissions=body.permissions,
        duration=-1 if body.duration is None else body.duration, description=body.description,
        disabled=body.disable, secret=body.secret or None, creator=principal.name)
    robot = created.robot
    _audit(services, request, principal, "create", robot)
    return JSONResponse({"id": robot.id, "name": robot.name, "secret": created.secret,
                         "creation_time": iso(robot.created_at), "expires_at": expires_at(robot)},
                        status_code=201, headers={"Location": f"/api/v2.0/robots/{robot.id}"})


@router.get("/robots/{robot_id}")
async def get_robot(robot_id: Id, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    robot = await _robot(services, principal, robot_id)
    await _require(services, principal, robot, "robot:read")
    return robot_json(robot)


@router.put("/robots/{robot_id}")
async def update_robot(request: Request, robot_id: Id, body: RobotUpdate, services: ServicesDep,
                       principal: PrincipalDep) -> Response:
    robot = await _robot(services, principal, robot_id)
    await _require(services, principal, robot, "robot:update")
    if body.level is not None and body.level != robot.level:
        raise Invalid("the level of a robot account cannot change")
    short = robot.name.removeprefix(ROBOT_PREFIX).rpartition("+")[2]
    if body.name is not None and body.name not in (robot.name, short, robot.name.removeprefix(ROBOT_PREFIX)):
        raise Invalid("the name of a robot account cannot change")
    if principal.kind == "robot" and principal.id == robot.id:
        raise Denied("a robot account cannot change its own account (only refresh its secret)")
    if body.permissions is not None:
        check_permissions(robot.level, body.permissions)
        await _require_held(services, principal, body.permissions, robot.permissions)
    robot = await services.robot_admin.update(robot, description=body.description, disabled=body.disable,
                                              duration=body.duration, permissions=body.permissions)
    _audit(services, request, principal, "update", robot)
    return Response(status_code=200)


@router.patch("/robots/{robot_id}")
async def refresh_secret(request: Request, robot_id: Id, body: RobotSec, services: ServicesDep,
                         principal: PrincipalDep) -> dict[str, str]:
    robot = await _robot(services, principal, robot_id)
    if not (principal.kind == "robot" and principal.id == robot.id):  # a robot may refresh its own secret
        await _require(services, principal, robot, "robot:update")
        # The new secret is the robot's power: only for someone who holds all of it already.
        await _require_held(services, principal, robot.permissions)
    secret = await services.robot_admin.refresh_secret(robot, body.secret or None)
    _audit(services, request, principal, "update", robot, detail="secret refreshed")
    return {"secret": secret}


@router.delete("/robots/{robot_id}")
async def delete_robot(request: Request, robot_id: Id, services: ServicesDep, principal: PrincipalDep) -> Response:
    robot = await _robot(services, principal, robot_id)
    await _require(services, principal, robot, "robot:delete")
    await services.robot_admin.delete(robot)
    _audit(services, request, principal, "delete", robot)
    return Response(status_code=200)

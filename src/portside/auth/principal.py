"""Who a request acts as."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ROBOT_PREFIX = "robot$"


@dataclass(frozen=True, slots=True)
class RobotGrant:
    """Harbor robot v2 permission entry: permissions within one namespace ('*' = every project)."""

    kind: str
    namespace: str
    permissions: frozenset[str]


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["user", "robot", "anonymous"]
    name: str
    id: int | None = None
    sysadmin: bool = False
    grants: tuple[RobotGrant, ...] = field(default=())

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"


ANONYMOUS = Principal("anonymous", "anonymous")


def grants_from_permissions(permissions: list[dict[str, Any]]) -> tuple[RobotGrant, ...]:
    grants = []
    for entry in permissions:
        access = frozenset(
            f"{a.get('resource')}:{a.get('action')}"
            for a in entry.get("access", [])
            if a.get("effect", "allow") != "deny"
        )
        grants.append(RobotGrant(str(entry.get("kind", "project")), str(entry.get("namespace", "")), access))
    return tuple(grants)

"""Harbor's project roles and what each may do.

Actions are named `<resource>:<action>` in Harbor's vocabulary (the robot v2 API uses the same
pairs), so robots and members are checked with one table.
"""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    PROJECT_ADMIN = 1
    DEVELOPER = 2
    GUEST = 3
    MAINTAINER = 4
    LIMITED_GUEST = 5

    @property
    def harbor_name(self) -> str:
        return _NAMES[self]

    @classmethod
    def from_name(cls, name: str) -> Role | None:
        return _BY_NAME.get(name.replace("_", "").lower())


_NAMES = {
    Role.PROJECT_ADMIN: "projectAdmin",
    Role.DEVELOPER: "developer",
    Role.GUEST: "guest",
    Role.MAINTAINER: "maintainer",
    Role.LIMITED_GUEST: "limitedGuest",
}
_BY_NAME = {v.lower(): k for k, v in _NAMES.items()} | {
    "admin": Role.PROJECT_ADMIN, "projectadmin": Role.PROJECT_ADMIN, "master": Role.MAINTAINER,
}

_READ = {"project:read", "repository:list", "repository:read", "repository:pull", "artifact:list",
         "artifact:read", "tag:list", "member:list", "audit-log:list", "log:list", "robot:read", "robot:list"}
_LIMITED = {"project:read", "repository:list", "repository:read", "repository:pull", "artifact:list",
            "artifact:read", "tag:list"}
_DEVELOPER = _READ | {"repository:push", "repository:update", "artifact:create", "tag:create",
                      "artifact-label:create"}
_MAINTAINER = _DEVELOPER | {
    "repository:delete", "artifact:delete", "tag:delete", "artifact-label:delete", "scan:create",
    "scan:stop", "tag-retention:read", "tag-retention:create", "tag-retention:update", "tag-retention:delete",
    "tag-retention:list", "immutable-tag:list", "immutable-tag:create", "immutable-tag:update",
    "immutable-tag:delete", "webhook:list", "webhook:read", "quota:read",
    "preheat-policy:read", "sbom:create",
}
_PROJECT_ADMIN = _MAINTAINER | {
    "project:update", "project:delete", "member:create", "member:update", "member:delete", "member:read",
    "robot:create", "robot:update", "robot:delete", "webhook:create", "webhook:update", "webhook:delete",
    "metadata:create", "metadata:update", "metadata:delete", "metadata:read", "metadata:list",
    "label:create", "label:update", "label:delete", "notification-policy:create",
}

PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.PROJECT_ADMIN: frozenset(_PROJECT_ADMIN),
    Role.MAINTAINER: frozenset(_MAINTAINER),
    Role.DEVELOPER: frozenset(_DEVELOPER),
    Role.GUEST: frozenset(_READ),
    Role.LIMITED_GUEST: frozenset(_LIMITED),
}
# What anyone, signed in or not, may do in a public project.
PUBLIC = frozenset({"project:read", "repository:list", "repository:read", "repository:pull",
                    "artifact:list", "artifact:read", "tag:list"})


def registry_actions(permissions: frozenset[str] | set[str]) -> set[str]:
    """Translate permissions into the registry token vocabulary (pull, push, delete)."""
    actions = set()
    if "repository:pull" in permissions:
        actions.add("pull")
    if "repository:push" in permissions:
        actions.add("push")
    if "repository:delete" in permissions or "artifact:delete" in permissions:
        actions.add("delete")
    return actions

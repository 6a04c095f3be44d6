"""Delegation: an account may give a robot only permissions it holds itself, project by project
(Harbor refuses the rest), so no robot, user or robot-made robot can widen its own access.

Holding is decided per namespace by the same rules that authorize requests. The namespace `*`
(every project, including those made later) is held only by system administrators and by robots
granted `*` themselves; system-kind permissions only by system administrators.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from portside.auth.access import AccessService, expand_wildcards
from portside.auth.principal import Principal, RobotGrant, grants_from_permissions


def _effective(grants: Sequence[RobotGrant]) -> dict[tuple[str, str], frozenset[str]]:
    """(kind, namespace) -> the permissions the grants confer there (`repository:*` spelled out)."""
    out: dict[tuple[str, str], frozenset[str]] = {}
    for g in grants:
        perms = frozenset(p for p in expand_wildcards(g.permissions) if not p.endswith(":*"))
        out[(g.kind, g.namespace)] = out.get((g.kind, g.namespace), frozenset()) | perms
    return out


async def _held(access: AccessService, principal: Principal, kind: str, namespace: str) -> frozenset[str]:
    if kind != "project":
        return frozenset()
    if namespace == "*":
        own = _effective([g for g in principal.grants if g.namespace == "*"]) if principal.kind == "robot" else {}
        return own.get(("project", "*"), frozenset())
    project = await access.projects.by_name(namespace)
    return frozenset() if project is None else await access.permissions(principal, project)


async def not_held(access: AccessService, principal: Principal, requested: list[dict[str, Any]],
                   current: list[dict[str, Any]] | None = None) -> list[str]:
    """The requested permissions (`namespace/resource:action`) the principal does not hold itself.
    Those in `current` (what the robot has already) are not counted: keeping or narrowing a grant
    widens nothing."""
    if principal.sysadmin:
        return []
    before = _effective(grants_from_permissions(current or []))
    missing: list[str] = []
    for (kind, namespace), perms in _effective(grants_from_permissions(requested)).items():
        added = perms - before.get((kind, namespace), frozenset())
        if added:
            missing += sorted(f"{namespace}/{p}" for p in added - await _held(access, principal, kind, namespace))
    return missing

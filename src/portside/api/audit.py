"""/audit-logs and /projects/{project_name}/logs: reading the audit log (Harbor's `AuditLog` shape).

System administrators see every entry; other callers see the entries of the projects where they may
list logs (audit-log:list), as Harbor does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from portside.api.deps import PrincipalDep, ServicesDep, project_for, require_signed_in
from portside.api.pagination import Paging, PagingDep, set_page_headers
from portside.api.query import Term, parse_q
from portside.api.timefmt import iso
from portside.auth.principal import Principal
from portside.auth.roles import PERMISSIONS, Role
from portside.errors import Invalid
from portside.metadata.audit import SORTABLE, TEXT_COLUMNS, AuditFilter, AuditRow, TextFilter
from portside.numbers import parse_int
from portside.services import Services

router = APIRouter(tags=["auditlog"])
LOG_PERMISSION = "audit-log:list"
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


def audit_json(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "username": row.username,
        "resource": row.resource,
        "resource_type": row.resource_type,
        "operation": row.operation,
        "op_time": iso(row.op_time),
    }


def parse_time(text: str) -> datetime:
    """`2006-01-02 15:04:05` (Harbor's form, UTC), ISO 8601 with an offset or `Z`, a date, or unix seconds."""
    text = text.strip()
    try:
        return _parse_time(text)
    except (OverflowError, OSError, ValueError):  # a number of seconds or an offset beyond datetime's years
        raise Invalid(f"time {text!r} is out of range") from None


def _parse_time(text: str) -> datetime:
    seconds = parse_int(text, low=0)
    if seconds is not None:
        return datetime.fromtimestamp(seconds, UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    for fmt in TIME_FORMATS:
        if parsed is not None:
            break
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
    if parsed is None:
        raise Invalid(f"invalid time {text!r}: use 'YYYY-MM-DD hh:mm:ss' (UTC) or ISO 8601")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def audit_filter(q: str | None, project_ids: set[int] | None) -> AuditFilter:
    text: dict[str, TextFilter] = {}
    since = until = None
    for key, term in parse_q(q).items():
        if key == "op_time":
            since, until = _time_range(term)
        elif key in TEXT_COLUMNS:
            if term.kind == "range":
                raise Invalid(f"{key} cannot be filtered by a range")
            values = term.value if isinstance(term.value, tuple) else (term.value,)
            text[key] = TextFilter(term.kind, tuple(str(v) for v in values))
        else:
            raise Invalid(f"cannot filter audit logs by {key!r}: use one of {sorted((*TEXT_COLUMNS, 'op_time'))}")
    return AuditFilter(text, since, until, project_ids)


def _time_range(term: Term) -> tuple[datetime | None, datetime | None]:
    if term.kind == "range":
        assert isinstance(term.value, tuple)
        low, high = str(term.value[0]), str(term.value[-1])
        return (parse_time(low) if low else None), (parse_time(high) if high else None)
    if term.kind == "exact":
        moment = parse_time(str(term.value))
        return moment, moment
    raise Invalid("op_time takes a range: op_time=[2006-01-02 15:04:05~2006-01-03 15:04:05]")


def _sort(sort: str | None) -> str:
    sort = (sort or "-op_time").strip()
    if sort.lstrip("-") not in SORTABLE:
        raise Invalid(f"cannot sort audit logs by {sort.lstrip('-')!r}: use one of {sorted(SORTABLE)}")
    return sort


async def loggable_project_ids(services: Services, principal: Principal) -> set[int] | None:
    """Projects whose audit entries the caller may read; None means all entries."""
    if principal.sysadmin:
        return None
    if principal.kind == "user" and principal.id is not None:
        roles = await services.projects.roles_of_user(principal.id)
        return {pid for pid, role in roles.items() if role in Role._value2member_map_
                and LOG_PERMISSION in PERMISSIONS[Role(role)]}
    async with services.db.read() as conn:
        every = await services.projects.all(conn)
    return {p.id for p in every if LOG_PERMISSION in await services.access.permissions(principal, p)}


async def _page(request: Request, response: Response, services: Services, f: AuditFilter, sort: str | None,
                paging: Paging) -> list[dict[str, Any]]:
    rows, total = await services.audit_log.search(f, sort=_sort(sort), offset=paging.offset,
                                                  limit=paging.page_size)
    set_page_headers(request, response, paging, total)
    return [audit_json(r) for r in rows]


@router.get("/audit-logs")
async def list_audit_logs(request: Request, response: Response, services: ServicesDep, principal: PrincipalDep,
                          paging: PagingDep, q: str | None = None, sort: str | None = None) -> list[dict[str, Any]]:
    require_signed_in(principal)
    f = audit_filter(q, await loggable_project_ids(services, principal))
    return await _page(request, response, services, f, sort, paging)


@router.get("/projects/{project_name}/logs")
async def project_logs(request: Request, response: Response, project_name: str, services: ServicesDep,
                       principal: PrincipalDep, paging: PagingDep, q: str | None = None,
                       sort: str | None = None) -> list[dict[str, Any]]:
    project = await project_for(services, principal, project_name, LOG_PERMISSION, "true")
    f = audit_filter(q, {project.id})
    return await _page(request, response, services, f, sort, paging)

"""/users: local user accounts (Harbor's `UserResp`, `UserCreationReq`, `UserProfile`, `PasswordReq`,
`UserSysAdminFlag`). Self-registration is off: only system administrators create users.

Password hashes never leave the server; `password_version` and `oidc_user_meta` are not returned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from portside.api.deps import PrincipalDep, ServicesDep, require_signed_in, require_sysadmin
from portside.api.pagination import PagingDep, set_page_headers
from portside.api.params import Id
from portside.api.query import parse_q
from portside.api.timefmt import iso
from portside.audit.recorder import AuditEvent
from portside.auth.passwords import verify_secret
from portside.auth.principal import Principal
from portside.clientinfo import client_ip
from portside.errors import Conflict, Denied, Invalid
from portside.management.users import UserRow
from portside.services import Services

router = APIRouter(tags=["user"])


class UserCreationReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: str = ""
    password: str = ""
    email: str = ""
    realname: str = ""
    comment: str = ""


class UserProfile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: str | None = None
    realname: str | None = None
    comment: str | None = None


class PasswordReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    old_password: str | None = None
    new_password: str = ""


class UserSysAdminFlag(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sysadmin_flag: bool


def user_json(user: UserRow) -> dict[str, Any]:
    return {
        "user_id": user.id,
        "username": user.username,
        "email": user.email,
        "realname": user.realname,
        "comment": user.comment,
        "sysadmin_flag": user.sysadmin,
        "admin_role_in_auth": False,
        "creation_time": iso(user.created_at),
        "update_time": iso(user.updated_at),
    }


def _audit(services: Services, request: Request, principal: Principal, operation: str, user: UserRow,
           detail: str = "") -> None:
    services.audit.record(AuditEvent(operation, "user", user.username, principal.name,
                                     client_ip=client_ip(request), detail=detail))


async def _all_users(services: Services) -> list[UserRow]:
    return await services.user_admin.list_all()


async def _check_email(services: Services, email: str | None, user_id: int | None = None) -> None:
    if not email:
        return
    if len(email) > 255 or "@" not in email.strip("@") or any(c.isspace() for c in email):
        raise Invalid(f"invalid email address {email!r}")
    if any(u.email.lower() == email.lower() and u.id != user_id for u in await _all_users(services)):
        raise Conflict(f"email {email} is already used by another user")


async def _self_or_admin(services: Services, principal: Principal, user_id: int) -> UserRow:
    """The user, when the caller is that user or a system administrator (403 otherwise, so that
    other callers do not learn which user ids exist)."""
    require_signed_in(principal)
    if not principal.sysadmin and not (principal.kind == "user" and principal.id == user_id):
        raise Denied("only system administrators may read or change other users")
    return await services.user_admin.get(user_id)


SORT_KEYS = {"user_id": "id", "username": "username", "email": "email", "realname": "realname",
             "creation_time": "created_at", "update_time": "updated_at"}


@router.get("/users/current")
async def current_user(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    require_signed_in(principal)
    if principal.kind != "user" or principal.id is None:
        raise Denied("robot accounts have no user profile")
    return user_json(await services.user_admin.get(principal.id))


@router.get("/users/search")
async def search_users(request: Request, response: Response, services: ServicesDep, principal: PrincipalDep,
                       paging: PagingDep, username: str = Query(...)) -> list[dict[str, Any]]:
    require_signed_in(principal)
    found = [u for u in await _all_users(services) if username.lower() in u.username.lower()]
    found.sort(key=lambda u: (u.username.lower() != username.lower(), u.username))
    set_page_headers(request, response, paging, len(found))
    return [{"user_id": u.id, "username": u.username} for u in paging.slice(found)]


@router.get("/users")
async def list_users(request: Request, response: Response, services: ServicesDep, principal: PrincipalDep,
                     paging: PagingDep, q: str | None = None, sort: str | None = None,
                     username: str | None = None, email: str | None = None) -> list[dict[str, Any]]:
    require_sysadmin(principal)
    terms = parse_q(q)
    users = await _all_users(services)
    fields: dict[str, Callable[[UserRow], object]] = {
        "username": lambda u: u.username, "email": lambda u: u.email, "realname": lambda u: u.realname,
        "user_id": lambda u: str(u.id), "sysadmin_flag": lambda u: u.sysadmin}
    for key, term in terms.items():
        if key not in fields:
            raise Invalid(f"cannot filter users by {key!r}: use one of {sorted(fields)}")
        users = [u for u in users if term.matches(fields[key](u))]
    if username is not None:
        users = [u for u in users if username in u.username]
    if email is not None:
        users = [u for u in users if email in u.email]
    if sort:
        key = sort.lstrip("-")
        if key not in SORT_KEYS:
            raise Invalid(f"cannot sort users by {key!r}: use one of {sorted(SORT_KEYS)}")
        users.sort(key=lambda u: getattr(u, SORT_KEYS[key]), reverse=sort.startswith("-"))
    set_page_headers(request, response, paging, len(users))
    return [user_json(u) for u in paging.slice(users)]


@router.post("/users", status_code=201)
async def create_user(request: Request, body: UserCreationReq, services: ServicesDep,
                      principal: PrincipalDep) -> Response:
    require_sysadmin(principal)  # self-registration is off
    if not body.username:
        raise Invalid("username is required")
    if await services.user_admin.exists(body.username):
        raise Conflict(f"user {body.username!r} already exists")
    await _check_email(services, body.email)
    user = await services.user_admin.create(body.username, body.password, email=body.email,
                                            realname=body.realname, comment=body.comment)
    _audit(services, request, principal, "create", user)
    return Response(status_code=201, headers={"Location": f"/api/v2.0/users/{user.id}"})


@router.get("/users/{user_id}")
async def get_user(user_id: Id, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return user_json(await _self_or_admin(services, principal, user_id))


@router.put("/users/{user_id}")
async def update_user(request: Request, user_id: Id, body: UserProfile, services: ServicesDep,
                      principal: PrincipalDep) -> Response:
    user = await _self_or_admin(services, principal, user_id)
    await _check_email(services, body.email, user.id)
    await services.user_admin.update_profile(user, email=body.email, realname=body.realname, comment=body.comment)
    _audit(services, request, principal, "update", user)
    return Response(status_code=200)


@router.delete("/users/{user_id}")
async def delete_user(request: Request, user_id: Id, services: ServicesDep, principal: PrincipalDep) -> Response:
    require_sysadmin(principal)
    if principal.kind == "user" and principal.id == user_id:
        raise Denied("you cannot delete your own account")
    user = await services.user_admin.get(user_id)
    await services.user_admin.delete(user)
    _audit(services, request, principal, "delete", user)
    return Response(status_code=200)


@router.put("/users/{user_id}/password")
async def change_password(request: Request, user_id: Id, body: PasswordReq, services: ServicesDep,
                          principal: PrincipalDep) -> Response:
    user = await _self_or_admin(services, principal, user_id)
    is_self = principal.kind == "user" and principal.id == user.id
    if is_self and not body.old_password:
        raise Invalid("old_password is required to change your own password")
    if not body.new_password:
        raise Invalid("new_password is required")
    if is_self and not verify_secret(user.password_hash, body.old_password or ""):
        raise Denied("the old password is wrong")
    if verify_secret(user.password_hash, body.new_password):
        raise Invalid("the new password must differ from the old one")
    await services.user_admin.change_password(user, body.new_password,
                                              old_password=body.old_password if is_self else None)
    _audit(services, request, principal, "update", user, detail="password changed" if is_self else "password reset")
    return Response(status_code=200)


@router.put("/users/{user_id}/sysadmin")
async def set_sysadmin(request: Request, user_id: Id, body: UserSysAdminFlag, services: ServicesDep,
                       principal: PrincipalDep) -> Response:
    require_sysadmin(principal)
    if principal.kind == "user" and principal.id == user_id:
        raise Denied("you cannot change your own administrator flag")
    user = await services.user_admin.get(user_id)
    await services.user_admin.set_sysadmin(user, body.sysadmin_flag)
    _audit(services, request, principal, "update", user, detail=f"sysadmin_flag={str(body.sysadmin_flag).lower()}")
    return Response(status_code=200)

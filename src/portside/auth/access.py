"""The access decisions: who the credentials name, and what they may do in a project.

Registry requests carry Basic credentials, a bearer token from `/service/token`, or nothing
(anonymous). Permissions come from one of: system administrator (everything), project membership
(a Harbor role), robot grants, and the public flag of a project (pull for anyone).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

from portside.auth.passwords import verify_secret
from portside.auth.principal import ANONYMOUS, ROBOT_PREFIX, Principal, grants_from_permissions
from portside.auth.roles import PERMISSIONS, PUBLIC, Role, registry_actions
from portside.auth.throttle import LoginThrottle
from portside.auth.tokens import Access, Claims, TokenService
from portside.errors import Unauthorized
from portside.metadata.accounts import AccountQueries
from portside.metadata.changes import ACCESS
from portside.metadata.projects import ProjectQueries, ProjectRow

ALL_PERMISSIONS = frozenset().union(*PERMISSIONS.values())


def project_of(repository: str) -> str | None:
    """The project a repository belongs to: its first path component (None for one-component names)."""
    head, sep, _ = repository.partition("/")
    return head if sep else None


@dataclass(frozen=True, slots=True)
class Credentials:
    scheme: str  # "basic", "bearer" or "none"
    username: str = ""
    secret: str = ""


def parse_authorization(header: str | None) -> Credentials:
    if not header:
        return Credentials("none")
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and value.strip():
        return Credentials("bearer", secret=value.strip())
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise Unauthorized("malformed Basic credentials")
        return Credentials("basic", username, password)
    raise Unauthorized(f"unsupported Authorization scheme {scheme!r}: use Basic or Bearer")


class AccessService:
    def __init__(self, accounts: AccountQueries, projects: ProjectQueries, tokens: TokenService | None,
                 throttle: LoginThrottle) -> None:
        self.accounts = accounts
        self.projects = projects
        self.tokens = tokens
        self.throttle = throttle
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[int, float, Principal]] = {}

    async def login(self, username: str, password: str, client: str) -> Principal:
        """Check a username (or robot name) and secret; slows down repeated failures from one client."""
        key = f"{client}|{username}"
        await self.throttle.before_attempt(key)
        principal = await self._check_password(username, password)
        if principal is None:
            self.throttle.failed(key)
            raise Unauthorized("invalid username or password")
        self.throttle.succeeded(key)
        return principal

    async def _check_password(self, username: str, password: str) -> Principal | None:
        """argon2 costs tens of milliseconds of CPU, so a verified pair is remembered (by a keyed hash,
        never in clear) for a minute, or until any account or project data changes."""
        key = hmac.new(self._cache_key, f"{username}\0{password}".encode(), hashlib.sha256).digest()
        changes = self.accounts.db.changes
        cached = self._verified.get(key)
        if cached and changes.usable and cached[0] == changes.current(ACCESS) and cached[1] > time.monotonic():
            return cached[2]
        generation = changes.current(ACCESS)
        principal, lifetime = await self._verify_password(username, password)
        if principal is not None and lifetime > 0:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[key] = (generation, time.monotonic() + lifetime, principal)
        return principal

    async def _verify_password(self, username: str, password: str) -> tuple[Principal | None, float]:
        """The principal, and for how many seconds the answer may be reused (0: not at all)."""
        if username.startswith(ROBOT_PREFIX):
            robot = await self.accounts.robot_by_name(username)
            if not await _verify(robot.secret_hash if robot else None, password) or robot is None:
                return None, 0
            if robot.disabled:
                return None, 0
            lifetime = 60.0
            if robot.expires_at is not None:
                lifetime = min(lifetime, (_aware(robot.expires_at) - datetime.now(UTC)).total_seconds())
                if lifetime <= 0:
                    return None, 0
            principal = Principal("robot", robot.name, robot.id, grants=grants_from_permissions(robot.permissions))
            return principal, lifetime
        user = await self.accounts.user_by_name(username)
        if not await _verify(user.password_hash if user else None, password) or user is None:
            return None, 0
        return Principal("user", user.username, user.id, sysadmin=user.sysadmin), 60.0

    async def principal_for_subject(self, subject: str) -> Principal:
        """Re-load the account a token was issued to (for listings filtered by visibility)."""
        if subject.startswith(ROBOT_PREFIX):
            robot = await self.accounts.robot_by_name(subject)
            if robot and not robot.disabled:
                return Principal("robot", robot.name, robot.id, grants=grants_from_permissions(robot.permissions))
            return ANONYMOUS
        user = await self.accounts.user_by_name(subject)
        return Principal("user", user.username, user.id, sysadmin=user.sysadmin) if user else ANONYMOUS

    async def principal_for_session(self, user_id: int, generation: int) -> Principal | None:
        """The user a portal session names, while that session is still current (None once the user
        signed out, changed password or admin flag, or was deleted)."""
        user = await self.accounts.user_by_id_cached(user_id)
        if user is None or user.session_generation != generation:
            return None
        return Principal("user", user.username, user.id, sysadmin=user.sysadmin)

    async def identify(self, header: str | None, client: str) -> tuple[Principal, Claims | None]:
        creds = parse_authorization(header)
        if creds.scheme == "none":
            return ANONYMOUS, None
        if creds.scheme == "basic":
            return await self.login(creds.username, creds.secret, client), None
        if self.tokens is None:
            raise Unauthorized("bearer tokens are not enabled")
        claims = self.tokens.verify(creds.secret)
        if not claims.subject:  # an anonymous token: it carries public pulls, and names nobody
            return ANONYMOUS, claims
        return Principal("robot" if claims.subject.startswith(ROBOT_PREFIX) else "user", claims.subject), claims

    async def permissions(self, principal: Principal, project: ProjectRow | None) -> frozenset[str]:
        if principal.sysadmin:
            return ALL_PERMISSIONS
        if project is None:
            return frozenset()
        granted: set[str] = set(PUBLIC) if project.public else set()
        if principal.kind == "user" and principal.id is not None:
            role = await self.projects.role_of(project.id, principal.id)
            if role is not None:
                granted |= PERMISSIONS[Role(role)]
        elif principal.kind == "robot":
            for grant in principal.grants:
                if grant.kind == "project" and grant.namespace in (project.name, "*"):
                    granted |= expand_wildcards(grant.permissions)
        return frozenset(granted)

    async def repository_actions(self, principal: Principal, repository: str) -> set[str]:
        name = project_of(repository)
        project = await self.projects.by_name(name) if name else None
        if project is None and not principal.sysadmin:
            return set()
        return registry_actions(await self.permissions(principal, project))

    async def visible_project_ids(self, principal: Principal) -> set[int] | None:
        """Projects whose repositories this principal may list; None means all of them."""
        seen = project_visibility(principal)
        if seen.everything:
            return None
        async with self.projects.db.read() as conn:
            return {p.id for p in await self.projects.visible(conn, **seen.as_query())}

    async def grant(self, principal: Principal, scopes: list[str]) -> list[Access]:
        """The token-protocol answer: of each requested scope, what this principal may actually do."""
        granted = []
        for scope in scopes:
            for item in _parse_scope(scope):
                kind, name, actions = item
                if kind == "repository":
                    allowed = await self.repository_actions(principal, name)
                    if "*" in actions:
                        actions = {"pull", "push", "delete"}
                    ok = actions & allowed
                elif kind == "registry" and name == "catalog":
                    ok = {"*"} if principal.sysadmin and "*" in actions else set()
                else:
                    ok = set()
                if ok:
                    granted.append(Access(kind, name, frozenset(ok)))
        return granted


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which projects a principal may see: all, or the public ones, those it is a member of and those named."""
    everything: bool
    member_id: int | None = None
    names: frozenset[str] = frozenset()

    def as_query(self) -> dict[str, Any]:
        return {"everything": self.everything, "member_id": self.member_id, "names": self.names}


def project_visibility(principal: Principal) -> Visibility:
    if principal.sysadmin:
        return Visibility(True)
    if principal.kind == "user" and principal.id is not None:
        return Visibility(False, member_id=principal.id)
    if principal.kind == "robot":
        names = frozenset(g.namespace for g in principal.grants if g.kind == "project")
        return Visibility("*" in names, names=names)
    return Visibility(False)


def _parse_scope(scope: str) -> list[tuple[str, str, set[str]]]:
    """`repository:p/r:pull,push` (names may hold ':' for a port-qualified host) -> (type, name, actions)."""
    out = []
    for part in scope.split(" "):
        if not part:
            continue
        kind, _, rest = part.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind and name and actions:
            out.append((kind, name, {a for a in actions.split(",") if a}))
    return out


def expand_wildcards(permissions: frozenset[str]) -> frozenset[str]:
    """Harbor's action `*` (`repository:*`) matches every action on its resource."""
    wild = {p.partition(":")[0] for p in permissions if p.endswith(":*")}
    if not wild:
        return permissions
    return permissions | {p for p in ALL_PERMISSIONS if p.partition(":")[0] in wild}


async def _verify(stored_hash: str | None, secret: str) -> bool:
    """argon2 off the event loop, so one sign-in does not stall every other request of the worker."""
    return await anyio.to_thread.run_sync(verify_secret, stored_hash, secret)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)

"""Tag immutability: a project's rules name tags (by repository and tag selectors) that, once they
exist, can be neither moved to another artifact nor deleted - nor can the artifact they name.

The registry (/v2 manifest pushes and deletes) and the management API (artifact, tag and repository
deletes) all ask `ImmutabilityService` inside their own write transaction, so the check and the write
commit together. Re-pushing the very manifest a tag already names is allowed. Retention asks it which
artifacts are protected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from portside.errors import Conflict, Invalid, NotFound, TagImmutable
from portside.lifecycle.selectors import (
    Selector,
    parse_scope_selectors,
    parse_tag_selectors,
    relative_repository,
    repository_selected,
)
from portside.metadata.changes import ACCESS
from portside.metadata.database import Database
from portside.metadata.immutable import ImmutableQueries, ImmutableRuleRow
from portside.metadata.readcache import ReadCache

ACTION = "immutable"
TEMPLATE = "immutable_template"
MAX_RULES = 15


@dataclass(frozen=True, slots=True)
class ImmutableRule:
    id: int
    project_id: int
    priority: int
    disabled: bool
    tag_selectors: tuple[Selector, ...]
    scope_selectors: Mapping[str, tuple[Selector, ...]]

    def matches(self, relative_repository: str, tag: str) -> bool:
        return (not self.disabled and repository_selected(dict(self.scope_selectors), relative_repository)
                and all(s.selects_tag(tag) for s in self.tag_selectors))

    def describe(self) -> str:
        tags = " and ".join(f"{s.decoration} {s.pattern!r}" for s in self.tag_selectors)
        scope = " and ".join(f"{s.decoration} {s.pattern!r}" for s in self.scope_selectors.get("repository", ()))
        return f"immutable tag rule {self.id} (tags {tags}; repositories {scope})"

    def selectors_key(self) -> str:
        return repr((self.tag_selectors, sorted(self.scope_selectors.items())))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "project_id": self.project_id, "disabled": self.disabled, "priority": self.priority,
            "action": ACTION, "template": TEMPLATE, "params": {},
            "tag_selectors": [s.as_json() for s in self.tag_selectors],
            "scope_selectors": {k: [s.as_json() for s in v] for k, v in self.scope_selectors.items()},
        }


def parse_immutable_rule(raw: Any, project_id: int, rule_id: int = 0) -> ImmutableRule:
    """A validated rule from Harbor's ImmutableRule JSON; Invalid names the offending field."""
    if not isinstance(raw, dict):
        raise Invalid("the body must be an ImmutableRule object")
    action = raw.get("action") or ACTION
    if action != ACTION:
        raise Invalid(f"action: {action!r} is not supported; use {ACTION!r}")
    template = raw.get("template") or TEMPLATE
    if template != TEMPLATE:
        raise Invalid(f"template: {template!r} is not supported; use {TEMPLATE!r}")
    disabled = raw.get("disabled", False)
    if not isinstance(disabled, bool):
        raise Invalid("disabled: expected true or false")
    priority = raw.get("priority") or 0
    if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
        raise Invalid("priority: expected a whole number of at least 0")
    return ImmutableRule(
        id=rule_id, project_id=project_id, priority=priority, disabled=disabled,
        tag_selectors=parse_tag_selectors(raw.get("tag_selectors"), "tag_selectors"),
        scope_selectors=parse_scope_selectors(raw.get("scope_selectors"), "scope_selectors"),
    )


def _from_row(row: ImmutableRuleRow) -> ImmutableRule:
    body = {**row.body, "disabled": row.disabled, "priority": row.priority}
    return parse_immutable_rule(body, row.project_id, row.id)


def first_match(rules: Iterable[ImmutableRule], relative_repository: str, tag: str) -> ImmutableRule | None:
    for rule in rules:
        if rule.matches(relative_repository, tag):
            return rule
    return None


class ImmutabilityService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.queries = ImmutableQueries(db)
        # repository id -> its project's enabled rules. Every tag push asks, and most projects have
        # none. Rule writes bump the access counter, which invalidates this on every worker.
        self._active = ReadCache(db.changes, slot=ACCESS, max_entries=10_000)

    # -- rules ---------------------------------------------------------------------------------

    async def rules(self, project_id: int) -> list[ImmutableRule]:
        async with self.db.read() as conn:
            return [_from_row(r) for r in await self.queries.rules(conn, project_id)]

    async def rule(self, project_id: int, rule_id: int) -> ImmutableRule:
        async with self.db.read() as conn:
            row = await self.queries.rule(conn, rule_id)
        if row is None or row.project_id != project_id:
            raise NotFound(f"immutable tag rule {rule_id} not found in this project")
        return _from_row(row)

    async def create(self, project_id: int, raw: Any) -> ImmutableRule:
        rule = parse_immutable_rule(raw, project_id)
        async with self.db.write() as conn:
            existing = [_from_row(r) for r in await self.queries.rules(conn, project_id)]
            if len(existing) >= MAX_RULES:
                raise Invalid(f"a project has at most {MAX_RULES} immutable tag rules")
            self._no_duplicate(rule, existing)
            rule_id = await self.queries.create(conn, project_id, priority=rule.priority, disabled=rule.disabled,
                                                body=_body(rule))
        return ImmutableRule(rule_id, project_id, rule.priority, rule.disabled, rule.tag_selectors,
                             rule.scope_selectors)

    async def update(self, project_id: int, rule_id: int, raw: Any) -> ImmutableRule:
        if not isinstance(raw, dict):
            raise Invalid("the body must be an ImmutableRule object")
        async with self.db.write() as conn:
            row = await self.queries.rule(conn, rule_id)
            if row is None or row.project_id != project_id:
                raise NotFound(f"immutable tag rule {rule_id} not found in this project")
            current = _from_row(row).as_json()
            merged = {**current, **{k: v for k, v in raw.items() if v is not None and k not in ("id", "project_id")}}
            rule = parse_immutable_rule(merged, project_id, rule_id)
            others = [_from_row(r) for r in await self.queries.rules(conn, project_id) if r.id != rule_id]
            self._no_duplicate(rule, others)
            await self.queries.update(conn, rule_id, priority=rule.priority, disabled=rule.disabled, body=_body(rule))
        return rule

    async def delete(self, project_id: int, rule_id: int) -> None:
        async with self.db.write() as conn:
            row = await self.queries.rule(conn, rule_id)
            if row is None or row.project_id != project_id:
                raise NotFound(f"immutable tag rule {rule_id} not found in this project")
            await self.queries.delete(conn, rule_id)

    @staticmethod
    def _no_duplicate(rule: ImmutableRule, others: Iterable[ImmutableRule]) -> None:
        for other in others:
            if other.selectors_key() == rule.selectors_key():
                raise Conflict(f"immutable tag rule {other.id} already has the same selectors")

    # -- enforcement (inside the caller's transaction) -----------------------------------------

    async def _rules_for(self, conn: AsyncConnection, repo_id: int) -> tuple[ImmutableRule, ...]:
        async def load() -> tuple[ImmutableRule, ...]:
            project_id = await self.queries.project_of_repository(conn, repo_id)
            if project_id is None:
                return ()
            return tuple(r for r in (_from_row(row) for row in await self.queries.rules(conn, project_id))
                         if not r.disabled)

        return await self._active.get_or_load(repo_id, load)

    async def _protected_tag(self, conn: AsyncConnection, repo_id: int, repository: str,
                             read_tags: Callable[[], Awaitable[Sequence[str]]]) -> tuple[str, ImmutableRule] | None:
        """The first tag `read_tags` names that an enabled rule protects, with that rule. The tags are
        read only when the repository's project has rules at all (most have none)."""
        active = await self._rules_for(conn, repo_id)
        if not active:
            return None
        relative = relative_repository(repository)[1]
        for name in await read_tags():
            rule = first_match(active, relative, name)
            if rule is not None:
                return name, rule
        return None

    async def check_retag(self, conn: AsyncConnection, repo_id: int, repository: str, names: Sequence[str],
                          manifest_id: int) -> None:
        """Refuse to point an existing immutable tag at another manifest (creating one is fine)."""
        hit = await self._protected_tag(conn, repo_id, repository,
                                        lambda: self.queries.tags_elsewhere(conn, repo_id, names, manifest_id))
        if hit is not None:
            tag, rule = hit
            raise TagImmutable(f"tag {tag} in {repository} is immutable ({rule.describe()}): it cannot be "
                               "pushed again with different content; push a new tag instead")

    async def check_tag_delete(self, conn: AsyncConnection, repo_id: int, repository: str, tag: str) -> None:
        hit = await self._protected_tag(conn, repo_id, repository, lambda: _given([tag]))
        if hit is not None:
            raise TagImmutable(f"tag {tag} in {repository} is immutable ({hit[1].describe()}): it cannot be deleted")

    async def check_manifest_delete(self, conn: AsyncConnection, repo_id: int, repository: str,
                                    manifest_id: int, digest: str = "") -> None:
        hit = await self._protected_tag(conn, repo_id, repository,
                                        lambda: self.queries.tags_of_manifest(conn, manifest_id))
        if hit is not None:
            tag, rule = hit
            what = f"artifact {digest}" if digest else "the artifact"
            raise TagImmutable(f"{what} in {repository} carries the immutable tag {tag} ({rule.describe()}): "
                               "it cannot be deleted")

    async def check_repository_delete(self, conn: AsyncConnection, repo_id: int, repository: str) -> None:
        async def tag_names() -> list[str]:
            return [name for name, _ in await self.queries.tags_of_repository(conn, repo_id)]

        hit = await self._protected_tag(conn, repo_id, repository, tag_names)
        if hit is not None:
            tag, rule = hit
            raise TagImmutable(f"repository {repository} holds the immutable tag {tag} ({rule.describe()}): "
                               "it cannot be deleted")

    async def immutable_tags(self, tags: Iterable[tuple[int, str, str]]) -> set[tuple[int, str]]:
        """Of (repository id, repository name, tag) triples, the (repository id, tag) pairs an enabled
        rule protects: what listings report as a tag's `immutable`."""
        out: set[tuple[int, str]] = set()
        async with self.db.read() as conn:
            for repo_id, repository, tag in tags:
                active = await self._rules_for(conn, repo_id)
                if active and first_match(active, relative_repository(repository)[1], tag) is not None:
                    out.add((repo_id, tag))
        return out

    async def protected(self, conn: AsyncConnection, repo_id: int, repository: str) -> dict[int, str]:
        """Manifest id -> why, for every manifest of the repository that carries an immutable tag."""
        active = await self._rules_for(conn, repo_id)
        if not active:
            return {}
        relative = relative_repository(repository)[1]
        out: dict[int, str] = {}
        for name, manifest_id in await self.queries.tags_of_repository(conn, repo_id):
            rule = first_match(active, relative, name)
            if rule is not None and manifest_id not in out:
                out[manifest_id] = f"immutable tag {name} ({rule.describe()})"
        return out


async def _given(names: Sequence[str]) -> Sequence[str]:
    return names


def _body(rule: ImmutableRule) -> dict[str, Any]:
    data = rule.as_json()
    return {"tag_selectors": data["tag_selectors"], "scope_selectors": data["scope_selectors"]}

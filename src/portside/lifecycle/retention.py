"""Tag retention, Harbor's model, as pure functions: policies in and out of JSON, and the plan of one
repository (which artifacts stay, which go, and why). Nothing here does I/O.

A policy (algorithm "or") has up to 15 rules. For one repository:

1. *candidates* are the artifacts that do not hang off another one: not listed by an index of the
   repository and not a referrer (`subject`) of an artifact of the repository;
2. each enabled rule whose repository selectors select the repository takes the candidates its tag
   selectors select (untagged ones only as their `untagged` extras say; label selectors by the labels
   an artifact carries) and keeps some of them by its
   template (`latestPushedK`, `latestPulledN`, `nDaysSinceLastPush`, `nDaysSinceLastPull`, `always`);
3. an artifact is kept if ANY rule keeps it; artifacts carrying an immutable tag are always kept;
4. what a kept artifact needs is kept with it: the children its index lists and its referrers
   (signatures, SBOMs...), transitively. A *tagged* child or referrer whose every parent goes is kept
   too (deleting an artifact never takes a child someone tagged - it is judged on its own next run);
5. everything else in the repository is deleted with its tags, parents before the children they list
   and referrers before their subject.

`total` counts the candidates, `retained` the candidates kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from portside.errors import Invalid
from portside.jobs.cron import parse_schedule
from portside.lifecycle.selectors import (
    LABEL_DECORATIONS,
    LABEL_KIND,
    Selector,
    parse_scope_selectors,
    parse_tag_selectors,
    repository_selected,
    tags_selected,
)
from portside.numbers import parse_int

MAX_RULES = 15
MAX_COUNT = 2_147_483_647
ALGORITHM = "or"
ACTION = "retain"
LATEST_PUSHED, LATEST_PULLED = "latestPushedK", "latestPulledN"
DAYS_SINCE_PUSH, DAYS_SINCE_PULL, ALWAYS = "nDaysSinceLastPush", "nDaysSinceLastPull", "always"

# template -> (display text, parameter unit or None)
TEMPLATES: dict[str, tuple[str, str | None]] = {
    LATEST_PUSHED: ("the most recently pushed # artifacts", "count"),
    LATEST_PULLED: ("the most recently pulled # artifacts", "count"),
    DAYS_SINCE_PUSH: ("pushed within the last # days", "days"),
    DAYS_SINCE_PULL: ("pulled within the last # days", "days"),
    ALWAYS: ("always", None),
}
TRIGGER_KIND = "Schedule"
SCOPE_LEVEL = "project"


# -- policies ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    priority: int
    disabled: bool
    template: str
    params: Mapping[str, int]
    tag_selectors: tuple[Selector, ...]
    scope_selectors: Mapping[str, tuple[Selector, ...]]
    action: str = ACTION

    @property
    def n(self) -> int:
        return int(self.params.get(self.template, 0))

    def applies_to(self, relative_repository: str) -> bool:
        return not self.disabled and repository_selected(dict(self.scope_selectors), relative_repository)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "priority": self.priority, "disabled": self.disabled, "action": self.action,
            "template": self.template, "params": dict(self.params),
            "tag_selectors": [s.as_json() for s in self.tag_selectors],
            "scope_selectors": {k: [s.as_json() for s in v] for k, v in self.scope_selectors.items()},
        }

    def describe(self) -> str:
        return f"rule {self.id} ({self.template}{'' if self.template == ALWAYS else ' ' + str(self.n)})"


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    project_id: int
    cron: str = ""  # empty: run only by hand
    algorithm: str = ALGORITHM
    id: int | None = None

    def with_id(self, policy_id: int) -> Policy:
        return Policy(self.rules, self.project_id, self.cron, self.algorithm, policy_id)

    def rules_for(self, relative_repository: str) -> list[Rule]:
        return [r for r in self.rules if r.applies_to(relative_repository)]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "algorithm": self.algorithm, "rules": [r.as_json() for r in self.rules],
            "trigger": {"kind": TRIGGER_KIND, "settings": {"cron": self.cron}, "references": {}},
            "scope": {"level": SCOPE_LEVEL, "ref": self.project_id},
        }


def _int(value: Any, where: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise Invalid(f"{where}: expected a whole number, not {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and parse_int(value) is not None:
        value = parse_int(value)
    if not isinstance(value, int):
        raise Invalid(f"{where}: expected a whole number, not {value!r}")
    if value < minimum or value > MAX_COUNT:
        raise Invalid(f"{where}: {value} is out of range ({minimum} to {MAX_COUNT})")
    return value


def parse_rule(raw: Any, where: str, index: int) -> Rule:
    if not isinstance(raw, dict):
        raise Invalid(f"{where}: a rule is an object")
    action = raw.get("action") or ACTION
    if action != ACTION:
        raise Invalid(f"{where}.action: {action!r} is not supported; the only action is {ACTION!r}")
    template = raw.get("template")
    if template not in TEMPLATES:
        raise Invalid(f"{where}.template: {template!r} is not one of {', '.join(TEMPLATES)}")
    disabled = raw.get("disabled", False)
    if not isinstance(disabled, bool):
        raise Invalid(f"{where}.disabled: expected true or false")
    params_raw = raw.get("params") or {}
    if not isinstance(params_raw, dict):
        raise Invalid(f"{where}.params: expected an object such as {{\"{template}\": 3}}")
    params: dict[str, int] = {}
    if TEMPLATES[template][1] is not None:
        if template not in params_raw:
            raise Invalid(f"{where}.params.{template}: required by the {template} template")
        params[template] = _int(params_raw[template], f"{where}.params.{template}")
    rule_id = raw.get("id") or index + 1
    return Rule(
        id=_int(rule_id, f"{where}.id", minimum=1),
        priority=_int(raw.get("priority") or 0, f"{where}.priority"),
        disabled=disabled,
        template=template,
        params=params,
        tag_selectors=parse_tag_selectors(raw.get("tag_selectors"), f"{where}.tag_selectors", labels=True),
        scope_selectors=parse_scope_selectors(raw.get("scope_selectors"), f"{where}.scope_selectors"),
    )


def check_cron(cron: str, where: str) -> str:
    cron = cron.strip()
    if not cron:
        return ""
    try:
        parse_schedule("Custom", cron)
    except Invalid:
        raise Invalid(f"{where}: {cron!r} is not a valid cron expression (6 fields with seconds first, "
                      "as Harbor writes them, or 5 Unix fields)") from None
    return cron


def parse_policy(raw: Any, *, project_id: int | None = None) -> Policy:
    """A validated policy from Harbor's RetentionPolicy JSON; Invalid names the offending field.

    `project_id`, when given, is used if the body has no scope (an update keeps its project)."""
    if not isinstance(raw, dict):
        raise Invalid("the body must be a RetentionPolicy object")
    algorithm = raw.get("algorithm") or ALGORITHM
    if algorithm != ALGORITHM:
        raise Invalid(f"algorithm: {algorithm!r} is not supported; the only algorithm is {ALGORITHM!r}")
    rules_raw = raw.get("rules")
    if rules_raw is None:
        rules_raw = []
    if not isinstance(rules_raw, list):
        raise Invalid("rules: expected a list of rules")
    if len(rules_raw) > MAX_RULES:
        raise Invalid(f"rules: {len(rules_raw)} rules given; a policy has at most {MAX_RULES}")
    rules = tuple(parse_rule(r, f"rules[{i}]", i) for i, r in enumerate(rules_raw))
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise Invalid("rules: two rules have the same id")
    trigger = raw.get("trigger") or {}
    if not isinstance(trigger, dict):
        raise Invalid("trigger: expected an object like {\"kind\": \"Schedule\", \"settings\": {\"cron\": \"...\"}}")
    kind = trigger.get("kind") or TRIGGER_KIND
    if kind != TRIGGER_KIND:
        raise Invalid(f"trigger.kind: {kind!r} is not supported; use {TRIGGER_KIND!r}")
    settings = trigger.get("settings") or {}
    if not isinstance(settings, dict):
        raise Invalid("trigger.settings: expected an object like {\"cron\": \"0 0 0 * * *\"}")
    cron = settings.get("cron") or ""
    if not isinstance(cron, str):
        raise Invalid("trigger.settings.cron: expected a cron string")
    cron = check_cron(cron, "trigger.settings.cron")
    scope = raw.get("scope")
    if scope is None and project_id is not None:
        scope = {"level": SCOPE_LEVEL, "ref": project_id}
    if not isinstance(scope, dict):
        raise Invalid("scope: required, e.g. {\"level\": \"project\", \"ref\": <project id>}")
    level = scope.get("level")
    if level != SCOPE_LEVEL:
        raise Invalid(f"scope.level: {level!r} is not supported; the only level is {SCOPE_LEVEL!r}")
    ref = _int(scope.get("ref"), "scope.ref", minimum=1)
    return Policy(rules, ref, cron, algorithm)


# The article's shorthand: {"schedule": {...}, "rules": [{"action", "parameters": {"n": 3}, "tagSelectors"}]}
_SHORTHAND_TEMPLATES = {
    "n": LATEST_PUSHED, "count": LATEST_PUSHED, "latestPushedK": LATEST_PUSHED, "latestPulledN": LATEST_PULLED,
    "days": DAYS_SINCE_PUSH, "nDaysSinceLastPush": DAYS_SINCE_PUSH, "nDaysSinceLastPull": DAYS_SINCE_PULL,
}


def is_shorthand(raw: Any) -> bool:
    """Whether a PUT /projects/{id}/retention body is the shorthand rather than a RetentionPolicy."""
    if not isinstance(raw, dict) or any(k in raw for k in ("algorithm", "trigger", "scope")):
        return False
    rules = raw.get("rules")
    return not (isinstance(rules, list) and any(isinstance(r, dict) and "tag_selectors" in r for r in rules))


def expand_shorthand(raw: dict[str, Any], project_id: int) -> dict[str, Any]:
    """Harbor's RetentionPolicy JSON for the shorthand body of PUT /projects/{id}/retention.

    Each rule keeps the `n` most recently pushed artifacts (or `days` since push, or an explicit
    `template`) whose tags match `tagSelectors` (given on the rule or in its `parameters`), in every
    repository of the project unless `repositories` lists patterns; `schedule` is Harbor's schedule
    object (Hourly, Daily, Weekly, Custom with a cron, or None/Manual)."""
    rules_raw = raw.get("rules") or []
    if not isinstance(rules_raw, list):
        raise Invalid("rules: expected a list of rules")
    rules = []
    for i, r in enumerate(rules_raw):
        where = f"rules[{i}]"
        if not isinstance(r, dict):
            raise Invalid(f"{where}: a rule is an object")
        params = r.get("parameters", r.get("params")) or {}
        if not isinstance(params, dict):
            raise Invalid(f"{where}.parameters: expected an object such as {{\"n\": 3}}")
        template = r.get("template")
        value: Any = None
        if template is None:
            keys = [k for k in params if k in _SHORTHAND_TEMPLATES]
            if len(keys) > 1:
                raise Invalid(f"{where}.parameters: give one of n, days, latestPulledN, nDaysSinceLastPull; "
                              f"got {', '.join(keys)}")
            if keys:
                template, value = _SHORTHAND_TEMPLATES[keys[0]], params[keys[0]]
            else:
                template = ALWAYS if r.get("always") or params.get("always") else None
            if template is None:
                raise Invalid(f"{where}.parameters.n: required (keep the n most recently pushed tags), "
                              "or give days, or a template")
        elif template in TEMPLATES and TEMPLATES[template][1] is not None:
            value = params.get(template, params.get("n", params.get("days")))
        selectors = r.get("tagSelectors", params.get("tagSelectors", ["**"]))
        if isinstance(selectors, str):
            selectors = [selectors]
        if not isinstance(selectors, list) or not selectors or not all(isinstance(p, str) for p in selectors):
            raise Invalid(f"{where}.tagSelectors: expected a list of tag patterns such as [\"*\"]")
        untagged = r.get("untagged", params.get("untagged", False))
        if not isinstance(untagged, bool):
            raise Invalid(f"{where}.untagged: expected true or false")
        repositories = r.get("repositories", params.get("repositories", ["**"]))
        if isinstance(repositories, str):
            repositories = [repositories]
        if not isinstance(repositories, list) or not repositories or not all(
                isinstance(p, str) for p in repositories):
            raise Invalid(f"{where}.repositories: expected a list of repository patterns such as [\"**\"]")
        rules.append({
            "id": i + 1, "priority": 0, "disabled": False, "action": r.get("action") or ACTION,
            "template": template, "params": {template: value} if value is not None else {},
            "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": _alternatives(selectors),
                               "extras": '{"untagged":true}' if untagged else '{"untagged":false}'}],
            "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches",
                                                "pattern": _alternatives(repositories)}]},
        })
    schedule = raw.get("schedule") or {}
    if not isinstance(schedule, dict):
        raise Invalid("schedule: expected an object like {\"type\": \"Hourly\"}")
    cron = ""
    try:
        parsed = parse_schedule(schedule.get("type"), schedule.get("cron"))
    except Invalid as exc:
        raise Invalid(exc.message) from None
    if parsed is not None:
        cron = parsed.cron
    return {"algorithm": ALGORITHM, "rules": rules,
            "trigger": {"kind": TRIGGER_KIND, "settings": {"cron": cron}},
            "scope": {"level": SCOPE_LEVEL, "ref": project_id}}


def _alternatives(patterns: Sequence[str]) -> str:
    unique = list(dict.fromkeys(p.strip() for p in patterns))
    return unique[0] if len(unique) == 1 else "{" + ",".join(unique) + "}"


def metadata() -> dict[str, Any]:
    """GET /retentions/metadatas: the templates and selectors this server understands."""
    return {
        "templates": [
            {"rule_template": name, "display_text": text, "action": ACTION,
             "params": [] if unit is None else [{"type": "int", "unit": unit.upper(), "required": True}]}
            for name, (text, unit) in TEMPLATES.items()
        ],
        "scope_selectors": [{"display_text": "Repositories", "kind": "doublestar",
                             "decorations": ["repoMatches", "repoExcludes"]}],
        "tag_selectors": [{"display_text": "Tags", "kind": "doublestar", "decorations": ["matches", "excludes"]},
                          {"display_text": "Labels", "kind": LABEL_KIND, "decorations": list(LABEL_DECORATIONS)}],
    }


# -- plans ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Artifact:
    """What the planner knows of one manifest of the repository."""

    id: int
    digest: str
    pushed_at: datetime  # the later of the manifest's push and its newest tag's
    tags: tuple[str, ...] = ()
    pulled_at: datetime | None = None
    children: tuple[str, ...] = ()  # digests an index lists
    subject: str | None = None
    labels: tuple[str, ...] = ()  # names of the labels it carries

    def label(self) -> str:
        return f"{self.digest} [{', '.join(self.tags)}]" if self.tags else f"{self.digest} (untagged)"


@dataclass
class Plan:
    candidates: list[Artifact]
    kept: dict[str, str] = field(default_factory=dict)  # digest -> why
    deleted: list[Artifact] = field(default_factory=list)  # in deletion order

    @property
    def total(self) -> int:
        return len(self.candidates)

    @property
    def retained(self) -> int:
        return sum(1 for c in self.candidates if c.digest in self.kept)


_NEVER = datetime.min.replace(tzinfo=UTC)


def _aware(ts: datetime | None) -> datetime:
    if ts is None:
        return _NEVER
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def keep_by_template(rule: Rule, selected: Sequence[Artifact], now: datetime) -> list[Artifact]:
    """What one rule's template keeps of the candidates its selectors selected."""
    if rule.template == ALWAYS:
        return list(selected)
    n = rule.n
    if rule.template == LATEST_PUSHED:
        return sorted(selected, key=lambda a: (_aware(a.pushed_at), a.id), reverse=True)[:n]
    if rule.template == LATEST_PULLED:
        return sorted(selected, key=lambda a: (_aware(a.pulled_at), _aware(a.pushed_at), a.id), reverse=True)[:n]
    cutoff = now - timedelta(days=n)
    if rule.template == DAYS_SINCE_PUSH:
        return [a for a in selected if _aware(a.pushed_at) >= cutoff]
    if rule.template == DAYS_SINCE_PULL:
        return [a for a in selected if a.pulled_at is not None and _aware(a.pulled_at) >= cutoff]
    raise AssertionError(f"unknown template {rule.template}")


def plan(artifacts: Sequence[Artifact], rules: Iterable[Rule], now: datetime,
         protected: Mapping[int, str] | None = None) -> Plan:
    """Decide one repository. `rules` are the rules that apply to it (enabled, in scope);
    `protected` maps manifest ids that must stay (immutable tags) to the reason."""
    by_digest = {a.digest: a for a in artifacts}
    parents: dict[str, list[Artifact]] = {}
    referrers: dict[str, list[Artifact]] = {}
    for a in artifacts:
        for child in dict.fromkeys(a.children):
            if child in by_digest and child != a.digest:
                parents.setdefault(child, []).append(a)
        if a.subject is not None and a.subject in by_digest and a.subject != a.digest:
            referrers.setdefault(a.subject, []).append(a)

    def dependent(a: Artifact) -> bool:
        return a.digest in parents or (a.subject is not None and a.subject in by_digest and a.subject != a.digest)

    candidates = [a for a in artifacts if not dependent(a)]
    result = Plan(candidates)
    kept = result.kept
    for rule in sorted(rules, key=lambda r: (r.priority, r.id)):
        if rule.disabled:
            continue
        selected = [c for c in candidates if tags_selected(rule.tag_selectors, c.tags, c.labels)]
        for a in keep_by_template(rule, selected, now):
            kept.setdefault(a.digest, rule.describe())
    for a in artifacts:
        if protected and a.id in protected:
            kept.setdefault(a.digest, protected[a.id])

    def close() -> None:
        stack = list(kept)
        while stack:
            digest = stack.pop()
            holder = by_digest.get(digest)
            if holder is None:
                continue
            for child in holder.children:
                if child in by_digest and child not in kept:
                    kept[child] = f"listed by kept index {digest}"
                    stack.append(child)
            for ref in referrers.get(digest, []):
                if ref.digest not in kept:
                    kept[ref.digest] = f"referrer of kept {digest}"
                    stack.append(ref.digest)

    close()
    while True:
        orphans = [a for a in artifacts if a.tags and dependent(a) and a.digest not in kept]
        if not orphans:
            break
        for a in orphans:
            kept[a.digest] = "tagged child or referrer of a deleted artifact (judged on its own next run)"
        close()

    doomed = [a for a in artifacts if a.digest not in kept]
    result.deleted = _deletion_order(doomed, by_digest)
    return result


def _deletion_order(doomed: list[Artifact], by_digest: Mapping[str, Artifact]) -> list[Artifact]:
    """Parents before the children they list, referrers before their subject (Kahn's algorithm, ties
    by id so the order is deterministic)."""
    ids = {a.digest for a in doomed}
    after: dict[str, set[str]] = {a.digest: set() for a in doomed}  # digest -> what must go first
    for a in doomed:
        for child in a.children:
            if child in ids and child != a.digest:
                after[child].add(a.digest)
        if a.subject in ids and a.subject != a.digest:
            after[a.subject].add(a.digest)
    order: list[Artifact] = []
    done: set[str] = set()
    remaining = sorted(doomed, key=lambda a: a.id)
    while remaining:
        ready = [a for a in remaining if after[a.digest] <= done]
        if not ready:  # a cycle cannot happen with content addressing; do not loop forever anyway
            ready = remaining[:1]
        for a in ready:
            order.append(a)
            done.add(a.digest)
        remaining = [a for a in remaining if a.digest not in done]
    return order


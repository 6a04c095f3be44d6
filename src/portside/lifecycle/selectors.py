"""Harbor's `doublestar` selectors, shared by tag retention and tag immutability.

A selector is {kind: "doublestar", decoration, pattern, extras}. Tag selectors decorate with
`matches` or `excludes`; repository (scope) selectors with `repoMatches` or `repoExcludes`, and match
the repository name *inside* the project (`app/web` for `myproject/app/web`), as Harbor does.

Patterns are doublestar globs: `*` and `?` stay within one path segment, `**` spans any number of
segments (`**` alone matches everything), `[abc]`/`[!a-z]` are character classes, `{a,b}` are
alternatives, and `\\` escapes the next character. An empty pattern matches everything (Harbor's
rule). Tags have no `/`, so for tags `*` and `**` are the same.

Retention rules may also carry Harbor's label selectors among their tag selectors: {kind: "label",
decoration: "withLabels" | "withoutLabels", pattern: "name1,name2"}, selecting the artifacts that carry
all of those labels, or none of them.

`extras` is a JSON string; `{"untagged": true}` makes a tag selector's decoration apply to untagged
artifacts as well: `matches` then selects untagged artifacts, `excludes` then leaves them out.
Without it `matches` leaves untagged artifacts out and `excludes` selects them (they carry no tag
the excluded pattern names).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from wcmatch import glob

from portside.errors import Invalid

KIND = "doublestar"
MATCHES, EXCLUDES = "matches", "excludes"
REPO_MATCHES, REPO_EXCLUDES = "repoMatches", "repoExcludes"
TAG_DECORATIONS = (MATCHES, EXCLUDES)
LABEL_KIND = "label"
WITH_LABELS, WITHOUT_LABELS = "withLabels", "withoutLabels"
LABEL_DECORATIONS = (WITH_LABELS, WITHOUT_LABELS)
REPO_DECORATIONS = (REPO_MATCHES, REPO_EXCLUDES)
MAX_PATTERN = 512
_FLAGS = glob.GLOBSTAR | glob.BRACE | glob.DOTGLOB | glob.FORCEUNIX


def check_pattern(pattern: str, where: str) -> str:
    """Raise Invalid (naming `where`) unless `pattern` is a well-formed doublestar pattern."""
    if len(pattern) > MAX_PATTERN:
        raise Invalid(f"{where}: pattern is longer than {MAX_PATTERN} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in pattern):
        raise Invalid(f"{where}: pattern {pattern!r} contains control characters")
    braces, i = 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 >= len(pattern):
                raise Invalid(f"{where}: pattern {pattern!r} ends with an unfinished escape")
            i += 2
            continue
        if c == "[":
            end = _class_end(pattern, i)
            if end < 0:
                raise Invalid(f"{where}: pattern {pattern!r} has an unclosed '['")
            i = end + 1
            continue
        if c == "{":
            braces += 1
        elif c == "}":
            braces -= 1
            if braces < 0:
                raise Invalid(f"{where}: pattern {pattern!r} has a '}}' without its '{{'")
        i += 1
    if braces:
        raise Invalid(f"{where}: pattern {pattern!r} has an unclosed '{{'")
    return pattern


def _class_end(pattern: str, start: int) -> int:
    """Index of the `]` closing the class opened at `start`, or -1."""
    i = start + 1
    if i < len(pattern) and pattern[i] in "!^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1  # a leading ] is a member
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i
        if pattern[i] == "/":
            return -1
        i += 1
    return -1


@lru_cache(maxsize=4096)
def _matcher(pattern: str) -> Any:
    return glob.compile(pattern, flags=_FLAGS)


def match(pattern: str, value: str) -> bool:
    """Whether `value` matches the doublestar `pattern` (an empty pattern matches everything)."""
    if not pattern:
        return True
    return bool(_matcher(pattern).match(value))


@dataclass(frozen=True, slots=True)
class Selector:
    kind: str
    decoration: str
    pattern: str
    extras: str = ""

    @property
    def untagged(self) -> bool:
        return untagged_flag(self.extras)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "decoration": self.decoration, "pattern": self.pattern, "extras": self.extras}

    def label_names(self) -> frozenset[str]:
        return frozenset(n.strip() for n in self.pattern.split(",") if n.strip())

    def selects(self, tags: Sequence[str], labels: Collection[str]) -> bool:
        """Whether this tag or label selector selects an artifact carrying `tags` and `labels`."""
        if self.kind == LABEL_KIND:
            names = self.label_names()
            return names <= set(labels) if self.decoration == WITH_LABELS else not names & set(labels)
        return self.selects_tags(tags)

    def selects_tags(self, tags: Sequence[str]) -> bool:
        """Harbor's tag selection for one artifact carrying `tags` (possibly none)."""
        if not tags:
            return self.untagged if self.decoration == MATCHES else not self.untagged
        if self.decoration == MATCHES:
            return any(match(self.pattern, t) for t in tags)
        return any(not match(self.pattern, t) for t in tags)

    def selects_tag(self, tag: str) -> bool:
        hit = match(self.pattern, tag)
        return hit if self.decoration == MATCHES else not hit

    def selects_repository(self, relative_name: str) -> bool:
        hit = match(self.pattern, relative_name)
        return hit if self.decoration == REPO_MATCHES else not hit


def untagged_flag(extras: str) -> bool:
    if not extras:
        return False
    try:
        parsed = json.loads(extras)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("untagged") is True


def parse_label_selector(raw: dict[str, Any], where: str) -> Selector:
    decoration = raw.get("decoration", WITH_LABELS)
    if decoration not in LABEL_DECORATIONS:
        raise Invalid(f"{where}.decoration: {decoration!r} is not one of {', '.join(LABEL_DECORATIONS)}")
    pattern = raw.get("pattern", "")
    if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN:
        raise Invalid(f"{where}.pattern: label names separated by commas, at most {MAX_PATTERN} characters")
    names = [n.strip() for n in pattern.split(",") if n.strip()]
    if not names:
        raise Invalid(f"{where}.pattern: name at least one label, such as \"release,approved\"")
    return Selector(LABEL_KIND, decoration, ",".join(names))


def parse_selector(raw: Any, where: str, decorations: Sequence[str], *, labels: bool = False) -> Selector:
    if not isinstance(raw, dict):
        raise Invalid(f"{where}: a selector is an object with kind, decoration and pattern")
    kind = raw.get("kind", KIND)
    if labels and kind == LABEL_KIND:
        return parse_label_selector(raw, where)
    if kind != KIND:
        supported = f"{KIND!r} or {LABEL_KIND!r}" if labels else repr(KIND)
        raise Invalid(f"{where}.kind: {kind!r} is not supported; use {supported}")
    decoration = raw.get("decoration", decorations[0])
    if decoration not in decorations:
        raise Invalid(f"{where}.decoration: {decoration!r} is not one of {', '.join(decorations)}")
    pattern = raw.get("pattern", "")
    if not isinstance(pattern, str):
        raise Invalid(f"{where}.pattern: a pattern is a string")
    check_pattern(pattern, f"{where}.pattern")
    extras = raw.get("extras") or ""
    if isinstance(extras, dict):
        extras = json.dumps(extras)
    if not isinstance(extras, str):
        raise Invalid(f"{where}.extras: extras is a JSON string such as '{{\"untagged\":true}}'")
    if extras:
        try:
            parsed = json.loads(extras)
        except ValueError:
            raise Invalid(f"{where}.extras: {extras!r} is not JSON") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("untagged", False), bool):
            raise Invalid(f"{where}.extras: expected a JSON object like {{\"untagged\": true}}")
    return Selector(KIND, decoration, pattern, extras)


def parse_tag_selectors(raw: Any, where: str, *, labels: bool = False) -> tuple[Selector, ...]:
    """Tag selectors; with `labels` (retention) label selectors too."""
    if not isinstance(raw, list) or not raw:
        raise Invalid(f"{where}: at least one tag selector is required")
    return tuple(parse_selector(s, f"{where}[{i}]", TAG_DECORATIONS, labels=labels) for i, s in enumerate(raw))


def parse_scope_selectors(raw: Any, where: str) -> dict[str, tuple[Selector, ...]]:
    """Harbor's {"repository": [selector, ...]}; missing or empty means every repository."""
    if raw is None:
        return {"repository": (Selector(KIND, REPO_MATCHES, "**"),)}
    if not isinstance(raw, dict):
        raise Invalid(f"{where}: expected an object like {{\"repository\": [selector]}}")
    unknown = sorted(k for k in raw if k != "repository")
    if unknown:
        raise Invalid(f"{where}: unknown scope {unknown[0]!r}; only 'repository' is supported")
    items = raw.get("repository") or []
    if not isinstance(items, list):
        raise Invalid(f"{where}.repository: expected a list of selectors")
    parsed = tuple(parse_selector(s, f"{where}.repository[{i}]", REPO_DECORATIONS) for i, s in enumerate(items))
    return {"repository": parsed or (Selector(KIND, REPO_MATCHES, "**"),)}


def repository_selected(scope: dict[str, tuple[Selector, ...]], relative_name: str) -> bool:
    """All repository selectors must select the repository."""
    return all(s.selects_repository(relative_name) for s in scope.get("repository", ()))


def tags_selected(selectors: Iterable[Selector], tags: Sequence[str], labels: Collection[str] = ()) -> bool:
    """All tag (and label) selectors must select the artifact."""
    return all(s.selects(tags, labels) for s in selectors)


def relative_repository(repository: str) -> tuple[str, str]:
    """("project", "path/inside") for "project/path/inside"."""
    project, _, rest = repository.partition("/")
    return project, rest

"""Retention selection as pure functions: every template with every kind of tag selector, on artifacts
with controlled push and pull times; closures (index children, referrers), immutable protection,
deletion order, policy validation, the article's shorthand, and the doublestar matcher."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from portside.errors import Invalid
from portside.lifecycle.immutability import first_match, parse_immutable_rule
from portside.lifecycle.retention import (
    Artifact,
    Rule,
    expand_shorthand,
    is_shorthand,
    metadata,
    parse_policy,
    parse_rule,
    plan,
)
from portside.lifecycle.selectors import check_pattern, match

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def days(n: float) -> datetime:
    return NOW - timedelta(days=n)


# One repository: four tagged artifacts and two untagged ones, pushed and pulled at known times.
#   pushed (newest first): a3 -1d, a4 -2d, u1 -3d, a2 -5d, a1 -10d, u2 -30d
#   pulled (newest first): a1 -1d, u2 -2d, a4 -3d, a3 -20d; a2 and u1 never
REPO = [
    Artifact(1, "sha256:a1", days(10), ("v1.0",), days(1)),
    Artifact(2, "sha256:a2", days(5), ("v1.1",), None),
    Artifact(3, "sha256:a3", days(1), ("v2.0", "latest"), days(20)),
    Artifact(4, "sha256:a4", days(2), ("dev-1",), days(3)),
    Artifact(5, "sha256:u1", days(3), (), None),
    Artifact(6, "sha256:u2", days(30), (), days(2)),
]
ALL = {"a1", "a2", "a3", "a4", "u1", "u2"}

SELECTORS = {
    "matches ** (tagged only)": ("matches", "**", False),
    "matches ** with untagged": ("matches", "**", True),
    "matches v1.*": ("matches", "v1.*", False),
    "excludes dev-*": ("excludes", "dev-*", False),
    "excludes dev-* and untagged": ("excludes", "dev-*", True),
    "matches {latest,dev-*}": ("matches", "{latest,dev-*}", False),
    "excludes latest": ("excludes", "latest", False),
}
TEMPLATES = {
    "latestPushedK": 2,
    "latestPulledN": 2,
    "nDaysSinceLastPush": 4,
    "nDaysSinceLastPull": 4,
    "always": None,
}
# (selector, template) -> what stays
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("matches ** (tagged only)", "latestPushedK"): {"a3", "a4"},
    ("matches ** (tagged only)", "latestPulledN"): {"a1", "a4"},
    ("matches ** (tagged only)", "nDaysSinceLastPush"): {"a3", "a4"},
    ("matches ** (tagged only)", "nDaysSinceLastPull"): {"a1", "a4"},
    ("matches ** (tagged only)", "always"): {"a1", "a2", "a3", "a4"},
    ("matches ** with untagged", "latestPushedK"): {"a3", "a4"},
    ("matches ** with untagged", "latestPulledN"): {"a1", "u2"},
    ("matches ** with untagged", "nDaysSinceLastPush"): {"a3", "a4", "u1"},
    ("matches ** with untagged", "nDaysSinceLastPull"): {"a1", "a4", "u2"},
    ("matches ** with untagged", "always"): ALL,
    ("matches v1.*", "latestPushedK"): {"a1", "a2"},
    ("matches v1.*", "latestPulledN"): {"a1", "a2"},  # fewer selected than N: the never-pulled one stays too
    ("matches v1.*", "nDaysSinceLastPush"): set(),
    ("matches v1.*", "nDaysSinceLastPull"): {"a1"},
    ("matches v1.*", "always"): {"a1", "a2"},
    ("excludes dev-*", "latestPushedK"): {"a3", "u1"},
    ("excludes dev-*", "latestPulledN"): {"a1", "u2"},
    ("excludes dev-*", "nDaysSinceLastPush"): {"a3", "u1"},
    ("excludes dev-*", "nDaysSinceLastPull"): {"a1", "u2"},
    ("excludes dev-*", "always"): {"a1", "a2", "a3", "u1", "u2"},
    ("excludes dev-* and untagged", "latestPushedK"): {"a3", "a2"},
    ("excludes dev-* and untagged", "latestPulledN"): {"a1", "a3"},
    ("excludes dev-* and untagged", "nDaysSinceLastPush"): {"a3"},
    ("excludes dev-* and untagged", "nDaysSinceLastPull"): {"a1"},
    ("excludes dev-* and untagged", "always"): {"a1", "a2", "a3"},
    ("matches {latest,dev-*}", "latestPushedK"): {"a3", "a4"},
    ("matches {latest,dev-*}", "latestPulledN"): {"a3", "a4"},
    ("matches {latest,dev-*}", "nDaysSinceLastPush"): {"a3", "a4"},
    ("matches {latest,dev-*}", "nDaysSinceLastPull"): {"a4"},
    ("matches {latest,dev-*}", "always"): {"a3", "a4"},
    # a3 also carries v2.0, which is not "latest": excludes selects it (Harbor: any tag not matching)
    ("excludes latest", "latestPushedK"): {"a3", "a4"},
    ("excludes latest", "latestPulledN"): {"a1", "u2"},
    ("excludes latest", "nDaysSinceLastPush"): {"a3", "a4", "u1"},
    ("excludes latest", "nDaysSinceLastPull"): {"a1", "a4", "u2"},
    ("excludes latest", "always"): ALL,
}


def rule(template: str, n: int | None = None, decoration: str = "matches", pattern: str = "**",
         untagged: bool = False, *, rule_id: int = 1, disabled: bool = False,
         repositories: list[tuple[str, str]] | None = None) -> Rule:
    raw: dict[str, Any] = {
        "id": rule_id, "disabled": disabled, "action": "retain", "template": template,
        "params": {template: n} if n is not None else {},
        "tag_selectors": [{"kind": "doublestar", "decoration": decoration, "pattern": pattern,
                           "extras": '{"untagged":true}' if untagged else '{"untagged":false}'}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": d, "pattern": p}
                                           for d, p in (repositories or [("repoMatches", "**")])]},
    }
    return parse_rule(raw, "rules[0]", 0)


def short(digests: set[str] | list[str]) -> set[str]:
    return {d.removeprefix("sha256:") for d in digests}


def test_the_table_covers_every_template_and_selector() -> None:
    assert set(EXPECTED) == {(s, t) for s in SELECTORS for t in TEMPLATES}


@pytest.mark.parametrize(("selector", "template"), sorted(EXPECTED))
def test_template_with_selector(selector: str, template: str) -> None:
    decoration, pattern, untagged = SELECTORS[selector]
    result = plan(REPO, [rule(template, TEMPLATES[template], decoration, pattern, untagged)], NOW)
    kept = short(set(result.kept))
    assert kept == EXPECTED[(selector, template)]
    assert short([a.digest for a in result.deleted]) == ALL - kept
    assert result.total == 6 and result.retained == len(kept)


def test_zero_keeps_nothing_and_rules_add_up() -> None:
    assert plan(REPO, [rule("latestPushedK", 0)], NOW).kept == {}
    both = plan(REPO, [rule("latestPushedK", 1, pattern="v1.*", rule_id=1),
                       rule("always", pattern="latest", rule_id=2)], NOW)
    assert short(set(both.kept)) == {"a2", "a3"}
    assert both.kept["sha256:a2"].startswith("rule 1") and both.kept["sha256:a3"].startswith("rule 2")


def test_disabled_rules_and_no_rules_keep_nothing_by_themselves() -> None:
    assert plan(REPO, [rule("always", disabled=True)], NOW).kept == {}
    nothing = plan(REPO, [], NOW)
    assert nothing.kept == {} and len(nothing.deleted) == 6


def test_every_tag_selector_must_select() -> None:
    raw = {"template": "always", "tag_selectors": [
        {"kind": "doublestar", "decoration": "matches", "pattern": "v*"},
        {"kind": "doublestar", "decoration": "excludes", "pattern": "v1.0"}]}
    assert short(set(plan(REPO, [parse_rule(raw, "r", 0)], NOW).kept)) == {"a2", "a3"}


def test_index_children_and_referrers_follow_their_parent() -> None:
    child_a = Artifact(10, "sha256:ca", days(9))
    child_b = Artifact(11, "sha256:cb", days(9))
    shared = Artifact(12, "sha256:shared", days(9))
    old_index = Artifact(13, "sha256:old", days(8), ("old",), children=("sha256:ca", "sha256:shared"))
    new_index = Artifact(14, "sha256:new", days(1), ("new",), children=("sha256:cb", "sha256:shared"))
    sig_new = Artifact(15, "sha256:signew", days(1), subject="sha256:new")
    sig_old = Artifact(16, "sha256:sigold", days(8), subject="sha256:old")
    sbom_sig = Artifact(17, "sha256:sbomsig", days(1), subject="sha256:signew")  # a referrer of a referrer
    arts = [child_a, child_b, shared, old_index, new_index, sig_new, sig_old, sbom_sig]
    result = plan(arts, [rule("latestPushedK", 1)], NOW)
    assert short(set(result.kept)) == {"new", "cb", "shared", "signew", "sbomsig"}
    assert short([a.digest for a in result.deleted]) == {"old", "ca", "sigold"}
    order = [a.digest for a in result.deleted]
    assert order.index("sha256:old") < order.index("sha256:ca")  # the index before its child
    assert order.index("sha256:sigold") < order.index("sha256:old")  # the referrer before its subject
    assert result.total == 2 and result.retained == 1  # only the two indexes are candidates
    assert result.kept["sha256:shared"] == "listed by kept index sha256:new"


def test_a_tagged_child_of_a_deleted_index_stays() -> None:
    child = Artifact(20, "sha256:child", days(9), ("child-tag",))
    index = Artifact(21, "sha256:index", days(9), ("v1",), children=("sha256:child",))
    newer = Artifact(22, "sha256:newer", days(1), ("v2",))
    result = plan([child, index, newer], [rule("latestPushedK", 1)], NOW)
    assert short([a.digest for a in result.deleted]) == {"index"}
    assert "sha256:child" in result.kept


def test_immutable_artifacts_and_what_they_need_are_protected() -> None:
    child = Artifact(30, "sha256:pchild", days(50))
    index = Artifact(31, "sha256:pindex", days(50), ("release",), children=("sha256:pchild",))
    result = plan([*REPO, child, index], [rule("latestPushedK", 1)], NOW, protected={31: "immutable tag release"})
    assert result.kept["sha256:pindex"] == "immutable tag release"
    assert "sha256:pchild" in result.kept
    assert short(set(result.kept)) == {"a3", "pindex", "pchild"}


def test_rules_apply_only_to_repositories_in_their_scope() -> None:
    only_app = rule("always", repositories=[("repoMatches", "app/**")])
    not_tmp = rule("always", repositories=[("repoExcludes", "{tmp,scratch}*")])
    assert only_app.applies_to("app/web") and not only_app.applies_to("web")
    assert not_tmp.applies_to("web") and not not_tmp.applies_to("tmp-1") and not not_tmp.applies_to("scratch")
    both = rule("always", repositories=[("repoMatches", "**"), ("repoExcludes", "legacy")])
    assert both.applies_to("x/y") and not both.applies_to("legacy")


# -- validation ----------------------------------------------------------------------------------


def policy(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "algorithm": "or",
        "rules": [{"id": 1, "priority": 0, "disabled": False, "action": "retain", "template": "latestPushedK",
                   "params": {"latestPushedK": 3},
                   "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "**",
                                      "extras": '{"untagged":true}'}],
                   "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches",
                                                       "pattern": "**"}]}}],
        "trigger": {"kind": "Schedule", "settings": {"cron": "0 0 0 * * *"}},
        "scope": {"level": "project", "ref": 7},
    }
    for path, value in changes.items():
        target = raw
        keys = path.split("__")
        for k in keys[:-1]:
            target = target[int(k)] if k.isdigit() else target[k]
        target[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return raw


def test_a_valid_policy_round_trips() -> None:
    parsed = parse_policy(policy())
    assert parsed.project_id == 7 and parsed.cron == "0 0 0 * * *" and parsed.rules[0].n == 3
    again = parse_policy(parsed.with_id(5).as_json())
    assert again.as_json() == parsed.as_json()
    assert parse_policy(policy(trigger__settings__cron="0 * * * *")).cron == "0 * * * *"  # 5 fields too
    assert parse_policy(policy(trigger__settings__cron="")).cron == ""  # no schedule
    assert parse_policy(policy(rules=[])).rules == ()


BAD = [
    ({"trigger__settings__cron": "not a cron"}, "trigger.settings.cron"),
    ({"trigger__settings__cron": "61 * * * *"}, "trigger.settings.cron"),
    ({"trigger__kind": "Event"}, "trigger.kind"),
    ({"rules__0__template": "latestSomething"}, "rules[0].template"),
    ({"rules__0__params": {"latestPushedK": -1}}, "rules[0].params.latestPushedK"),
    ({"rules__0__params": {"latestPushedK": "three"}}, "rules[0].params.latestPushedK"),
    ({"rules__0__params": {"latestPushedK": True}}, "rules[0].params.latestPushedK"),
    ({"rules__0__params": {}}, "rules[0].params.latestPushedK"),
    ({"rules__0__action": "delete"}, "rules[0].action"),
    ({"rules__0__tag_selectors": []}, "rules[0].tag_selectors"),
    ({"rules__0__tag_selectors__0__pattern": "v[1"}, "rules[0].tag_selectors[0].pattern"),
    ({"rules__0__tag_selectors__0__pattern": "{a,b"}, "rules[0].tag_selectors[0].pattern"),
    ({"rules__0__tag_selectors__0__decoration": "repoMatches"}, "rules[0].tag_selectors[0].decoration"),
    ({"rules__0__tag_selectors__0__kind": "regexp"}, "rules[0].tag_selectors[0].kind"),
    ({"rules__0__tag_selectors__0__extras": "{untagged}"}, "rules[0].tag_selectors[0].extras"),
    ({"rules__0__scope_selectors__repository__0__pattern": "a\\"},
     "rules[0].scope_selectors.repository[0].pattern"),
    ({"rules__0__scope_selectors": {"namespace": []}}, "rules[0].scope_selectors"),
    ({"scope__level": "system"}, "scope.level"),
    ({"scope__ref": -2}, "scope.ref"),
    ({"algorithm": "and"}, "algorithm"),
]


@pytest.mark.parametrize(("changes", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_policies_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_policy(policy(**changes))
    assert caught.value.message.startswith(field), caught.value.message


def test_at_most_fifteen_rules() -> None:
    one = policy()["rules"][0]
    parse_policy(policy(rules=[{**one, "id": i + 1} for i in range(15)]))
    with pytest.raises(Invalid, match=r"^rules: 16 rules"):
        parse_policy(policy(rules=[{**one, "id": i + 1} for i in range(16)]))


ARTICLE = {"schedule": {"type": "Hourly", "cron": "0 * * * *"},
           "rules": [{"action": "retain", "parameters": {"n": 3, "tagSelectors": ["*"]}}]}
ARTICLE_TOP_LEVEL_SELECTORS = {"schedule": {"type": "Hourly", "cron": "0 * * * *"},
                               "rules": [{"action": "retain", "parameters": {"n": 3}, "tagSelectors": ["*"]}]}


@pytest.mark.parametrize("body", [ARTICLE, ARTICLE_TOP_LEVEL_SELECTORS], ids=["in-parameters", "on-the-rule"])
def test_the_article_shorthand(body: dict[str, Any]) -> None:
    assert is_shorthand(body) and not is_shorthand(policy())
    parsed = parse_policy(expand_shorthand(body, 1))
    assert parsed.project_id == 1 and parsed.cron == "0 * * * *"
    (r,) = parsed.rules
    assert (r.template, r.n, r.disabled) == ("latestPushedK", 3, False)
    assert [(s.decoration, s.pattern, s.untagged) for s in r.tag_selectors] == [("matches", "*", False)]
    assert r.applies_to("any/repository")
    result = plan(REPO, parsed.rules, NOW)
    assert short(set(result.kept)) == {"a3", "a4", "a2"}  # the 3 most recently pushed tagged artifacts


def test_shorthand_variants_and_errors() -> None:
    daily = parse_policy(expand_shorthand({"schedule": {"type": "Daily"},
                                           "rules": [{"parameters": {"days": 7}, "tagSelectors": ["v*", "latest"]}]},
                                          3))
    assert daily.cron == "0 0 0 * * *" and daily.rules[0].template == "nDaysSinceLastPush"
    assert daily.rules[0].tag_selectors[0].pattern == "{v*,latest}"
    manual = parse_policy(expand_shorthand({"rules": [{"parameters": {"n": 1}}]}, 3))
    assert manual.cron == "" and manual.rules[0].tag_selectors[0].pattern == "**"
    for body, field in [
        ({"rules": [{"parameters": {}}]}, "rules[0].parameters.n"),
        ({"rules": [{"parameters": {"n": 1}}], "schedule": {"type": "Custom", "cron": "every hour"}}, "schedule.cron"),
        ({"rules": [{"parameters": {"n": 1}}], "schedule": {"type": "Fortnightly"}}, "schedule.type"),
        ({"rules": [{"parameters": {"n": 1}, "tagSelectors": "["}]}, "rules[0].tag_selectors[0].pattern"),
    ]:
        with pytest.raises(Invalid) as caught:
            parse_policy(expand_shorthand(body, 3))
        assert caught.value.message.startswith(field), caught.value.message
    with pytest.raises(Invalid, match=r"^rules\[0\]\.params\.latestPushedK: -3 is out of range"):
        parse_policy(expand_shorthand({"rules": [{"parameters": {"n": -3}}]}, 3))


def test_metadata_lists_every_template_and_selector() -> None:
    data = metadata()
    assert [t["rule_template"] for t in data["templates"]] == [
        "latestPushedK", "latestPulledN", "nDaysSinceLastPush", "nDaysSinceLastPull", "always"]
    assert data["tag_selectors"][0]["decorations"] == ["matches", "excludes"]
    assert data["scope_selectors"][0]["decorations"] == ["repoMatches", "repoExcludes"]


# -- the matcher and immutable rules ---------------------------------------------------------------

MATCHES = [
    ("**", "a/b/c", True), ("**", "latest", True), ("*", "a/b", False), ("*", "latest", True),
    ("v1.*", "v1.2", True), ("v1.*", "v10.2", False), ("v?", "v1", True), ("v?", "v12", False),
    ("{v1,v2}.*", "v2.3", True), ("{v1,v2}.*", "v3.0", False), ("[a-c]x", "bx", True), ("[!a-c]x", "bx", False),
    ("app/*", "app/web", True), ("app/*", "app/web/x", False), ("app/**", "app/web/x", True),
    ("**/web", "team/app/web", True), ("**/web", "web", True), ("a\\*", "a*", True), ("a\\*", "ab", False),
    ("", "anything", True), ("latest", "latest-1", False), ("*-rc*", "1.0-rc2", True),
]


@pytest.mark.parametrize(("pattern", "value", "expected"), MATCHES)
def test_doublestar(pattern: str, value: str, expected: bool) -> None:
    assert match(pattern, value) is expected


@pytest.mark.parametrize("pattern", ["[abc", "a{b", "a}b", "x\\", "ok\x00"])
def test_bad_patterns(pattern: str) -> None:
    with pytest.raises(Invalid, match=r"^f:"):
        check_pattern(pattern, "f")


def test_immutable_rules_match_repository_and_tag() -> None:
    releases = parse_immutable_rule({"tag_selectors": [{"kind": "doublestar", "decoration": "matches",
                                                        "pattern": "v*"}],
                                     "scope_selectors": {"repository": [{"kind": "doublestar",
                                                                         "decoration": "repoMatches",
                                                                         "pattern": "app/**"}]}}, 1, 1)
    not_dev = parse_immutable_rule({"tag_selectors": [{"kind": "doublestar", "decoration": "excludes",
                                                       "pattern": "dev-*"}]}, 1, 2)
    off = parse_immutable_rule({"disabled": True, "tag_selectors": [{"decoration": "matches", "pattern": "**"}]},
                               1, 3)
    assert releases.matches("app/web", "v1") and not releases.matches("web", "v1")
    assert not releases.matches("app/web", "latest")
    assert not_dev.matches("web", "latest") and not not_dev.matches("web", "dev-3")
    assert not off.matches("web", "anything")
    assert first_match([off, releases, not_dev], "app/web", "v2") is releases
    assert first_match([off, releases, not_dev], "web", "dev-1") is None
    for raw, field in [({"tag_selectors": []}, "tag_selectors"),
                       ({"tag_selectors": [{"pattern": "[x"}]}, "tag_selectors[0].pattern"),
                       ({"template": "other", "tag_selectors": [{"pattern": "x"}]}, "template"),
                       ({"action": "retain", "tag_selectors": [{"pattern": "x"}]}, "action")]:
        with pytest.raises(Invalid) as caught:
            parse_immutable_rule(raw, 1)
        assert caught.value.message.startswith(field), caught.value.message

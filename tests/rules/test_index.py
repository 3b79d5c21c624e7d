"""The rule index returns exactly what a linear scan would, without scanning every rule."""

from __future__ import annotations

import dataclasses
import random
from typing import ClassVar

import pytest

from rules import Alert, Matcher, Rule, RuleSet, Template
from rules.alert import Source, Status
from rules.schema import ActionStep, Guards
from tests.rules.support import make_alert

NAMES = [f"Alert{i}" for i in range(12)]
JOBS = ["api", "web", "db", "cache"]


def make_rule(
    name: str,
    alertname: str | None = None,
    matchers: tuple[Matcher, ...] = (),
    source: str = "any",
    status: str = "firing",
) -> Rule:
    return Rule(
        name=name,
        description="",
        source=source,
        status=status,
        alertname=alertname,
        matchers=matchers,
        for_=None,
        target=Template.parse("t"),
        guards=Guards(),
        actions=(ActionStep("noop", {}),),
        verify=None,
        on_failure=(),
        file="gen.yaml",
        line=1,
    )


def random_rule(rng: random.Random, i: int) -> Rule:
    matchers: list[Matcher] = []
    alertname = None
    kind = rng.randrange(5)
    if kind == 0:
        alertname = rng.choice(NAMES)
    elif kind == 1:
        matchers.append(Matcher("alertname", "=", rng.choice(NAMES)))
    elif kind == 2:
        matchers.append(Matcher("alertname", "=~", f"Alert{rng.randrange(3)}.*"))
    elif kind == 3:
        matchers.append(Matcher("alertname", "!=", rng.choice(NAMES)))
    if rng.random() < 0.5:
        matchers.append(Matcher("job", rng.choice(["=", "!=", "=~", "!~"]), rng.choice(JOBS)))
    return make_rule(
        f"rule-{i}",
        alertname=alertname,
        matchers=tuple(matchers),
        source=rng.choice(["any", "any", "alertmanager", "cloudwatch"]),
        status=rng.choice(["firing", "firing", "resolved"]),
    )


def random_alert(rng: random.Random) -> Alert:
    source: Source = rng.choice(["alertmanager", "cloudwatch"])
    status: Status = rng.choice(["firing", "resolved"])
    name = rng.choice([*NAMES, "Unknown"])
    labels = {"job": rng.choice(JOBS)}
    alert = make_alert(name, labels=labels, source=source, status=status)
    if source == "cloudwatch":
        # CloudWatch alarms carry no alertname label; matchers fall back to the name.
        labels_without = {k: v for k, v in alert.labels.items() if k != "alertname"}
        alert = dataclasses.replace(alert, labels=labels_without)
    elif rng.random() < 0.1:
        # A label that disagrees with the name: both spellings must still be honoured.
        alert = dataclasses.replace(alert, labels={**alert.labels, "alertname": rng.choice(NAMES)})
    return alert


def test_index_matches_a_linear_scan() -> None:
    rng = random.Random(20240501)  # noqa: S311 (reproducible test data, not crypto)
    rules = [random_rule(rng, i) for i in range(400)]
    ruleset = RuleSet(rules)
    assert len(ruleset) == 400
    matched = 0
    for _ in range(2000):
        alert = random_alert(rng)
        expected = [rule for rule in rules if rule.matches(alert)]
        assert ruleset.match(alert) == expected
        matched += len(expected)
    assert matched > 1000  # the generated rules do match things


class CountingMatcher(Matcher):
    """A matcher that counts how often it is evaluated."""

    calls: ClassVar[int] = 0

    def matches_value(self, value: str) -> bool:
        CountingMatcher.calls += 1
        return Matcher.matches_value(self, value)


def test_rules_for_other_alerts_are_not_evaluated() -> None:
    rules = [
        make_rule(f"r{i}", alertname=f"Other{i}", matchers=(CountingMatcher("job", "=", "api"),))
        for i in range(1000)
    ]
    rules.append(
        make_rule("mine", alertname="Mine", matchers=(CountingMatcher("job", "=", "api"),))
    )
    ruleset = RuleSet(rules)
    CountingMatcher.calls = 0
    assert [r.name for r in ruleset.match(make_alert("Mine", labels={"job": "api"}))] == ["mine"]
    assert CountingMatcher.calls == 1


def test_order_is_rule_order_across_indexed_and_unindexed_rules() -> None:
    rules = [
        make_rule("catch-all"),
        make_rule("by-name", alertname="Disk"),
        make_rule("by-label", matchers=(Matcher("alertname", "=", "Disk"),)),
        make_rule("regex", matchers=(Matcher("alertname", "=~", "D.*"),)),
        make_rule("other", alertname="Cpu"),
    ]
    ruleset = RuleSet(rules)
    assert [r.name for r in ruleset.match(make_alert("Disk"))] == [
        "catch-all",
        "by-name",
        "by-label",
        "regex",
    ]
    assert [r.name for r in ruleset.match(make_alert("Cpu"))] == ["catch-all", "other"]


def test_by_name_and_duplicates() -> None:
    ruleset = RuleSet([make_rule("a"), make_rule("b")], version="abc")
    assert ruleset.version == "abc"
    assert ruleset.by_name("b") is ruleset.rules[1]
    assert ruleset.by_name("missing") is None
    assert [r.name for r in ruleset] == ["a", "b"]
    with pytest.raises(ValueError, match="duplicate rule name 'a'"):
        RuleSet([make_rule("a"), make_rule("a")])


def test_rule_match_filters() -> None:
    rule = make_rule(
        "r", alertname="Disk", matchers=(Matcher("job", "=~", "a.*"),), source="cloudwatch"
    )
    assert rule.matches(make_alert("Disk", labels={"job": "api"}, source="cloudwatch"))
    assert not rule.matches(make_alert("Disk", labels={"job": "api"}))
    assert not rule.matches(make_alert("Disk", labels={"job": "web"}, source="cloudwatch"))
    assert not rule.matches(
        make_alert("Disk", labels={"job": "api"}, source="cloudwatch", status="resolved")
    )
    assert not rule.matches(make_alert("Cpu", labels={"job": "api"}, source="cloudwatch"))

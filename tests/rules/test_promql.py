"""``when:`` preconditions in rules: PromQL templates that a label cannot break out of."""

from __future__ import annotations

import re

import pytest

from rules import load_rules_text
from rules.promql import Expectation, Query
from rules.template import TemplateSyntaxError
from tests.rules.support import HttpCatalog, make_alert
from tests.rules.test_loader import problems

RULE = """\
rules:
  - name: restart-if-still-down
    match: {{alertname: ServiceDown}}
    target: 'svc:{{{{ labels.job }}}}'
    when:
{when}
    actions:
      - action: http.request
        params: {{url: 'https://hooks.example/restart'}}
"""


def test_a_label_value_stays_inside_its_string_literal() -> None:
    query = Query.parse('service_up{job="{{ labels.job }}"} == 0')
    hostile = make_alert(labels={"job": '"}) or vector(1) #'})
    assert query.render(hostile) == 'service_up{job="\\"}) or vector(1) #"} == 0'
    backslash = make_alert(labels={"job": "a\\\nb"})  # a, backslash, newline, b
    assert query.render(backslash) == 'service_up{job="a\\\\\\u000ab"} == 0'
    odd = make_alert(labels={"job": "x\ufffd\x00"})  # Prometheus's lexer refuses U+FFFD raw
    assert query.render(odd) == 'service_up{job="x\\ufffd\\u0000"} == 0'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("service_up{job={{ labels.job }}} == 0", "must be inside a double-quoted string"),
        ("service_up{job='{{ labels.job }}'} == 0", "must be inside a double-quoted string"),
        ('rate(http_requests_total{job="x"}[5m]', "unclosed '('"),
        ('up{job="x"}) == 0', "unbalanced ')'"),
        ('up{job="x} == 0', 'unclosed "'),
        ("up{{ labels.job }", "unclosed '{{'"),
        ('up{job=~"{{ labels.job }}"}', "is in a regular expression (=~ or !~)"),
        ('up{job!~ "{{ labels.job }}"}', "is in a regular expression (=~ or !~)"),
        ('up{job="x"} # "{{ labels.job }}"', "is in a comment"),
        (
            'up{job=`\\`, instance=`"{{ labels.job }}"`}',
            "must be inside a double-quoted string",
        ),
    ],
)
def test_a_query_that_could_not_be_asked_safely_is_refused(text: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=re.escape(message)):
        Query.parse(text)


@pytest.mark.parametrize(
    ("expect", "values", "met", "seen"),
    [
        ("nonempty", [0.0], True, "value 0"),
        ("nonempty", [], False, "no series"),
        ("empty", [], True, "no series"),
        ("empty", [1.0, 2.0], False, "2 series (1, 2)"),
        ("> 0.5", [0.7], True, "value 0.7"),
        ("> 0.5", [0.2], False, "value 0.2"),
        ("== 0", [], False, "no series"),
        ("<= 3", [float("nan")], False, "value nan"),
    ],
)
def test_an_expectation_reads_the_answer(
    expect: str, values: list[float], met: bool, seen: str
) -> None:
    assert Expectation.parse(expect).holds(values) == (met, seen)


def test_a_comparison_of_several_series_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="a comparison needs one value, the query gave 2 series"):
        Expectation.parse("> 1").holds([1.0, 3.0])


def test_when_loads_with_nonempty_by_default() -> None:
    text = RULE.format(
        when="      - query: 'service_up{job=\"{{ labels.job }}\"} == 0'\n"
        "      - {query: 'sum(rate(errors[5m]))', expect: '> 0.1'}"
    )
    (rule,) = load_rules_text(text, "r.yaml", HttpCatalog())
    assert [(str(c.query), c.expect.text, c.line) for c in rule.when] == [
        ('service_up{job="{{ labels.job }}"} == 0', "nonempty", 6),
        ("sum(rate(errors[5m]))", "> 0.1", 7),
    ]


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (
            "      - query: 'up{job={{ labels.job }}}'",
            "r.yaml:6: rule restart-if-still-down: when[0].query: {{ labels.job }} must be inside"
            ' a double-quoted string, e.g. job="{{ labels.job }}": a value outside quotes would'
            " be PromQL",
        ),
        (
            "      - {query: 'up', expect: 'about 3'}",
            "r.yaml:6: rule restart-if-still-down: when[0].expect: expected nonempty, empty, or a"
            " comparison such as '> 0.5' or '== 0', got 'about 3'",
        ),
        (
            "      - {expect: empty}",
            "r.yaml:6: rule restart-if-still-down: when[0]: missing required key 'query'",
        ),
    ],
)
def test_a_bad_precondition_names_file_line_rule_and_field(when: str, expected: str) -> None:
    assert problems(RULE.format(when=when)) == [expected]


VERIFY_RULE = """\
rules:
  - name: restart-and-check
    match: {{alertname: ServiceDown}}
    target: 'svc:{{{{ labels.job }}}}'
    actions:
      - action: http.request
        params: {{url: 'https://hooks.example/restart'}}
    verify: {verify}
"""


def test_verify_by_query_alone_or_with_the_resolve() -> None:
    text = VERIFY_RULE.format(
        verify="{query: 'up{job=\"{{ labels.job }}\"} == 1', within: 5m, resolved_within: 10m}"
    )
    (rule,) = load_rules_text(text, "r.yaml", HttpCatalog())
    assert rule.verify is not None and rule.verify.query is not None
    assert (str(rule.verify.query.query), rule.verify.query.expect.text) == (
        'up{job="{{ labels.job }}"} == 1',
        "nonempty",
    )
    assert (rule.verify.within, rule.verify.resolved_within) == (300.0, 600.0)


@pytest.mark.parametrize(
    ("verify", "expected"),
    [
        ("{query: 'up == 1'}", "verify: query needs within: how long it has to hold"),
        ("{within: 5m}", "verify: within goes with query (the alert has resolved_within)"),
        ("{}", "verify: give resolved_within, or query and within, or both"),
        (
            "{query: 'up{job={{ labels.job }}}', within: 1m}",
            "verify.query: {{ labels.job }} must be inside a double-quoted string",
        ),
    ],
)
def test_a_bad_verify_names_its_field(verify: str, expected: str) -> None:
    (line,) = problems(VERIFY_RULE.format(verify=verify))
    assert line.startswith("r.yaml:8: rule restart-and-check: " + expected), line


def test_silence_needs_a_duration_of_a_minute_or_more() -> None:
    text = VERIFY_RULE.format(verify="{resolved_within: 5m}") + "    silence: {duration: 30s}\n"
    (line,) = problems(text)
    assert line == "r.yaml:9: rule restart-and-check: silence.duration: at least 1m"
    good = VERIFY_RULE.format(verify="{resolved_within: 5m}") + (
        "    silence: {duration: 20m, comment: restarting}\n"
    )
    (rule,) = load_rules_text(good, "r.yaml", HttpCatalog())
    assert rule.silence is not None
    assert (rule.silence.duration, rule.silence.comment) == (1200.0, "restarting")

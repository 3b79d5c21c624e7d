"""Alertmanager matcher syntax and semantics."""

from __future__ import annotations

import pytest

from rules import Matcher, parse_matcher


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "warning"}, False),
        ('severity!="critical"', {"severity": "warning"}, True),
        ('severity!="critical"', {"severity": "critical"}, False),
        ('job=~".*-service"', {"job": "api-service"}, True),
        ('job=~".*-service"', {"job": "api-service-canary"}, False),
        ('job!~".*-service"', {"job": "api-service"}, False),
        ('job!~".*-service"', {"job": "database"}, True),
        ("severity=critical", {"severity": "critical"}, True),
        ("job=~web|api", {"job": "api"}, True),
    ],
)
def test_each_operator(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


def test_regexes_are_fully_anchored() -> None:
    matcher = parse_matcher('instance=~"web"')
    assert matcher.matches({"instance": "web"})
    assert not matcher.matches({"instance": "webserver"})
    assert not matcher.matches({"instance": "my-web"})
    assert parse_matcher('instance!~"web"').matches({"instance": "webserver"})


def test_alternation_is_anchored_as_a_whole() -> None:
    matcher = parse_matcher('job=~"web|api"')
    assert matcher.matches({"job": "api"})
    assert not matcher.matches({"job": "api-gateway"})
    assert not matcher.matches({"job": "xweb"})


def test_missing_label_counts_as_empty_string() -> None:
    assert parse_matcher('team=""').matches({})
    assert not parse_matcher('team="db"').matches({})
    assert parse_matcher('team!="db"').matches({})
    assert parse_matcher('team=~".*"').matches({})
    assert not parse_matcher('team=~".+"').matches({})
    assert parse_matcher('team!~".+"').matches({})
    assert parse_matcher("team=").matches({})


def test_quoted_values_unescape_like_alertmanager() -> None:
    assert parse_matcher(r'msg="say \"hi\""').value == 'say "hi"'
    assert parse_matcher(r'path="C:\\temp"').value == "C:\\temp"
    assert parse_matcher(r'text="line1\nline2"').value == "line1\nline2"
    # Any other escape keeps its backslash, so regex classes survive quoting.
    digits = parse_matcher(r'code=~"5\d\d"')
    assert digits.value == r"5\d\d"
    assert digits.matches({"code": "503"})
    assert not digits.matches({"code": "5xx"})


def test_quoted_value_keeps_operator_characters_and_spaces() -> None:
    matcher = parse_matcher('query = "a=b, c!=d "')
    assert (matcher.name, matcher.op, matcher.value) == ("query", "=", "a=b, c!=d ")


def test_whitespace_around_parts_is_allowed() -> None:
    assert parse_matcher('  job  =~  "api"  ') == Matcher("job", "=~", "api")
    assert parse_matcher(" severity != warning ") == Matcher("severity", "!=", "warning")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('job=~"(unclosed"', "invalid regex '(unclosed': missing ), unterminated subpattern"),
        ('job-name="x"', "invalid label name 'job-name'"),
        ('1job="x"', "invalid label name '1job'"),
        ('="x"', "missing label name"),
        ("severity", "expected NAME followed by =, !=, =~ or !~"),
        ('job="api', "missing closing double quote"),
        ('job="a"b"', "unexpected text after the closing quote"),
        ('job=a"b', "unescaped double quote"),
    ],
)
def test_invalid_matchers_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="invalid matcher") as info:
        parse_matcher(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


def test_matcher_constructed_directly_validates_its_regex() -> None:
    with pytest.raises(ValueError, match=r"invalid regex '\['"):
        Matcher("job", "=~", "[")


def test_str_round_trips() -> None:
    for text in [r'msg="say \"hi\"\n"', 'job=~"a|b"', 'x!=""', r'p!~"C:\\d"']:
        matcher = parse_matcher(text)
        assert parse_matcher(str(matcher)) == matcher


def test_matchers_are_hashable_values() -> None:
    assert parse_matcher('job=~"a"') == parse_matcher('job =~ "a"')
    assert len({parse_matcher('job=~"a"'), parse_matcher('job=~"a"')}) == 1

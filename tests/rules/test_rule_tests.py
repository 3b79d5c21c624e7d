"""``remedy test rules``: rule unit tests in simulated time, as a platform team runs them in CI."""

from __future__ import annotations

from pathlib import Path

from tests.receiver.test_cli import remedy, write

ROOT = Path(__file__).parents[2]
RULES = """\
rules:
  - name: restart-if-still-down
    match: {alertname: ServiceDown}
    for: 1m
    target: 'svc:{{ labels.job }}'
    when:
      - query: 'up{job="{{ labels.job }}"} == 0'
    actions:
      - action: http.request
        params: {url: 'http://{{ labels.job }}.internal/restart'}
"""
TESTS = """\
rule_files: [rules.yaml]
tests:
  - name: still down after for, so it would restart
    alerts:
      - {{at: 0s, labels: {{alertname: ServiceDown, job: web}}}}
    prometheus: {{'up{{job="web"}} == 0': [0]}}
    until: 2m
    expect:
      - {{rule: restart-if-still-down, decision: {decision}, target: 'svc:web',
          params: {{url: 'http://web.internal/restart'}}}}
  - name: no answer given, so it does not run
    alerts:
      - {{at: 0s, labels: {{alertname: ServiceDown, job: api}}}}
    prometheus: {{}}
    until: 2m
    expect:
      - {{rule: restart-if-still-down, decision: precondition_error}}
"""


def test_the_shipped_rules_pass_their_own_tests() -> None:
    result = remedy("test", "rules", "rules/defaults.test.yaml", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 7 and all(line.startswith("PASS ") for line in lines)


def test_prometheus_answers_decide_when_and_a_wrong_expectation_is_a_diff(tmp_path: Path) -> None:
    write(tmp_path / "rules.yaml", RULES)
    write(tmp_path / "good.yaml", TESTS.format(decision="would_run"))
    good = remedy("test", "rules", "good.yaml", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout == (
        "PASS good.yaml: still down after for, so it would restart\n"
        "PASS good.yaml: no answer given, so it does not run\n"
    )
    write(tmp_path / "wrong.yaml", TESTS.format(decision="precondition"))
    wrong = remedy("test", "rules", "wrong.yaml", cwd=tmp_path)
    assert wrong.returncode == 1
    assert wrong.stdout.splitlines() == [
        "FAIL wrong.yaml: still down after for, so it would restart",
        "  expect[0] rule restart-if-still-down: decision: expected precondition, got would_run",
        "PASS wrong.yaml: no answer given, so it does not run",
    ]


def test_a_broken_test_file_is_one_line(tmp_path: Path) -> None:
    write(tmp_path / "broken.yaml", "rule_files: [x.yaml]\ntests:\n  - {name: t, alerts: []}\n")
    result = remedy("test", "rules", "broken.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "remedy: error: broken.yaml: tests[0]: alerts must be a non-empty list\n"
    )


def test_expectations_are_per_rule_and_a_missing_key_or_extra_remediation_is_a_difference(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "rules.yaml",
        RULES
        + (
            "  - name: note\n"
            "    match: {alertname: ServiceDown}\n"
            "    target: 'note:{{ labels.job }}'\n"
            "    actions:\n"
            "      - {action: http.request, params: {url: 'http://notes.internal/'}}\n"
        ),
    )
    write(
        tmp_path / "t.yaml",
        """\
rule_files: [rules.yaml]
tests:
  - name: two rules, listed rule by rule
    alerts:
      - {at: 0s, labels: {alertname: ServiceDown, job: web}}
      - {at: 0s, labels: {alertname: ServiceDown, job: api}}
    prometheus: {'up{job="web"} == 0': [0], 'up{job="api"} == 0': []}
    until: 2m
    expect:
      - {rule: note, decision: would_run, target: 'note:web', params: {method: GET}}
      - {rule: restart-if-still-down, decision: would_run, target: 'svc:web'}
      - {rule: restart-if-still-down, decision: precondition, target: 'svc:api'}
""",
    )
    result = remedy("test", "rules", "t.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "FAIL t.yaml: two rules, listed rule by rule",
        "  expect[0] rule note: params.method: expected 'GET', got nothing",
        "  remediation 4 (rule note, would_run): not expected",
    ]


def test_a_verify_query_is_judged_by_the_answers(tmp_path: Path) -> None:
    write(
        tmp_path / "rules.yaml",
        """\
rules:
  - name: warm
    match: {alertname: LowCacheHitRate}
    target: 'cache:{{ labels.instance }}'
    actions:
      - {action: http.request, params: {url: 'http://{{ labels.instance }}/warm'}}
    verify: {query: 'cache_hit_ratio{instance="{{ labels.instance }}"} > 0.7', within: 15m}
""",
    )
    write(
        tmp_path / "t.yaml",
        """\
rule_files: [rules.yaml]
tests:
  - name: the hit ratio recovers on one instance, not on the other
    alerts:
      - {at: 0s, labels: {alertname: LowCacheHitRate, instance: 'a:1'}}
      - {at: 0s, labels: {alertname: LowCacheHitRate, instance: 'b:1'}}
    prometheus:
      'cache_hit_ratio{instance="a:1"} > 0.7': [0.9]
      'cache_hit_ratio{instance="b:1"} > 0.7': []
    expect:
      - {rule: warm, decision: would_run, target: 'cache:a:1', verify: verified}
      - {rule: warm, decision: would_run, target: 'cache:b:1', verify: verified}
""",
    )
    result = remedy("test", "rules", "t.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "FAIL t.yaml: the hit ratio recovers on one instance, not on the other",
        "  expect[1] rule warm: verify: expected verified, got ineffective",
    ]


def test_a_test_file_that_is_not_yaml_is_one_line_with_its_line(tmp_path: Path) -> None:
    write(tmp_path / "bad.yaml", "rule_files: [rules.yaml]\ntests: [1, 2\n")
    result = remedy("test", "rules", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("remedy: error: bad.yaml:3: invalid YAML: ")

"""Loading rule files: the happy path, and every problem named by file, line, rule and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rules import (
    Problem,
    RuleLoadError,
    Template,
    load_rules,
    load_rules_text,
    parse_matcher,
)
from rules.template import render_params
from tests.rules.support import HttpCatalog, make_alert

SPEC_EXAMPLE = """\
rules:
  - name: service-down-restart
    description: Restart a compose service that Prometheus sees down.
    match:
      source: alertmanager            # alertmanager | cloudwatch | any (default any)
      status: firing                  # firing (default) | resolved
      alertname: ServiceDown          # shorthand for the matcher alertname="ServiceDown"
      matchers:                       # Alertmanager matcher syntax: = != =~ !~
        - 'job=~".*-service"'
        - severity="critical"
    for: 1m
    target: 'docker:{{ labels.container }}'
    guards:
      rate_limit: {count: 3, per: 1h}
      cooldown: 10m
      require_approval: false
      dry_run: false
    actions:
      - action: docker.restart
        params: {container: '{{ labels.container }}', timeout: 10s}
        timeout: 60s
    verify:
      resolved_within: 5m
    on_failure:
      - action: http.request
        params: {method: POST, url: 'https://hooks.example/oncall', json: {text: 'remediation of {{ alert.name }} failed'}}
"""  # noqa: E501 (the example exactly as SPEC §5 writes it)


def problems(text: str, catalog: HttpCatalog | None = None, file: str = "r.yaml") -> list[str]:
    """The problem lines loading ``text`` gives (the text is dedented)."""
    with pytest.raises(RuleLoadError) as info:
        load_rules_text(textwrap.dedent(text), file, catalog or HttpCatalog())
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


# -- valid files ---------------------------------------------------------------


def test_spec_example_loads_with_every_field() -> None:
    catalog = HttpCatalog()
    ruleset = load_rules_text(SPEC_EXAMPLE, "spec.yaml", catalog)
    assert len(ruleset) == 1
    rule = ruleset.rules[0]
    assert rule.name == "service-down-restart"
    assert rule.description == "Restart a compose service that Prometheus sees down."
    assert (rule.source, rule.status, rule.alertname) == ("alertmanager", "firing", "ServiceDown")
    assert rule.matchers == (
        parse_matcher('job=~".*-service"'),
        parse_matcher('severity="critical"'),
    )
    assert rule.for_ == 60.0
    assert rule.target == Template.parse("docker:{{ labels.container }}")
    assert rule.guards.rate_limit is not None
    assert (rule.guards.rate_limit.count, rule.guards.rate_limit.per) == (3, 3600.0)
    assert rule.guards.cooldown == 600.0
    assert rule.guards.require_approval is False
    assert rule.guards.dry_run is False
    assert rule.guards.blast_radius is None
    (step,) = rule.actions
    assert (step.action, step.timeout, step.retries, step.continue_on_error) == (
        "docker.restart",
        60.0,
        0,
        False,
    )
    assert step.line == 19
    assert rule.verify is not None
    assert rule.verify.resolved_within == 300.0
    assert [s.action for s in rule.on_failure] == ["http.request"]
    assert (rule.file, rule.line) == ("spec.yaml", 2)
    assert ruleset.by_name("service-down-restart") is rule

    alert = make_alert(
        "ServiceDown", labels={"job": "api-service", "severity": "critical", "container": "api-1"}
    )
    assert ruleset.match(alert) == [rule]
    assert rule.target.render(alert) == "docker:api-1"
    assert render_params(step.params, alert) == {"container": "api-1", "timeout": "10s"}
    # The catalog validated params with every reference filled in.
    assert ("docker.restart", {"container": "placeholder", "timeout": "10s"}) in catalog.checked


def test_defaults_apply_to_a_minimal_rule() -> None:
    ruleset = load_rules_text(
        textwrap.dedent(
            """\
            rules:
              - name: minimal
                target: static
                actions:
                  - action: noop
            """
        ),
        "m.yaml",
        HttpCatalog(),
    )
    rule = ruleset.rules[0]
    assert (rule.source, rule.status, rule.alertname, rule.matchers) == ("any", "firing", None, ())
    assert rule.for_ is None
    assert rule.verify is None
    assert rule.on_failure == ()
    assert rule.description == ""
    assert rule.target.is_literal
    (step,) = rule.actions
    assert (step.params, step.timeout, step.retries, step.continue_on_error) == ({}, 60.0, 0, False)
    assert ruleset.match(make_alert("Anything", source="cloudwatch")) == [rule]
    assert ruleset.match(make_alert("Anything", status="resolved")) == []


def test_every_guard_and_step_option() -> None:
    ruleset = load_rules_text(
        textwrap.dedent(
            """\
            rules:
              - name: guarded
                target: 'k8s:{{ labels.namespace }}/{{ labels.pod }}'
                guards:
                  require_approval: true
                  approval_timeout: 30m
                  dry_run: true
                  lock_wait: 15s
                  blast_radius: {scope: '{{ labels.namespace }}', max_targets: 3, per: 10m}
                actions:
                  - action: noop
                    retries: 2
                    continue_on_error: true
                    timeout: 1m30s
            """
        ),
        "g.yaml",
        HttpCatalog(),
    )
    guards = ruleset.rules[0].guards
    assert guards.require_approval and guards.dry_run
    assert (guards.approval_timeout, guards.lock_wait) == (1800.0, 15.0)
    assert guards.blast_radius is not None
    assert guards.blast_radius.scope.render(make_alert(labels={"namespace": "prod"})) == "prod"
    assert (guards.blast_radius.max_targets, guards.blast_radius.per) == (3, 600.0)
    step = ruleset.rules[0].actions[0]
    assert (step.retries, step.continue_on_error, step.timeout) == (2, True, 90.0)


def test_yaml_anchors_and_merge_keys_work() -> None:
    ruleset = load_rules_text(
        textwrap.dedent(
            """\
            rules:
              - name: a
                target: x
                guards: &careful
                  rate_limit: {count: 1, per: 1h}
                  cooldown: 30m
                actions: [{action: noop}]
              - name: b
                target: y
                guards:
                  <<: *careful
                  dry_run: true
                actions: [{action: noop}]
            """
        ),
        "anchors.yaml",
        HttpCatalog(),
    )
    a, b = ruleset.rules
    assert b.guards.cooldown == a.guards.cooldown == 1800.0
    assert b.guards.dry_run and not a.guards.dry_run


def test_a_key_written_beside_a_merge_overrides_the_merged_one() -> None:
    ruleset = load_rules_text(
        textwrap.dedent(
            """\
            x-step: &step
              action: noop
              params: &params {url: 'http://a', method: GET}
              timeout: 10s
            rules:
              - name: a
                target: x
                actions:
                  - <<: *step
                    params: {<<: *params, method: POST}
                    timeout: 20s
            """
        ),
        "merge.yaml",
        HttpCatalog(),
    )
    (step,) = ruleset.rules[0].actions
    assert render_params(step.params, make_alert()) == {"url": "http://a", "method": "POST"}
    assert step.timeout == 20.0


def test_an_anchor_merged_in_twice_is_the_same_both_times() -> None:
    ruleset = load_rules_text(
        textwrap.dedent(
            """\
            x-step: &step {action: noop, params: {url: 'http://a'}, timeout: 10s}
            rules:
              - name: a
                target: x
                actions: [{<<: *step, timeout: 20s}]
                on_failure: [{<<: *step, timeout: 30s}]
              - name: b
                target: y
                actions: [{<<: *step, timeout: 40s}, *step]
            """
        ),
        "twice.yaml",
        HttpCatalog(),
    )
    a, b = ruleset.rules
    timeouts = [s.timeout for s in (*a.actions, *a.on_failure, *b.actions)]
    assert timeouts == [20.0, 30.0, 40.0, 10.0]


def test_a_key_written_twice_in_a_merged_anchor_is_an_error() -> None:
    assert problems(
        """\
        x-step: &step
          action: noop
          timeout: 10s
          timeout: 20s
        rules:
          - name: a
            target: x
            actions: [{<<: *step}]
        """
    ) == ["r.yaml:4: rule a: actions[0]: duplicate key 'timeout'"]


def test_extension_keys_are_only_admitted_at_the_top() -> None:
    assert problems(
        """\
        x-anything: {a: 1}
        rules:
          - name: a
            target: x
            x-note: nope
            actions: [{action: noop}]
        """
    ) == [
        "r.yaml:5: rule a: unknown key 'x-note' (allowed: name, description, match, for,"
        " target, guards, actions, verify, on_failure, when, silence)"
    ]


def test_empty_rule_list_is_valid() -> None:
    assert len(load_rules_text("rules: []\n", "e.yaml", HttpCatalog())) == 0


# -- broken files: each problem names file, line, rule and field -----------------


def test_bad_yaml_gives_the_line_of_the_error() -> None:
    assert problems(
        """\
        rules:
          - name: a
            target: 'unterminated
            actions: []
        """
    ) == ["r.yaml:5: invalid YAML: while scanning a quoted scalar: found unexpected end of stream"]
    assert problems(
        """\
        rules:
          - name: a
           target: x
        """
    ) == [
        "r.yaml:3: invalid YAML: while parsing a block collection: "
        "expected <block end>, but found '<block mapping start>'"
    ]


def test_several_documents_are_rejected() -> None:
    assert problems("rules: []\n---\nrules: []\n") == [
        "r.yaml:2: invalid YAML: expected a single document in the stream: "
        "but found another document"
    ]


def test_unknown_keys_at_every_level() -> None:
    assert problems(
        """\
        rules:
          - name: typo
            tagret: x
            match:
              alertnmae: X
            guards:
              cooldown: 1m
              colldown: 2m
              rate_limit: {count: 1, per: 1h, burst: 2}
            actions:
              - action: noop
                param: {}
        extra: 1
        """
    ) == [
        "r.yaml:2: rule typo: missing required key 'target'",
        "r.yaml:3: rule typo: unknown key 'tagret' (did you mean 'target'?)",
        "r.yaml:5: rule typo: match: unknown key 'alertnmae' (did you mean 'alertname'?)",
        "r.yaml:8: rule typo: guards: unknown key 'colldown' (did you mean 'cooldown'?)",
        "r.yaml:9: rule typo: guards.rate_limit: unknown key 'burst' (allowed: count, per)",
        "r.yaml:12: rule typo: actions[0]: unknown key 'param' (did you mean 'params'?)",
        "r.yaml:13: unknown key 'extra' (allowed: rules)",
    ]


def test_bad_matchers_name_the_item() -> None:
    assert problems(
        """\
        rules:
          - name: regex
            match:
              matchers:
                - severity="critical"
                - 'job=~"(api"'
                - 'bad-name="x"'
                - 42
            target: x
            actions: [{action: noop}]
        """
    ) == [
        "r.yaml:6: rule regex: match.matchers[1]: invalid matcher 'job=~\"(api\"': "
        "invalid regex '(api': missing ), unterminated subpattern at position 0",
        "r.yaml:7: rule regex: match.matchers[2]: invalid matcher 'bad-name=\"x\"': "
        "invalid label name 'bad-name' (must match [a-zA-Z_][a-zA-Z0-9_]*)",
        "r.yaml:8: rule regex: match.matchers[3]: expected a non-empty string, got 42",
    ]


def test_unknown_action_lists_the_known_ones() -> None:
    assert problems(
        """\
        rules:
          - name: act
            target: x
            actions:
              - action: noop
              - action: docker.restrat
            on_failure:
              - {action: page}
        """
    ) == [
        "r.yaml:6: rule act: actions[1].action: unknown action 'docker.restrat'"
        " (known: docker.restart, http.request, noop)",
        "r.yaml:8: rule act: on_failure[0].action: unknown action 'page'"
        " (known: docker.restart, http.request, noop)",
    ]


def test_param_problems_point_at_the_param() -> None:
    assert problems(
        """\
        rules:
          - name: hook
            target: x
            actions:
              - action: http.request
                params:
                  method: POST
                  url: 'ftp://{{ labels.host }}/warm'
                  headers:
                    X-Count: 3
                  expect_status: [200, '204']
                  retry: true
              - action: http.request
                params: {method: POST}
        """
    ) == [
        "r.yaml:8: rule hook: actions[0].params.url: "
        "expected an http:// or https:// URL, got 'ftp://placeholder/warm'",
        "r.yaml:10: rule hook: actions[0].params.headers.X-Count: expected a string",
        "r.yaml:11: rule hook: actions[0].params.expect_status[1]: "
        "expected a status code, got '204'",
        "r.yaml:12: rule hook: actions[0].params.retry: unknown parameter",
        "r.yaml:14: rule hook: actions[1].params.url: is required",
    ]


def test_params_must_be_a_mapping_of_plain_values() -> None:
    assert problems(
        """\
        rules:
          - name: p
            target: x
            actions:
              - action: noop
                params: [a, b]
              - action: noop
                params:
                  data: !!binary aGVsbG8=
                  text: '{{ labels.a | lower }}'
                  1: one
        """
    ) == [
        "r.yaml:6: rule p: actions[0].params: expected a mapping, got a list",
        "r.yaml:9: rule p: actions[1].params.data: unsupported value !!binary aGVsbG8="
        " (use strings, numbers, booleans, null, lists and mappings)",
        "r.yaml:10: rule p: actions[1].params.text: unsupported expression"
        " '{{ labels.a | lower }}' (allowed: labels.NAME, annotations.NAME, alert.name,"
        " alert.fingerprint, alert.source, alert.status)",
        "r.yaml:11: rule p: actions[1].params: expected a string key, got 1",
    ]


def test_wrong_types_name_the_field_path() -> None:
    assert problems(
        """\
        rules:
          - name: types
            description: [not, text]
            match:
              source: prometheus
              status: pending
              alertname: ''
            for: 5 minutes
            target: 12
            guards:
              rate_limit: {count: 'x', per: 1h}
              cooldown: 600
              require_approval: yes
              dry_run: 'false'
              blast_radius: {scope: '{{ labels.ns }}', max_targets: true, per: 0s}
            actions:
              - action: noop
                retries: -1
                timeout: 1.5
                continue_on_error: 1
            verify: 5m
        """
    ) == [
        "r.yaml:3: rule types: description: expected a string, got a list",
        "r.yaml:5: rule types: match.source: expected one of any, alertmanager, cloudwatch,"
        " got 'prometheus'",
        "r.yaml:6: rule types: match.status: expected one of firing, resolved, got 'pending'",
        "r.yaml:7: rule types: match.alertname: expected a non-empty string, got ''",
        "r.yaml:8: rule types: for: invalid duration '5 minutes' (use e.g. 30s, 10m, 1h, 1d)",
        "r.yaml:9: rule types: target: expected a non-empty string, got 12",
        "r.yaml:11: rule types: guards.rate_limit.count: expected an integer > 0, got 'x'",
        "r.yaml:12: rule types: guards.cooldown: expected a duration such as 30s, 10m or 1h,"
        " got 600",
        "r.yaml:13: rule types: guards.require_approval: expected true or false, got 'yes'",
        "r.yaml:14: rule types: guards.dry_run: expected true or false, got 'false'",
        "r.yaml:15: rule types: guards.blast_radius.max_targets: expected an integer > 0, got true",
        "r.yaml:15: rule types: guards.blast_radius.per: duration '0s' must be greater than zero",
        "r.yaml:18: rule types: actions[0].retries: expected an integer >= 0, got -1",
        "r.yaml:19: rule types: actions[0].timeout: expected a duration such as 30s, 10m or 1h,"
        " got 1.5",
        "r.yaml:20: rule types: actions[0].continue_on_error: expected true or false, got 1",
        "r.yaml:21: rule types: verify: expected a mapping, got '5m'",
    ]


def test_missing_required_keys() -> None:
    assert problems(
        """\
        rules:
          - description: no name
            target: x
            actions: []
          - name: empty-actions
            target: x
            actions: []
          - name: no-actions
            target: x
            guards:
              rate_limit: {count: 1}
            verify: {}
        """
    ) == [
        "r.yaml:2: rules[0]: missing required key 'name'",
        "r.yaml:4: rules[0].actions: expected at least one action",
        "r.yaml:7: rule empty-actions: actions: expected at least one action",
        "r.yaml:8: rule no-actions: missing required key 'actions'",
        "r.yaml:11: rule no-actions: guards.rate_limit: missing required key 'per'",
        "r.yaml:12: rule no-actions: verify: give resolved_within, or query and within, or both",
    ]


def test_invalid_rule_name_is_reported_without_a_rule() -> None:
    assert problems(
        """\
        rules:
          - name: has spaces
            target: x
            tagret: y
            actions: [{action: noop}]
        """
    ) == [
        "r.yaml:2: rules[0].name: expected a rule name of letters, digits and _.:-,"
        " got 'has spaces'",
        "r.yaml:4: rules[0]: unknown key 'tagret' (did you mean 'target'?)",
    ]


def test_template_syntax_errors_in_target_and_scope() -> None:
    assert problems(
        """\
        rules:
          - name: tpl
            target: 'docker:{{ labels.container'
            guards:
              blast_radius: {scope: '{{ namespace }}', max_targets: 2, per: 1h}
            actions: [{action: noop}]
        """
    ) == [
        "r.yaml:3: rule tpl: target: unclosed '{{' at offset 7 in 'docker:{{ labels.container'",
        "r.yaml:5: rule tpl: guards.blast_radius.scope: unsupported expression"
        " '{{ namespace }}' (allowed: labels.NAME, annotations.NAME, alert.name,"
        " alert.fingerprint, alert.source, alert.status)",
    ]


def test_settings_that_would_silently_do_nothing_are_errors() -> None:
    assert problems(
        """\
        rules:
          - name: on-resolve
            match: {status: resolved, alertname: A, matchers: ['alertname="B"']}
            for: 1m
            target: x
            guards: {approval_timeout: 1h}
            actions: [{action: noop}]
            verify: {resolved_within: 1m}
        """
    ) == [
        "r.yaml:3: rule on-resolve: match.matchers[0]: contradicts alertname 'A':"
        " the rule can never match",
        "r.yaml:4: rule on-resolve: for: only meaningful for rules that match firing alerts",
        "r.yaml:6: rule on-resolve: guards.approval_timeout: only meaningful with"
        " require_approval: true",
        "r.yaml:8: rule on-resolve: verify: only meaningful for rules that match firing alerts",
    ]


def test_duplicate_keys_are_errors() -> None:
    assert problems(
        """\
        rules:
          - name: dup
            target: x
            target: y
            actions: [{action: noop, params: {a: 1, a: 2}}]
        """
    ) == [
        "r.yaml:4: rule dup: duplicate key 'target'",
        "r.yaml:5: rule dup: actions[0].params: duplicate key 'a'",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "r.yaml:1: expected a mapping with the key 'rules', got an empty file"),
        ("- a\n- b\n", "r.yaml:1: expected a mapping with the key 'rules', got a list"),
        ("rules:\n", "r.yaml:1: rules: expected a list of rules, got null"),
        ("rules: {a: 1}\n", "r.yaml:1: rules: expected a list of rules, got a mapping"),
        ("other: 1\n", "r.yaml:1: missing required key 'rules'"),
        ("rules:\n  - just a string\n", "r.yaml:2: rules[0]: expected a rule, got 'just a string'"),
    ],
)
def test_file_shape_problems(text: str, expected: str) -> None:
    assert expected in problems(text)


# -- several files ---------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


RULE_A = """\
rules:
  - name: shared
    target: a
    actions: [{action: noop}]
"""

RULE_B = """\
# second file
rules:
  - name: other
    target: b
    actions: [{action: noop}]
  - name: shared
    target: c
    actions: [{action: noop}]
"""


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", RULE_A)
    b = write(tmp_path / "b.yaml", RULE_B)
    with pytest.raises(RuleLoadError) as info:
        load_rules([a, b], HttpCatalog())
    assert [str(p) for p in info.value.problems] == [
        f"{b}:6: rule shared: duplicate rule name, first defined at {a}:2"
    ]


def test_all_problems_from_all_files_are_collected_in_file_order(tmp_path: Path) -> None:
    write(tmp_path / "1.yaml", "rules:\n  - name: x\n    target: x\n    actions: [{action: zap}]\n")
    write(tmp_path / "2.yml", "rules: [\n")
    write(
        tmp_path / "3.yaml", "rules:\n  - {name: y, target: x, actions: [{action: noop}], z: 1}\n"
    )
    with pytest.raises(RuleLoadError) as info:
        load_rules([tmp_path], HttpCatalog())
    assert [(Path(p.file).name, p.line, p.rule) for p in info.value.problems] == [
        ("1.yaml", 4, "x"),
        ("2.yml", 2, None),
        ("3.yaml", 2, "y"),
    ]


def test_directories_globs_and_files(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", RULE_A.replace("shared", "b1"))
    write(tmp_path / "a.yml", RULE_A.replace("shared", "a1"))
    write(tmp_path / "notes.txt", "not rules")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "c.yaml", RULE_A.replace("shared", "c1"))
    catalog = HttpCatalog()
    from_dir = load_rules([tmp_path], catalog)
    assert [r.name for r in from_dir] == ["a1", "b1"]
    from_glob = load_rules([str(tmp_path / "*" / "*.yaml"), tmp_path / "b.yaml"], catalog)
    assert [r.name for r in from_glob] == ["c1", "b1"]
    # The same file named twice is read once.
    overlapping = load_rules([tmp_path, str(tmp_path / "*.yaml")], catalog)
    assert [r.name for r in overlapping] == ["a1", "b1"]


def test_missing_sources_are_problems(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    pattern = str(tmp_path / "*.yml")
    with pytest.raises(RuleLoadError) as info:
        load_rules([missing, pattern], HttpCatalog())
    assert [str(p) for p in info.value.problems] == [
        f"{missing}: no such file or directory",
        f"{pattern}: no files match this pattern",
    ]


def test_version_follows_the_source_texts(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", RULE_A)
    first = load_rules([path], HttpCatalog()).version
    assert len(first) == 12
    assert int(first, 16) >= 0
    assert load_rules([path], HttpCatalog()).version == first
    write(tmp_path / "a.yaml", RULE_A.replace("target: a", "target: changed"))
    assert load_rules([path], HttpCatalog()).version != first


def test_problem_formats() -> None:
    assert str(Problem("r.yaml", 3, "x", "bad")) == "r.yaml:3: rule x: bad"
    assert str(Problem("r.yaml", 3, None, "bad")) == "r.yaml:3: bad"
    assert str(Problem("r.yaml", 0, None, "cannot read")) == "r.yaml: cannot read"


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("rules: []  # caf\xe9\n".encode("latin-1"))
    with pytest.raises(RuleLoadError) as info:
        load_rules([path], HttpCatalog())
    assert [str(p) for p in info.value.problems] == [f"{path}: not valid UTF-8"]

"""``remedy test rules FILE...``: unit tests for remediation rules, like promtool's.

A test file names rule files (and optionally a config), then cases: each a
timeline of alerts (Alertmanager alerts or CloudWatch alarms at offsets such
as ``0s``, ``90s``, ``5m``), the answers Prometheus would give to the rules'
``when:`` queries, and the remediations expected, per rule, in order. Each
case runs through the real planner, guards and timers in simulated time
(:mod:`receiver.replay`), executing nothing; a mismatch is reported field by
field, naming the case and the rule.

    rule_files: [../rules/defaults/compose.yaml]
    tests:
      - name: a dead container is restarted once it has been down 2m
        alerts:
          - {at: 0s, labels: {alertname: ServiceDown, container: shop-web-1, ...}}
          - {at: 5m, labels: {...}, status: resolved}
        prometheus: {'up{job="web"} == 0': [1]}
        until: 10m
        expect:
          - {rule: service-down-restart-compose, decision: would_run,
             target: 'container:shop-web-1', params: {container: shop-web-1}}

``verify`` in an expectation is what the rule's ``verify.query``, rendered for
the alert, concludes from the case's answers (``verified`` or ``ineffective``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from receiver.config import Config
from receiver.configfile import load_config
from receiver.ingest import PayloadError
from receiver.ingest.alertmanager import parse_webhook
from receiver.ingest.cloudwatch import parse_alarm
from receiver.preconditions import PrometheusError, ask
from receiver.replay import Delivery, replay
from rules.alert import Alert
from rules.duration import parse_duration

START = datetime(2026, 1, 1, tzinfo=UTC)
_CASE_KEYS = {"name", "alerts", "prometheus", "until", "expect"}
_EXPECT_KEYS = {"rule", "decision", "target", "params", "verify"}


class RuleTestError(Exception):
    """The test file itself is wrong; the message names the file and the field."""


class Answers:
    """Prometheus as a test case says it would answer: values per query, nothing else."""

    def __init__(self, answers: Mapping[str, Sequence[float]]) -> None:
        self.answers = answers

    async def values(self, query: str) -> list[float]:
        if query not in self.answers:
            raise PrometheusError(f"the test gives no answer for {query}")
        return [float(v) for v in self.answers[query]]


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One case's result: its name and every difference found (none: it passed)."""

    name: str
    differences: Sequence[str]


async def run_file(path: Path) -> list[Outcome]:
    """Run every case of one test file."""
    document = _read(path)
    config = _config(path, document)
    outcomes = []
    for index, case in enumerate(_list(document, "tests", str(path))):
        where = f"{path}: tests[{index}]"
        if not isinstance(case, dict) or not set(case) <= _CASE_KEYS or "name" not in case:
            raise RuleTestError(f"{where}: expected {{name, alerts, expect, prometheus, until}}")
        deliveries = _timeline(_list(case, "alerts", where), config, where)
        last = max(d.received_at for d in deliveries)
        until = (
            START + timedelta(seconds=_duration(case["until"], f"{where}.until"))
            if "until" in case
            else last
        )
        answers = Answers(_answers(case.get("prometheus") or {}, where))
        report = await replay(deliveries, config, until, answers=answers)
        for decision in report["decisions"]:
            decision["verify"] = await _verification(decision.get("verify_query"), answers)
        expected = _list(case, "expect", where)
        outcomes.append(Outcome(str(case["name"]), _compare(expected, report["decisions"], where)))
    return outcomes


def _read(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleTestError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise RuleTestError(
            f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}"
        ) from None
    if not isinstance(document, dict) or not set(document) <= {"rule_files", "config", "tests"}:
        raise RuleTestError(f"{path}: expected a mapping of rule_files, config and tests")
    return document


def _config(path: Path, document: Mapping[str, Any]) -> Config:
    """The config the cases run under: the named one (or the defaults), with these rules."""
    base = path.parent
    config = load_config(base / str(document["config"]), []) if "config" in document else Config()
    files = _list(document, "rule_files", str(path))
    return dataclasses.replace(config, rules=tuple(str(base / str(f)) for f in files))


def _list(mapping: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = mapping.get(key)
    if not isinstance(value, list) or not value:
        raise RuleTestError(f"{where}: {key} must be a non-empty list")
    return value


def _duration(value: object, where: str) -> float:
    """An offset from the case's start: a duration such as ``90s``, or ``0s``."""
    if str(value) in ("0", "0s"):
        return 0.0
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise RuleTestError(f"{where}: {exc}") from None


def _answers(answers: object, where: str) -> dict[str, list[float]]:
    if not isinstance(answers, dict):
        raise RuleTestError(f"{where}.prometheus: expected query: [values]")
    found = {}
    for query, values in answers.items():
        if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
            raise RuleTestError(f"{where}.prometheus[{query!r}]: expected a list of numbers")
        found[str(query)] = [float(v) for v in values]
    return found


def _timeline(items: list[Any], config: Config, where: str) -> list[Delivery]:
    """Deliveries in time order; an alert keeps the startsAt of its first firing until it
    resolves, as Alertmanager sends it."""
    deliveries = []
    first_firing: dict[str, str] = {}
    for i, item in enumerate(items):
        here = f"{where}.alerts[{i}]"
        if not isinstance(item, dict) or "at" not in item:
            raise RuleTestError(f"{here}: expected {{at, labels, ...}} or {{at, cloudwatch}}")
        at = START + timedelta(seconds=_duration(item["at"], f"{here}.at"))
        try:
            if "cloudwatch" in item:
                if not isinstance(item["cloudwatch"], dict):
                    raise RuleTestError(f"{here}.cloudwatch: expected the alarm as a mapping")
                alarm = {"StateChangeTime": at.isoformat(), **item["cloudwatch"]}
                alert = parse_alarm(alarm, config.sns.insufficient_data)  # type: ignore[arg-type]
                alerts: tuple[Alert, ...] = (alert,) if alert is not None else ()
            else:
                status = str(item.get("status", "firing"))
                key = json.dumps(item.get("labels"), sort_keys=True)
                starts = first_firing.setdefault(key, at.isoformat())
                if status == "resolved":
                    del first_firing[key]  # firing again later is a new occurrence
                raw = {
                    "status": status,
                    "labels": item.get("labels"),
                    "annotations": item.get("annotations", {}),
                    "startsAt": starts,
                    "endsAt": at.isoformat() if status == "resolved" else "0001-01-01T00:00:00Z",
                }
                payload = {"version": "4", "status": status, "alerts": [raw]}
                alerts = parse_webhook(payload).alerts
        except PayloadError as exc:
            raise RuleTestError(f"{here}: {exc.field}: {exc.message}") from None
        deliveries.append(Delivery(at, tuple(alerts)))
    return sorted(deliveries, key=lambda d: d.received_at)


async def _verification(spec: Mapping[str, Any] | None, answers: Answers) -> str:
    """What ``verify.query`` would conclude from the case's answers, were the run a success:
    ``verified`` or ``ineffective`` (``none`` without a query). Replay is dry-run, so this
    asks the rendered query once of the answers rather than polling a live run."""
    if not spec:
        return "none"
    held, _ = await ask(answers, str(spec.get("query")), str(spec.get("expect", "nonempty")))
    return "verified" if held else "ineffective"


def _compare(expected: list[Any], decisions: list[dict[str, Any]], where: str) -> list[str]:
    """Every difference between the expected remediations and the replay's, rule by rule.

    Each rule's remediations are compared in the order they were made; a rule
    with more or fewer than expected is a difference too.
    """
    wanted: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for i, want in enumerate(expected):
        if not isinstance(want, dict) or not set(want) <= _EXPECT_KEYS or "rule" not in want:
            raise RuleTestError(
                f"{where}.expect[{i}]: expected {{rule, decision, target, params, verify}}"
            )
        if "params" in want and not isinstance(want["params"], dict):
            raise RuleTestError(f"{where}.expect[{i}].params: expected a mapping")
        wanted.setdefault(str(want["rule"]), []).append((i, want))
    made: dict[str, list[dict[str, Any]]] = {}
    for got in decisions:
        made.setdefault(str(got["rule"]), []).append(got)
    differences = []
    for rule in dict.fromkeys([*wanted, *made]):
        expect, actual = wanted.get(rule, []), made.get(rule, [])
        for (i, want), got in zip(expect, actual, strict=False):
            differences += _differences(f"expect[{i}] rule {rule}", want, got)
        for i, _ in expect[len(actual) :]:
            differences.append(f"expect[{i}] rule {rule}: no such remediation")
        for got in actual[len(expect) :]:
            differences.append(
                f"remediation {got['remediation']} (rule {rule}, {got['decision']}): not expected"
            )
    return differences


def _differences(label: str, want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    found = [
        f"{label}: {field}: expected {want[field]}, got {got[field]}"
        for field in ("decision", "target", "verify")
        if field in want and str(want[field]) != str(got[field])
    ]
    first = got["params"][0] if got["params"] else {}
    for key, value in dict(want.get("params") or {}).items():
        if key not in first:
            found.append(f"{label}: params.{key}: expected {value!r}, got nothing")
        elif first[key] != value:
            found.append(f"{label}: params.{key}: expected {value!r}, got {first[key]!r}")
    return found

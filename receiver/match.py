"""The match stage: which rules an alert triggers, and what each would do, rendered.

Rendering happens here, before the alert is stored, so the remediation record
holds exactly what will run and a template error is recorded with its reason
instead of ever running an action with an empty string in it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from receiver.guards import DEFAULT_APPROVAL_TIMEOUT, GuardSpec
from receiver.metrics import Metrics
from receiver.store.base import IncomingAlert, Plan
from rules.alert import Alert
from rules.index import RuleSet
from rules.schema import ActionCatalog, ActionStep, Rule, Verify
from rules.template import TemplateError, params_are_literal, render_params


def guard_spec(rule: Rule, alert: Alert) -> GuardSpec:
    """The rule's guard rails for this alert, with the blast-radius scope rendered."""
    guards = rule.guards
    blast = guards.blast_radius
    return GuardSpec(
        rate_limit=(guards.rate_limit.count, guards.rate_limit.per) if guards.rate_limit else None,
        cooldown=guards.cooldown,
        lock_wait=guards.lock_wait,
        blast_radius=(blast.scope.render(alert), blast.max_targets, blast.per) if blast else None,
        require_approval=guards.require_approval,
        approval_timeout=guards.approval_timeout or DEFAULT_APPROVAL_TIMEOUT,
        for_=rule.for_,
        verify_within=rule.verify.resolved_within if rule.verify else None,
        verify_query=_verify_query(rule.verify, alert) if rule.verify else None,
    )


def _silence(rule: Rule, alert: Alert) -> dict[str, Any] | None:
    """The rule's ``silence:`` for this alert: only Alertmanager's alerts can be silenced."""
    if rule.silence is None or alert.source != "alertmanager":
        return None
    return {"duration": rule.silence.duration, "comment": rule.silence.comment}


def _verify_query(verify: Verify, alert: Alert) -> dict[str, Any] | None:
    """``verify.query`` rendered for the alert, with how long it has to hold."""
    if verify.query is None:
        return None
    return {**verify.query.render(alert), "within": verify.within}


class Planner:
    """Matches alerts against one rule set and renders the plans."""

    def __init__(
        self, rules: RuleSet, catalog: ActionCatalog, metrics: Metrics, dry_run: bool
    ) -> None:
        self.catalog = catalog
        self.metrics = metrics
        self.dry_run = dry_run
        self._literal: dict[int, bool] = {}
        self.rules = rules

    @property
    def rules(self) -> RuleSet:
        """The rule set alerts are matched against."""
        return self._rules

    @rules.setter
    def rules(self, ruleset: RuleSet) -> None:
        self._rules = ruleset
        self._literal = {
            id(step): params_are_literal(step.params)
            for rule in ruleset.rules
            for step in (*rule.actions, *rule.on_failure)
        }

    def plan(self, alert: Alert) -> IncomingAlert:
        """The alert with one plan per matching rule."""
        plans = []
        for rule in self.rules.match(alert):
            self.metrics.rule_matches.labels(rule.name).inc()
            plans.append(self._plan(rule, alert))
        return IncomingAlert(alert, plans)

    def plan_all(self, alerts: Sequence[Alert]) -> list[IncomingAlert]:
        """Plans for a whole webhook's alerts."""
        return [self.plan(alert) for alert in alerts]

    def _plan(self, rule: Rule, alert: Alert) -> Plan:
        target: str | None = None
        try:
            target = rule.target.render(alert)
            steps = [
                self._step(step, alert, f"actions[{i}]") for i, step in enumerate(rule.actions)
            ]
            on_failure = [
                self._step(step, alert, f"on_failure[{i}]")
                for i, step in enumerate(rule.on_failure)
            ]
            spec = guard_spec(rule, alert)
            when = [condition.render(alert) for condition in rule.when]
        except TemplateError as exc:
            return Plan(rule.name, target, (), skip_reason="template_error", error=str(exc))
        return Plan(
            rule.name,
            target,
            steps,
            on_failure,
            dry_run=self.dry_run or rule.guards.dry_run,
            guards=spec,
            when=when,
            silence=_silence(rule, alert),
        )

    def _step(self, step: ActionStep, alert: Alert, where: str) -> Mapping[str, Any]:
        params = render_params(step.params, alert)
        # Literal params were checked when the rules loaded; rendered ones are checked now.
        literal = self._literal.get(id(step), False)
        try:
            problems = [] if literal else self.catalog.check_params(step.action, params)
        except Exception as exc:  # an action's check must not fail a whole webhook
            problems = [("", f"rejected by {step.action}: {type(exc).__name__}")]
        if problems:
            field, message = problems[0]
            raise TemplateError(f"{where}.params.{field}: {message} (after rendering)")
        return {
            "action": step.action,
            "params": params,
            "timeout": step.timeout,
            "retries": step.retries,
            "continue_on_error": step.continue_on_error,
        }

"""``remedy test``: what an alert would trigger, through the same match stage as the service."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from receiver.allowlist import AllowLists, compile_allow
from receiver.audit import redact
from receiver.clock import timestamp
from receiver.config import Config
from receiver.guards import GlobalLimits
from receiver.ingest import PayloadError
from receiver.ingest.alertmanager import parse_webhook
from receiver.ingest.cloudwatch import is_alarm, parse_alarm
from receiver.match import Planner
from receiver.metrics import Metrics
from receiver.ruleset import registry_for
from receiver.store.base import Plan
from receiver.store.postgres import PostgresStore
from receiver.store.sqlite import SQLiteStore
from remediations import Registry
from rules.alert import Alert
from rules.index import RuleSet


async def describe_alerts(
    text: str, ruleset: RuleSet, config: Config, store: SQLiteStore | PostgresStore
) -> dict[str, Any]:
    """For each alert in a webhook body: the matching rules, rendered actions and decision.

    The guards are asked against ``store`` (its history, pause and breakers) and
    nothing is written.
    """
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise PayloadError("", f"the alert file is not valid JSON: {exc}") from None
    except RecursionError:
        raise PayloadError("", "the alert file is nested too deeply") from None
    alerts = _alerts(payload, config)
    registry = registry_for(config)
    planner = Planner(ruleset, registry, Metrics(), dry_run=config.dry_run)
    limits = GlobalLimits(max_actions=config.max_actions, max_concurrent=config.max_concurrent)
    allow = compile_allow(config.allow)
    report = []
    for incoming in planner.plan_all(alerts):
        alert = incoming.alert
        matches = []
        for plan in incoming.plans:
            matches.append(
                {
                    "rule": plan.rule,
                    "target": plan.target,
                    "decision": await _decision(
                        store, plan, alert, limits=limits, registry=registry, allow=allow
                    ),
                    "error": plan.error,
                    "actions": [
                        {"action": s["action"], "params": redact(s["params"])} for s in plan.steps
                    ],
                }
            )
        report.append(
            {"alert": alert.summary(), "matches": matches, "not_matched": _misses(ruleset, alert)}
        )
    return {"rules_version": ruleset.version, "alerts": report}


def _misses(ruleset: RuleSet, alert: Alert) -> list[dict[str, str]]:
    """The rules for this alert's name that it did not match, and the condition it failed."""
    names = {alert.name, alert.labels.get("alertname", alert.name)}
    return [
        {"rule": rule.name, "why": why}
        for rule in ruleset
        if rule.fixed_alertname in names and (why := rule.mismatch(alert)) is not None
    ]


def _alerts(payload: object, config: Config) -> list[Alert]:
    """The alerts in an Alertmanager webhook body, an SNS delivery or a raw CloudWatch alarm."""
    if isinstance(payload, dict) and payload.get("Type") == "Notification":
        try:
            payload = json.loads(payload.get("Message") or "")
        except (ValueError, TypeError, RecursionError):
            raise PayloadError("Message", "is not JSON") from None
    if is_alarm(payload):
        insufficient = config.sns.insufficient_data
        alert = parse_alarm(payload, insufficient)  # type: ignore[arg-type]  # checked at load
        return [alert] if alert is not None else []
    return list(parse_webhook(payload).alerts)


async def _decision(
    store: SQLiteStore | PostgresStore,
    plan: Plan,
    alert: Alert,
    *,
    limits: GlobalLimits,
    registry: Registry,
    allow: AllowLists,
) -> str:
    if plan.skip_reason:
        return f"skipped ({plan.skip_reason})"
    spec = plan.guards
    if alert.status == "firing" and spec.for_:
        due = alert.starts_at + timedelta(seconds=spec.for_)
        if due > store.clock.now():
            return f"waiting (for: until {timestamp(due)})"
    if spec.require_approval:
        return "pending_approval"
    decision = await store.preview(
        rule=plan.rule,
        target=plan.target or "",
        occurrence="|".join(alert.occurrence) if alert.status == "firing" else None,
        spec=spec,
        limits=limits,
        dry_run=plan.dry_run,
    )
    if decision.reason == "paused":
        return "held (paused): remedy is paused; it goes through the guards again at resume"
    if not decision.allowed:
        return f"skipped ({decision.reason}): {decision.detail}"
    return "dry_run" if plan.dry_run else "would run"

"""``remedy test``: what an alert would trigger, through the same planner as the service."""

from __future__ import annotations

import json
from typing import Any

from receiver.audit import redact
from receiver.config import Config
from receiver.ingest import PayloadError
from receiver.ingest.alertmanager import parse_webhook
from receiver.metrics import Metrics
from receiver.planner import Planner
from remediations import builtin_registry
from rules.index import RuleSet


def describe_alerts(text: str, ruleset: RuleSet, config: Config) -> dict[str, Any]:
    """For each alert in a webhook body: the matching rules, rendered actions and decision."""
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise PayloadError("", f"the alert file is not valid JSON: {exc}") from None
    except RecursionError:
        raise PayloadError("", "the alert file is nested too deeply") from None
    message = parse_webhook(payload)
    planner = Planner(ruleset, builtin_registry(), Metrics(), dry_run=config.dry_run)
    report = []
    for incoming in planner.plan_all(message.alerts):
        matches = []
        for plan in incoming.plans:
            if plan.skip_reason:
                decision = f"skipped ({plan.skip_reason})"
            else:
                decision = "dry_run" if plan.dry_run else "would run"
            matches.append(
                {
                    "rule": plan.rule,
                    "target": plan.target,
                    "decision": decision,
                    "error": plan.error,
                    "actions": [
                        {"action": s["action"], "params": redact(s["params"])} for s in plan.steps
                    ],
                }
            )
        report.append({"alert": incoming.alert.summary(), "matches": matches})
    return {"rules_version": ruleset.version, "alerts": report}

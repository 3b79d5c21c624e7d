"""CloudWatch alarm notifications (the JSON inside an SNS ``Message``) into alerts.

ALARM is firing, OK is resolved, INSUFFICIENT_DATA is what the config says
(ignored by default). Labels come from the trigger — Namespace, MetricName,
the Dimensions by their own names — plus ``region`` and ``account``, so the
same rule language and matchers work as for Alertmanager. The fingerprint
comes from the alarm ARN: every notification of one alarm is the same alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from receiver.ingest import PayloadError
from rules.alert import Alert, Status, fingerprint_of

InsufficientData = Literal["ignore", "firing", "resolved"]
STATES: dict[str, Status] = {"ALARM": "firing", "OK": "resolved"}


def is_alarm(message: object) -> bool:
    """Whether a decoded message looks like a CloudWatch alarm notification."""
    return isinstance(message, Mapping) and "AlarmName" in message and "NewStateValue" in message


def parse_alarm(message: object, insufficient_data: InsufficientData = "ignore") -> Alert | None:
    """The alert for one alarm notification; ``None`` for an ignored INSUFFICIENT_DATA."""
    if not isinstance(message, Mapping):
        raise PayloadError("Message", "the CloudWatch alarm must be a JSON object")
    name = _text(message, "AlarmName")
    state = _text(message, "NewStateValue")
    status: Status
    if state == "INSUFFICIENT_DATA":
        if insufficient_data == "ignore":
            return None
        status = insufficient_data
    elif state in STATES:
        status = STATES[state]
    else:
        raise PayloadError("Message.NewStateValue", f"unknown alarm state {state!r}")
    arn = _text(message, "AlarmArn")
    region, account = _arn_parts(arn)
    # The trigger's labels first: a dimension called region or alertname must not
    # override what the alarm itself says.
    labels = _trigger_labels(message.get("Trigger"))
    labels.update({"alertname": name, "region": region, "account": account})
    changed = _time(_text(message, "StateChangeTime"))
    annotations = {
        key: str(message[field])
        for key, field in (
            ("description", "AlarmDescription"),
            ("reason", "NewStateReason"),
            ("alarm_arn", "AlarmArn"),
            ("old_state", "OldStateValue"),
        )
        if isinstance(message.get(field), str) and message.get(field)
    }
    return Alert(
        source="cloudwatch",
        name=name,
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at=changed,
        ends_at=changed if status == "resolved" else None,
        fingerprint=fingerprint_of({"alarm_arn": arn}),
    )


def _trigger_labels(trigger: object) -> dict[str, str]:
    """Namespace, MetricName and Dimensions of a metric alarm or of a metric-math alarm."""
    if not isinstance(trigger, Mapping):
        return {}
    metrics: list[Mapping[str, Any]] = []
    if isinstance(trigger.get("Metrics"), list):  # metric math: each MetricStat's metric
        for item in trigger["Metrics"]:
            stat = item.get("MetricStat") if isinstance(item, Mapping) else None
            if isinstance(stat, Mapping) and isinstance(stat.get("Metric"), Mapping):
                metrics.append(stat["Metric"])
    elif "Metrics" in trigger:
        raise PayloadError("Message.Trigger.Metrics", "must be a list")
    else:
        metrics.append(trigger)
    labels: dict[str, str] = {}
    for metric in metrics:
        for key in ("Namespace", "MetricName"):
            if isinstance(metric.get(key), str) and key not in labels:
                labels[key] = metric[key]
        dimensions = metric.get("Dimensions")
        for dimension in dimensions if isinstance(dimensions, list) else []:
            if not isinstance(dimension, Mapping):
                continue
            # CloudWatch spells dimensions {"name", "value"} in notifications, and
            # {"Name", "Value"} in metric-math metrics.
            key = dimension.get("name", dimension.get("Name"))
            value = dimension.get("value", dimension.get("Value"))
            if isinstance(key, str) and isinstance(value, str) and key not in labels:
                labels[key] = value
    if isinstance(trigger.get("Metrics"), list):
        for item in trigger["Metrics"]:
            if isinstance(item, Mapping) and item.get("ReturnData") and item.get("Expression"):
                labels.setdefault("expression", str(item["Expression"]))
    return labels


def _arn_parts(arn: str) -> tuple[str, str]:
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "cloudwatch":
        raise PayloadError("Message.AlarmArn", f"not a CloudWatch alarm ARN: {arn!r}")
    return parts[3], parts[4]


def _text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"Message.{key}", "is required and must be a string")
    return value


def _time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError("Message.StateChangeTime", f"not a time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)

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
from typing import Any, Literal, TypeGuard

from receiver.ingest import PayloadError, unicode_text
from rules.alert import Alert, Status, fingerprint_of

InsufficientData = Literal["ignore", "firing", "resolved"]
STATES: dict[str, Status] = {"ALARM": "firing", "OK": "resolved"}


def is_alarm(message: object) -> TypeGuard[Mapping[str, Any]]:
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
    annotations: dict[str, str] = {}
    for key, field in (
        ("description", "AlarmDescription"),
        ("reason", "NewStateReason"),
        ("alarm_arn", "AlarmArn"),
        ("old_state", "OldStateValue"),
    ):
        if text := _optional_text(message, field, "Message"):
            annotations[key] = text
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
    """Namespace, MetricName and Dimensions of a metric alarm or of a metric-math alarm.

    What is read must have its type (CloudWatch writes ``null`` for what an
    alarm lacks, and that is taken as absent); the rest of the trigger is not
    remedy's business and is not looked at.
    """
    where = "Message.Trigger"
    if trigger is None:
        return {}
    if not isinstance(trigger, Mapping):
        raise PayloadError(where, "must be an object")
    metrics: list[tuple[Mapping[str, Any], str]] = []
    expression: str | None = None
    items = trigger.get("Metrics")
    if items is None:
        metrics.append((trigger, where))
    elif not isinstance(items, list):
        raise PayloadError(f"{where}.Metrics", "must be a list")
    for i, item in enumerate(items or []):  # metric math: each MetricStat's metric
        path = f"{where}.Metrics[{i}]"
        if not isinstance(item, Mapping):
            raise PayloadError(path, "must be an object")
        stat = item.get("MetricStat")
        if stat is not None:
            if not isinstance(stat, Mapping) or not isinstance(stat.get("Metric"), Mapping):
                raise PayloadError(f"{path}.MetricStat", "must be an object with a Metric")
            metrics.append((stat["Metric"], f"{path}.MetricStat.Metric"))
        text = _optional_text(item, "Expression", path)
        if text and item.get("ReturnData") and expression is None:
            expression = text
    labels: dict[str, str] = {}
    for metric, path in metrics:
        for key in ("Namespace", "MetricName"):
            value = _optional_text(metric, key, path)
            if value is not None and key not in labels:
                labels[key] = value
        dimensions = metric.get("Dimensions")
        if dimensions is not None and not isinstance(dimensions, list):
            raise PayloadError(f"{path}.Dimensions", "must be a list")
        for i, dimension in enumerate(dimensions or []):
            at = f"{path}.Dimensions[{i}]"
            if not isinstance(dimension, Mapping):
                raise PayloadError(at, "must be an object")
            # CloudWatch spells dimensions {"name", "value"} in notifications, and
            # {"Name", "Value"} in metric-math metrics.
            name = _text(dimension, "name" if "name" in dimension else "Name", at)
            value = _text(dimension, "value" if "value" in dimension else "Value", at, empty=True)
            labels.setdefault(name, value)
    if expression is not None:
        labels.setdefault("expression", expression)
    return labels


def _arn_parts(arn: str) -> tuple[str, str]:
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "cloudwatch":
        raise PayloadError("Message.AlarmArn", f"not a CloudWatch alarm ARN: {arn!r}")
    return parts[3], parts[4]


def _text(message: Mapping[str, Any], key: str, where: str = "Message", empty: bool = False) -> str:
    value = message.get(key)
    if not isinstance(value, str) or not (value or empty):
        raise PayloadError(f"{where}.{key}", "is required and must be a string")
    return unicode_text(value, f"{where}.{key}")


def _optional_text(message: Mapping[str, Any], key: str, where: str) -> str | None:
    """A string field CloudWatch may leave out or write as ``null``."""
    value = message.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where}.{key}", "must be a string or null")
    return unicode_text(value, f"{where}.{key}")


def _time(value: str) -> datetime:
    field = "Message.StateChangeTime"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(field, f"not a time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
        raise PayloadError(field, f"time out of range: {value!r}") from None

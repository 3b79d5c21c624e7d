"""CloudWatch alarms become alerts the same rule language matches."""

from __future__ import annotations

import pytest

from receiver.ingest import PayloadError
from receiver.ingest.cloudwatch import parse_alarm
from tests.support.cloudwatch import ACCOUNT, alarm, metric_math_alarm


def test_an_alarm_is_a_firing_alert_with_its_trigger_as_labels() -> None:
    alert = parse_alarm(alarm())
    assert alert is not None
    assert (alert.source, alert.name, alert.status) == ("cloudwatch", "orders-dlq-depth", "firing")
    assert alert.labels == {
        "alertname": "orders-dlq-depth",
        "region": "us-east-1",
        "account": ACCOUNT,
        "Namespace": "AWS/SQS",
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "QueueName": "orders-dlq",
    }
    assert alert.starts_at.isoformat() == "2026-11-24T05:00:00+00:00"
    assert alert.annotations["description"] == "orders-dlq has messages"


def test_ok_resolves_the_same_alert() -> None:
    firing = parse_alarm(alarm())
    resolved = parse_alarm(alarm(state="OK", changed="2026-11-24T05:10:00.000+0000"))
    assert firing is not None and resolved is not None
    assert resolved.status == "resolved"
    assert resolved.fingerprint == firing.fingerprint


def test_insufficient_data_is_ignored_unless_configured() -> None:
    assert parse_alarm(alarm(state="INSUFFICIENT_DATA")) is None
    alert = parse_alarm(alarm(state="INSUFFICIENT_DATA"), "firing")
    assert alert is not None and alert.status == "firing"


def test_a_metric_math_alarm_takes_its_metrics_labels() -> None:
    alert = parse_alarm(metric_math_alarm("checkout"))
    assert alert is not None
    assert alert.labels["Namespace"] == "AWS/Lambda"
    assert alert.labels["MetricName"] == "Errors"
    assert alert.labels["FunctionName"] == "checkout"
    assert alert.labels["expression"] == "100*m1/m2"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"AlarmArn": "arn:aws:sns:us-east-1:1:x"}, "Message.AlarmArn"),
        ({"NewStateValue": "MAYBE"}, "Message.NewStateValue"),
        ({"StateChangeTime": "yesterday"}, "Message.StateChangeTime"),
        ({"AlarmName": 7}, "Message.AlarmName"),
    ],
)
def test_a_malformed_alarm_names_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_alarm({**alarm(), **change})
    assert caught.value.field == field

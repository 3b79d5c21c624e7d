"""CloudWatch alarm notifications as CloudWatch writes them into an SNS ``Message``."""

from __future__ import annotations

import json
import uuid
from typing import Any

ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:alarms"


def alarm(
    name: str = "orders-dlq-depth",
    state: str = "ALARM",
    *,
    queue: str = "orders-dlq",
    changed: str = "2026-11-24T05:00:00.000+0000",
    region: str = "us-east-1",
) -> dict[str, Any]:
    """An alarm on ``ApproximateNumberOfMessagesVisible`` of an SQS queue."""
    return metric_alarm(
        name,
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"QueueName": queue},
        state=state,
        changed=changed,
        region=region,
        description=f"{queue} has messages",
    )


def metric_alarm(
    name: str,
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    *,
    state: str = "ALARM",
    changed: str = "2026-11-24T05:00:00.000+0000",
    region: str = "us-east-1",
    description: str = "",
) -> dict[str, Any]:
    """An alarm on one metric, with the trigger CloudWatch writes for it."""
    return {
        "AlarmName": name,
        "AlarmDescription": description or None,
        "AWSAccountId": ACCOUNT,
        "AlarmConfigurationUpdatedTimestamp": "2026-11-01T00:00:00.000+0000",
        "NewStateValue": state,
        "NewStateReason": "Threshold Crossed: 1 datapoint [3.0] was greater than 1.0",
        "StateChangeTime": changed,
        "Region": "US East (N. Virginia)",
        "AlarmArn": f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:{name}",
        "OldStateValue": "OK" if state == "ALARM" else "ALARM",
        "OKActions": [],
        "AlarmActions": [f"arn:aws:sns:{region}:{ACCOUNT}:alarms"],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": metric,
            "Namespace": namespace,
            "StatisticType": "Statistic",
            "Statistic": "MAXIMUM",
            "Unit": None,
            "Dimensions": [{"value": value, "name": key} for key, value in dimensions.items()],
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 1.0,
            "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": "",
        },
    }


def metric_math_alarm(function: str = "checkout") -> dict[str, Any]:
    """A metric-math alarm: the error rate of a Lambda function."""
    base = alarm("checkout-error-rate")
    base["Trigger"] = {
        "Metrics": [
            {"Id": "e1", "Expression": "100*m1/m2", "Label": "ErrorRate", "ReturnData": True},
            {
                "Id": "m1",
                "ReturnData": False,
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Lambda",
                        "MetricName": "Errors",
                        "Dimensions": [{"Name": "FunctionName", "Value": function}],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            },
            {
                "Id": "m2",
                "ReturnData": False,
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Lambda",
                        "MetricName": "Invocations",
                        "Dimensions": [{"Name": "FunctionName", "Value": function}],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            },
        ],
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 5.0,
        "EvaluationPeriods": 1,
    }
    return base


def sns_notification(
    message: dict[str, Any],
    *,
    topic: str = TOPIC,
    message_id: str | None = None,
    kind: str = "Notification",
) -> dict[str, Any]:
    """An SNS HTTP delivery of ``message``, as SNS posts it (unsigned: verification off)."""
    return {
        "Type": kind,
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": topic,
        "Subject": f'{message.get("NewStateValue", "ALARM")}: "{message.get("AlarmName")}"',
        "Message": json.dumps(message),
        "Timestamp": "2026-11-24T05:00:01.000Z",
        "SignatureVersion": "1",
        "Signature": "",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }

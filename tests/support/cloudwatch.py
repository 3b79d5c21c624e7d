"""CloudWatch alarm notifications as CloudWatch writes them into an SNS ``Message``."""

from __future__ import annotations

from typing import Any

ACCOUNT = "123456789012"


def alarm(
    name: str = "orders-dlq-depth",
    state: str = "ALARM",
    *,
    queue: str = "orders-dlq",
    changed: str = "2026-11-24T05:00:00.000+0000",
    region: str = "us-east-1",
) -> dict[str, Any]:
    """An alarm on ``ApproximateNumberOfMessagesVisible`` of an SQS queue."""
    return {
        "AlarmName": name,
        "AlarmDescription": f"{queue} has messages",
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
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Namespace": "AWS/SQS",
            "StatisticType": "Statistic",
            "Statistic": "MAXIMUM",
            "Unit": None,
            "Dimensions": [{"value": queue, "name": "QueueName"}],
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

"""End to end with moto: a CloudWatch alarm published to SNS reaches remedy over HTTP,
and the rule redrives the dead-letter queue back to its source queue."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from receiver.auth import Token
from receiver.config import AuthConfig, AwsConfig, SnsConfig
from remediations.aws.session import AwsSession
from tests.conftest import StartRemedy
from tests.support.cloudwatch import alarm
from tests.support.moto import REGION

RULE = """
rules:
  - name: redrive-dlq
    match:
      source: cloudwatch
      alertname: orders-dlq-depth
      matchers: ['QueueName=~".+-dlq"']
    target: 'sqs:{{ labels.QueueName }}'
    actions:
      - action: aws.sqs_redrive
        params: {queue: '{{ labels.QueueName }}', max_messages: 100}
"""


async def count(sqs: Any, url: str) -> int:
    attributes = await sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


async def test_an_alarm_published_to_sns_redrives_the_dlq(
    remedy: StartRemedy, moto_server: str
) -> None:
    aws = AwsSession(REGION, moto_server)
    async with aws.client("sqs") as sqs, aws.client("sns") as sns:
        dlq = (await sqs.create_queue(QueueName="orders-dlq"))["QueueUrl"]
        dlq_arn = (await sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"]))[
            "Attributes"
        ]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})
        source = (await sqs.create_queue(QueueName="orders", Attributes={"RedrivePolicy": policy}))[
            "QueueUrl"
        ]
        for n in range(5):
            await sqs.send_message(QueueUrl=dlq, MessageBody=f"order {n}")
        topic = (await sns.create_topic(Name="alarms"))["TopicArn"]

        server = await remedy(
            RULE,
            dry_run=False,
            aws=AwsConfig(REGION, moto_server),
            allow={"aws.sqs_redrive": ("-dlq$", "^orders$")},  # the DLQ and where it goes
            sns=SnsConfig(verify_signature=False, allowed_topics=(topic,)),
            auth=AuthConfig(
                webhook_tokens=(Token("sns", "s3cret", username="sns"),),
                api_tokens=(Token("oncall", "op-token", "viewer"),),
            ),
        )
        port = server.client.server.port
        endpoint = f"http://sns:s3cret@127.0.0.1:{port}/webhook/sns"
        await sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint)
        await sns.publish(
            TopicArn=topic,
            Message=json.dumps(alarm(queue="orders-dlq")),
            Subject='ALARM: "orders-dlq-depth"',
        )

        async def succeeded() -> list[Any]:
            _, body = await server.get_json(
                "/api/v1/audit",
                params={"outcome": "succeeded"},
                headers={"Authorization": "Bearer op-token"},
            )
            events: list[Any] = body["events"]
            return events

        async with asyncio.timeout(30):  # a hang guard: moto delivers within moments
            while not await succeeded():  # noqa: ASYNC110 - the condition is remote state
                await asyncio.sleep(0.1)
        assert await count(sqs, dlq) == 0
        assert await count(sqs, source) == 5
        (event,) = await succeeded()
        assert event["result"]["moved"] == 5
        assert event["alert"]["source"] == "cloudwatch"

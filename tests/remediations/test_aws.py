"""The AWS actions through aiobotocore against moto's real server on 127.0.0.1.

StartMessageMoveTask is the one thing moto lacks; that path runs against a
small SQS endpoint in this file that speaks the same JSON protocol.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.exceptions import ClientError  # type: ignore[import-untyped, unused-ignore]

from remediations import ActionContext, ParamError, PermanentError, TemporaryError
from remediations.aws.ecs_redeploy import EcsRedeploy
from remediations.aws.errors import translated
from remediations.aws.lambda_concurrency import LambdaConcurrency
from remediations.aws.lambda_rollback import LambdaRollback
from remediations.aws.session import AwsSession
from remediations.aws.sqs_redrive import (
    SqsRedrive,
    describe_queue,
    listed_sources,
    scanned_sources,
)
from tests.support.moto import (
    REGION,
    alias_version,
    count,
    make_function,
    make_queue,
    publish_versions,
    reserved_concurrency,
)

ACCOUNT = "123456789012"


@pytest.fixture
async def aws(moto_server: str) -> AwsSession:
    return AwsSession(REGION, moto_server)


@pytest.fixture
async def ctx(aws: AwsSession) -> AsyncIterator[ActionContext]:
    async with aiohttp.ClientSession() as session:
        yield ActionContext(http=session, aws=aws)


# --- SQS helpers: what an operator would do with the CLI -------------------------------


async def put(aws: AwsSession, name: str, count: int, group: str | None = None) -> None:
    """``count`` messages with string, number and binary attributes."""
    async with aws.client("sqs") as sqs:
        url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
        for start in range(0, count, 10):
            entries = []
            for n in range(start, min(count, start + 10)):
                entry: dict[str, Any] = {
                    "Id": str(n),
                    "MessageBody": json.dumps({"order": n}),
                    "MessageAttributes": attributes(n),
                }
                if group is not None:
                    entry["MessageGroupId"] = group
                    entry["MessageDeduplicationId"] = f"order-{n}"
                entries.append(entry)
            answer = await sqs.send_message_batch(QueueUrl=url, Entries=entries)
            assert not answer.get("Failed"), answer


def attributes(n: int) -> dict[str, Any]:
    return {
        "tenant": {"DataType": "String", "StringValue": f"tenant-{n % 3}"},
        "attempt": {"DataType": "Number", "StringValue": str(n)},
        "blob": {"DataType": "Binary", "BinaryValue": bytes([n, 0, 255])},
    }


async def drain(aws: AwsSession, name: str) -> list[dict[str, Any]]:
    """Every message in a queue (received, and deleted)."""
    found: list[dict[str, Any]] = []
    async with aws.client("sqs") as sqs:
        url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
        while True:
            answer = await sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            )
            messages = answer.get("Messages") or []
            if not messages:
                return found
            found.extend(messages)
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            await sqs.delete_message_batch(QueueUrl=url, Entries=entries)


def orders(messages: list[dict[str, Any]]) -> list[int]:
    return sorted(json.loads(m["Body"])["order"] for m in messages)


# --- aws.sqs_redrive ---------------------------------------------------------------------


async def test_redrive_moves_every_message_back_to_the_source_with_its_attributes(
    aws: AwsSession, ctx: ActionContext
) -> None:
    await make_queue(aws, "orders-dlq")
    await make_queue(aws, "orders", dlq="orders-dlq")
    await make_queue(aws, "unrelated")
    await put(aws, "orders-dlq", 23)
    action = SqsRedrive()
    params = action.parse({"queue": "orders-dlq"})
    assert action.subject(params) == "orders-dlq"
    result = await action.run(params, ctx)
    assert result["queue"] == "orders-dlq"
    assert result["destination"] == "orders"
    assert result["method"] == "receive_send_delete"
    assert "ListMessageMoveTasks" in result["why_not_move_task"]  # moto has no move tasks
    assert (result["moved"], result["failed"], result["not_deleted"]) == (23, 0, 0)
    assert await count(aws, "orders-dlq") == 0
    assert await count(aws, "unrelated") == 0
    moved = await drain(aws, "orders")
    assert orders(moved) == list(range(23))
    for message in moved:
        n = json.loads(message["Body"])["order"]
        assert message["MessageAttributes"] == attributes(n)


async def test_a_dlq_named_by_arn_moves_here_and_not_from_another_region(
    aws: AwsSession, ctx: ActionContext
) -> None:
    await make_queue(aws, "orders-dlq")
    await make_queue(aws, "orders", dlq="orders-dlq")
    await put(aws, "orders-dlq", 3)
    action = SqsRedrive()
    elsewhere = action.parse({"queue": f"arn:aws:sqs:eu-west-1:{ACCOUNT}:orders-dlq"})
    with pytest.raises(PermanentError, match="queue orders-dlq is in region eu-west-1"):
        await action.run(elsewhere, ctx)
    url = f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/orders-dlq"
    with pytest.raises(PermanentError, match="is in region eu-west-1"):
        await action.run(action.parse({"queue": url}), ctx)
    assert await count(aws, "orders-dlq") == 3
    here = action.parse({"queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders-dlq"})
    assert action.subject(here) == "orders-dlq"
    assert (await action.run(here, ctx))["moved"] == 3
    assert await count(aws, "orders") == 3


async def test_max_messages_bounds_the_move(aws: AwsSession, ctx: ActionContext) -> None:
    await make_queue(aws, "orders-dlq")
    await make_queue(aws, "orders", dlq="orders-dlq")
    await put(aws, "orders-dlq", 25)
    action = SqsRedrive()
    result = await action.run(action.parse({"queue": "orders-dlq", "max_messages": 12}), ctx)
    assert result["moved"] == 12
    assert await count(aws, "orders") == 12
    assert await count(aws, "orders-dlq") == 13
    # what is left is untouched: visible, ready for the next redrive
    assert len(await drain(aws, "orders-dlq")) == 13


async def test_redrive_to_an_explicit_destination_by_url(
    aws: AwsSession, ctx: ActionContext
) -> None:
    dlq_url = await make_queue(aws, "orders-dlq")
    await make_queue(aws, "orders", dlq="orders-dlq")
    replay_url = await make_queue(aws, "orders-replay")
    await put(aws, "orders-dlq", 4)
    action = SqsRedrive()
    params = action.parse({"queue": dlq_url, "destination": replay_url})
    assert action.subject(params) == "orders-dlq"
    result = await action.run(params, ctx)
    assert (result["destination"], result["moved"]) == ("orders-replay", 4)
    assert await count(aws, "orders") == 0
    assert orders(await drain(aws, "orders-replay")) == [0, 1, 2, 3]


async def test_a_refused_batch_is_left_in_the_dlq(aws: AwsSession, ctx: ActionContext) -> None:
    await make_queue(aws, "orders-dlq")
    await make_queue(aws, "orders", dlq="orders-dlq")
    async with aws.client("sqs") as sqs:
        url = (await sqs.get_queue_url(QueueName="orders"))["QueueUrl"]
        await sqs.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": "1024"})
        await put(aws, "orders-dlq", 10)
        dlq_url = (await sqs.get_queue_url(QueueName="orders-dlq"))["QueueUrl"]
        await sqs.send_message(QueueUrl=dlq_url, MessageBody="x" * 2000)
    action = SqsRedrive()
    with pytest.raises(PermanentError) as caught:
        await action.run(action.parse({"queue": "orders-dlq"}), ctx)
    assert "send to orders: One or more parameters are invalid." in str(caught.value)
    assert str(caught.value).endswith("(after moving 10 messages)")
    assert await count(aws, "orders") == 10
    # the refused message was not deleted, and is visible again at once
    (left,) = await drain(aws, "orders-dlq")
    assert left["Body"] == "x" * 2000


async def test_fifo_redrive_keeps_the_message_group(aws: AwsSession, ctx: ActionContext) -> None:
    await make_queue(aws, "payments-dlq.fifo")
    await make_queue(aws, "payments.fifo", dlq="payments-dlq.fifo")
    await put(aws, "payments-dlq.fifo", 5, group="customer-7")
    action = SqsRedrive()
    result = await action.run(action.parse({"queue": "payments-dlq.fifo"}), ctx)
    assert result["moved"] == 5
    moved = await drain(aws, "payments.fifo")
    assert [json.loads(m["Body"])["order"] for m in moved] == [0, 1, 2, 3, 4]  # in order
    assert {m["Attributes"]["MessageGroupId"] for m in moved} == {"customer-7"}


async def test_redrive_between_fifo_and_standard_is_refused(
    aws: AwsSession, ctx: ActionContext
) -> None:
    await make_queue(aws, "payments-dlq.fifo")
    await make_queue(aws, "plain")
    await put(aws, "payments-dlq.fifo", 1, group="g")
    action = SqsRedrive()
    params = action.parse({"queue": "payments-dlq.fifo", "destination": "plain"})
    with pytest.raises(PermanentError, match="FIFO queue and plain a standard one"):
        await action.run(params, ctx)
    assert await count(aws, "payments-dlq.fifo") == 1


async def test_a_missing_queue_fails_with_aws_message(ctx: ActionContext) -> None:
    action = SqsRedrive()
    with pytest.raises(PermanentError) as caught:
        await action.run(action.parse({"queue": "nope-dlq"}), ctx)
    assert str(caught.value).startswith("queue nope-dlq: The specified queue does not exist.")
    assert "QueueDoesNotExist" in str(caught.value)


async def test_a_missing_destination_fails_before_anything_moves(
    aws: AwsSession, ctx: ActionContext
) -> None:
    await make_queue(aws, "orders-dlq")
    await put(aws, "orders-dlq", 2)
    action = SqsRedrive()
    with pytest.raises(PermanentError, match="queue gone: The specified queue does not exist"):
        await action.run(action.parse({"queue": "orders-dlq", "destination": "gone"}), ctx)
    assert await count(aws, "orders-dlq") == 2


async def test_a_dlq_without_a_source_needs_a_destination(
    aws: AwsSession, ctx: ActionContext
) -> None:
    await make_queue(aws, "lonely-dlq")
    await put(aws, "lonely-dlq", 1)
    action = SqsRedrive()
    with pytest.raises(PermanentError) as caught:
        await action.run(action.parse({"queue": "lonely-dlq"}), ctx)
    assert "dead-letter queue of no queue" in str(caught.value)
    assert "give destination" in str(caught.value)
    assert await count(aws, "lonely-dlq") == 1


async def test_a_dlq_with_two_sources_names_them(aws: AwsSession, ctx: ActionContext) -> None:
    await make_queue(aws, "shared-dlq")
    await make_queue(aws, "orders", dlq="shared-dlq")
    await make_queue(aws, "invoices", dlq="shared-dlq")
    await put(aws, "shared-dlq", 1)
    action = SqsRedrive()
    with pytest.raises(PermanentError) as caught:
        await action.run(action.parse({"queue": "shared-dlq"}), ctx)
    assert "of 2 queues (invoices, orders); give destination" in str(caught.value)
    assert await count(aws, "shared-dlq") == 1


async def test_scanning_redrive_policies_finds_what_aws_lists(aws: AwsSession) -> None:
    await make_queue(aws, "shared-dlq")
    await make_queue(aws, "other-dlq")
    orders_url = await make_queue(aws, "orders", dlq="shared-dlq")
    invoices_url = await make_queue(aws, "invoices", dlq="shared-dlq")
    await make_queue(aws, "emails", dlq="other-dlq")
    await make_queue(aws, "plain")
    action = SqsRedrive()
    async with aws.client("sqs") as sqs:
        dlq = await describe_queue(sqs, action.parse({"queue": "shared-dlq"}).queue)
        assert sorted(await listed_sources(sqs, dlq)) == sorted([orders_url, invoices_url])
        assert sorted(await scanned_sources(sqs, dlq)) == sorted([orders_url, invoices_url])


# --- StartMessageMoveTask, on an endpoint that has it -----------------------------------


class MoveTaskSqs:
    """Just enough of SQS's JSON protocol for a DLQ whose endpoint has message move tasks.

    ``orders-dlq`` (holding ``backlog`` messages) is the DLQ of ``orders``; the
    task it starts is RUNNING on the first poll and COMPLETED on the next.
    """

    def __init__(self, backlog: int, running: bool = False) -> None:
        self.backlog = backlog
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.base = ""
        self.polls = 0
        self.messages: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = [
            {"Status": "COMPLETED", "StartedTimestamp": 1000, "ApproximateNumberOfMessagesMoved": 7}
        ]
        if running:
            self.tasks.insert(
                0,
                {
                    "Status": "RUNNING",
                    "StartedTimestamp": 2000,
                    "TaskHandle": "other",
                    "ApproximateNumberOfMessagesMoved": 1,
                    "ApproximateNumberOfMessagesToMove": 9,
                },
            )

    def arn(self, name: str) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"

    def url(self, name: str) -> str:
        return f"{self.base}/{ACCOUNT}/{name}"

    async def handle(self, request: web.Request) -> web.Response:
        operation = request.headers["X-Amz-Target"].removeprefix("AmazonSQS.")
        body = json.loads(await request.read() or b"{}")
        self.calls.append((operation, body))
        answer: Callable[[dict[str, Any]], dict[str, Any]] = getattr(self, operation)
        return web.json_response(
            answer(body), content_type="application/x-amz-json-1.0", dumps=json.dumps
        )

    def GetQueueUrl(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"QueueUrl": self.url(body["QueueName"])}

    def GetQueueAttributes(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["QueueUrl"].rsplit("/", 1)[-1]
        backlog = self.backlog if name == "orders-dlq" else 0
        return {
            "Attributes": {
                "QueueArn": self.arn(name),
                "ApproximateNumberOfMessages": str(backlog),
                "ApproximateNumberOfMessagesNotVisible": "0",
                "ApproximateNumberOfMessagesDelayed": "0",
            }
        }

    def ListDeadLetterSourceQueues(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"queueUrls": [self.url("orders")]}

    def ListMessageMoveTasks(self, body: Mapping[str, Any]) -> dict[str, Any]:
        if self.tasks[0].get("TaskHandle") == "ours":
            self.polls += 1
            if self.polls > 1:
                self.tasks[0] = {
                    "Status": "COMPLETED",
                    "StartedTimestamp": 3000,
                    "SourceArn": body["SourceArn"],
                    "ApproximateNumberOfMessagesMoved": self.backlog,
                    "ApproximateNumberOfMessagesToMove": self.backlog,
                }
        return {"Results": self.tasks[: body.get("MaxResults", 10)]}

    def StartMessageMoveTask(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.tasks.insert(0, {"Status": "RUNNING", "StartedTimestamp": 3000, "TaskHandle": "ours"})
        return {"TaskHandle": "ours"}

    def ReceiveMessage(self, body: Mapping[str, Any]) -> dict[str, Any]:
        messages, self.messages = self.messages[: body["MaxNumberOfMessages"]], []
        return {"Messages": messages}

    def SendMessageBatch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The entry whose body is ``refuse`` fails, as SQS fails one entry of a batch."""
        entries = body["Entries"]
        refused = [e for e in entries if e["MessageBody"] == "refuse"]
        return {
            "Successful": [
                {"Id": e["Id"], "MessageId": f"new-{e['Id']}", "MD5OfMessageBody": "x"}
                for e in entries
                if e not in refused
            ],
            "Failed": [
                {
                    "Id": e["Id"],
                    "SenderFault": True,
                    "Code": "InvalidMessageContents",
                    "Message": "no",
                }
                for e in refused
            ],
        }

    def DeleteMessageBatch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"Successful": [{"Id": e["Id"]} for e in body["Entries"]]}

    def ChangeMessageVisibilityBatch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"Successful": [{"Id": e["Id"]} for e in body["Entries"]]}


async def redrive(fake: MoveTaskSqs, action: SqsRedrive) -> Mapping[str, Any]:
    """Run ``action`` on ``orders-dlq`` against ``fake``, served on 127.0.0.1 for the call."""
    app = web.Application()
    app.router.add_post("/", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.base = str(server.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession() as session:
            ctx = ActionContext(http=session, aws=AwsSession(REGION, fake.base))
            return await action.run(action.parse({"queue": "orders-dlq"}), ctx)
    finally:
        await server.close()


@pytest.mark.usefixtures("aws_credentials")
async def test_redrive_uses_a_message_move_task_where_the_endpoint_has_one() -> None:
    fake = MoveTaskSqs(backlog=3)
    result = await redrive(fake, SqsRedrive(poll_seconds=0.01))
    assert result["method"] == "message_move_task"
    assert (result["moved"], result["task"], result["destination"]) == (3, "ours", "orders")
    (start,) = [body for op, body in fake.calls if op == "StartMessageMoveTask"]
    assert start == {"SourceArn": fake.arn("orders-dlq"), "DestinationArn": fake.arn("orders")}
    assert "ReceiveMessage" not in [op for op, _ in fake.calls]


@pytest.mark.usefixtures("aws_credentials")
async def test_only_messages_sqs_accepted_are_deleted_from_the_dlq() -> None:
    fake = MoveTaskSqs(backlog=500)  # more than max_messages: no move task
    fake.messages = [
        {"MessageId": f"m{n}", "ReceiptHandle": f"handle-{n}", "Body": body}
        for n, body in enumerate(["one", "refuse", "three"])
    ]
    result = await redrive(fake, SqsRedrive(wait_seconds=0))
    assert (result["moved"], result["failed"]) == (2, 1)
    assert result["errors"] == ["InvalidMessageContents: no"]
    ops = [op for op, _ in fake.calls]
    assert ops.index("SendMessageBatch") < ops.index("DeleteMessageBatch")
    (deleted,) = [body for op, body in fake.calls if op == "DeleteMessageBatch"]
    assert [e["ReceiptHandle"] for e in deleted["Entries"]] == ["handle-0", "handle-2"]
    (released,) = [body for op, body in fake.calls if op == "ChangeMessageVisibilityBatch"]
    assert released["Entries"] == [{"Id": "0", "ReceiptHandle": "handle-1", "VisibilityTimeout": 0}]


@pytest.mark.usefixtures("aws_credentials")
async def test_a_backlog_past_max_messages_is_not_given_to_a_move_task() -> None:
    fake = MoveTaskSqs(backlog=500)
    result = await redrive(fake, SqsRedrive(wait_seconds=0))
    assert result["method"] == "receive_send_delete"
    assert "about 500 messages, more than max_messages (100)" in result["why_not_move_task"]
    assert "StartMessageMoveTask" not in [op for op, _ in fake.calls]


@pytest.mark.usefixtures("aws_credentials")
async def test_a_move_task_already_running_is_a_temporary_error() -> None:
    fake = MoveTaskSqs(backlog=3, running=True)
    with pytest.raises(TemporaryError, match=r"already running \(1 of 9 moved\)"):
        await redrive(fake, SqsRedrive(poll_seconds=0.01))
    assert "StartMessageMoveTask" not in [op for op, _ in fake.calls]


# --- aws.lambda_concurrency --------------------------------------------------------------


async def test_concurrency_delta_is_clamped_by_max(aws: AwsSession, ctx: ActionContext) -> None:
    await make_function(aws, "resize-images", reserved=5)
    action = LambdaConcurrency()
    params = action.parse({"function": "resize-images", "delta": 10, "max": 12})
    assert action.subject(params) == "resize-images"
    result = await action.run(params, ctx)
    assert result == {"function": "resize-images", "reserved": {"before": 5, "after": 12}}
    assert await reserved_concurrency(aws, "resize-images") == 12
    again = await action.run(params, ctx)  # already at max: nothing to put
    assert again["reserved"] == {"before": 12, "after": 12}
    assert "already at 12" in again["unchanged"]


async def test_a_function_in_another_region_is_refused_untouched(
    aws: AwsSession, ctx: ActionContext
) -> None:
    """An alarm from eu-west-1 names a namesake of a function here: leave it alone."""
    await make_function(aws, "resize-images", reserved=5)
    action = LambdaConcurrency()
    other = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:resize-images"
    params = action.parse({"function": other, "delta": 10, "max": 50})
    with pytest.raises(PermanentError, match=r"is in region eu-west-1, and backends\.aws\.region"):
        await action.run(params, ctx)
    assert await reserved_concurrency(aws, "resize-images") == 5


async def test_concurrency_lowered_by_delta_stops_at_min(
    aws: AwsSession, ctx: ActionContext
) -> None:
    arn = await make_function(aws, "resize-images", reserved=5)
    action = LambdaConcurrency()
    params = action.parse({"function": arn, "delta": -10, "min": 2, "max": 50})
    assert action.subject(params) == "resize-images"
    result = await action.run(params, ctx)
    assert result["reserved"] == {"before": 5, "after": 2}
    assert await reserved_concurrency(aws, "resize-images") == 2


async def test_first_reservation_is_set_with_reserved(aws: AwsSession, ctx: ActionContext) -> None:
    await make_function(aws, "resize-images")
    action = LambdaConcurrency()
    with pytest.raises(PermanentError, match=r"no reserved concurrency .* give reserved"):
        await action.run(action.parse({"function": "resize-images", "delta": 5, "max": 20}), ctx)
    assert await reserved_concurrency(aws, "resize-images") is None
    params = action.parse({"function": "resize-images", "reserved": 20, "max": 20})
    result = await action.run(params, ctx)
    assert result["reserved"] == {"before": None, "after": 20}
    assert await reserved_concurrency(aws, "resize-images") == 20


async def test_concurrency_of_a_missing_function_fails_with_aws_message(
    ctx: ActionContext,
) -> None:
    action = LambdaConcurrency()
    with pytest.raises(PermanentError) as caught:
        await action.run(action.parse({"function": "nope", "reserved": 2, "max": 4}), ctx)
    assert "function nope: Function not found" in str(caught.value)
    assert "ResourceNotFoundException" in str(caught.value)


# --- aws.lambda_rollback -------------------------------------------------------------------


async def test_an_alias_goes_back_to_the_version_before_its_own(
    aws: AwsSession, ctx: ActionContext
) -> None:
    await make_function(aws, "checkout")
    assert await publish_versions(aws, "checkout", 3) == ["1", "2", "3"]
    async with aws.client("lambda") as api:
        await api.create_alias(FunctionName="checkout", Name="live", FunctionVersion="3")
    action = LambdaRollback()
    params = action.parse({"function": "checkout", "alias": "live"})
    assert action.subject(params) == "checkout"
    preview = await action.preview(params, ctx)
    assert preview["version"] == {"before": "3", "after": "2"}
    assert await alias_version(aws, "checkout", "live") == "3"  # the preview changed nothing

    result = await action.run(params, ctx)
    assert result == {
        "function": "checkout",
        "alias": "live",
        "version": {"before": "3", "after": "2"},
    }
    assert await alias_version(aws, "checkout", "live") == "2"
    # once more: the version before 2
    assert (await action.run(params, ctx))["version"] == {"before": "2", "after": "1"}
    with pytest.raises(PermanentError, match="no published version of it is older"):
        await action.run(params, ctx)
    assert await alias_version(aws, "checkout", "live") == "1"


async def test_an_explicit_version_and_weighted_routing(
    aws: AwsSession, ctx: ActionContext
) -> None:
    await make_function(aws, "checkout")
    await publish_versions(aws, "checkout", 4)
    async with aws.client("lambda") as api:
        await api.create_alias(
            FunctionName="checkout",
            Name="live",
            FunctionVersion="3",
            RoutingConfig={"AdditionalVersionWeights": {"4": 0.1}},  # a canary of 4
        )
    action = LambdaRollback()
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:checkout"
    result = await action.run(
        action.parse({"function": arn, "alias": "live", "to_version": 1}), ctx
    )
    assert result["version"] == {"before": "3", "after": "1"}
    assert result["routing_before"] == {"4": 0.1}
    async with aws.client("lambda") as api:
        alias = await api.get_alias(FunctionName="checkout", Name="live")
    assert alias["FunctionVersion"] == "1"
    assert not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")


async def test_a_canary_goes_back_by_dropping_its_weights_not_its_version(
    aws: AwsSession, ctx: ActionContext
) -> None:
    await make_function(aws, "checkout")
    await publish_versions(aws, "checkout", 4)
    async with aws.client("lambda") as api:
        await api.create_alias(
            FunctionName="checkout",
            Name="live",
            FunctionVersion="3",  # the release that was good
            RoutingConfig={"AdditionalVersionWeights": {"4": 0.1}},  # the failing canary
        )
    action = LambdaRollback()
    result = await action.run(action.parse({"function": "checkout", "alias": "live"}), ctx)
    assert result["version"] == {"before": "3", "after": "3"}
    assert result["routing_before"] == {"4": 0.1}
    async with aws.client("lambda") as api:
        alias = await api.get_alias(FunctionName="checkout", Name="live")
    assert alias["FunctionVersion"] == "3"
    assert not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")


async def test_a_rollback_that_cannot_be_is_permanent(aws: AwsSession, ctx: ActionContext) -> None:
    await make_function(aws, "checkout")
    await publish_versions(aws, "checkout", 1)
    async with aws.client("lambda") as api:
        await api.create_alias(FunctionName="checkout", Name="edge", FunctionVersion="$LATEST")
    action = LambdaRollback()
    with pytest.raises(PermanentError, match=r"points to \$LATEST.*give to_version"):
        await action.run(action.parse({"function": "checkout", "alias": "edge"}), ctx)
    with pytest.raises(PermanentError, match="alias missing of function checkout"):
        await action.run(action.parse({"function": "checkout", "alias": "missing"}), ctx)
    elsewhere = action.parse(
        {"function": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:checkout", "alias": "edge"}
    )
    with pytest.raises(PermanentError, match="is in region eu-west-1"):
        await action.run(elsewhere, ctx)


# --- aws.ecs_redeploy --------------------------------------------------------------------


async def make_service(aws: AwsSession, cluster: str, service: str) -> None:
    async with aws.client("ecs") as ecs:
        await ecs.create_cluster(clusterName=cluster)
        await ecs.register_task_definition(
            family=service,
            containerDefinitions=[{"name": service, "image": "shop/web:1.0", "memory": 128}],
        )
        await ecs.create_service(
            cluster=cluster, serviceName=service, taskDefinition=service, desiredCount=2
        )


async def test_ecs_redeploy_starts_a_new_deployment(aws: AwsSession, ctx: ActionContext) -> None:
    await make_service(aws, "prod", "web")
    action = EcsRedeploy()
    params = action.parse({"cluster": "prod", "service": "web"})
    assert action.subject(params) == "web"
    result = await action.run(params, ctx)
    assert (result["cluster"], result["service"]) == ("prod", "web")
    before, after = result["primary"]["before"], result["primary"]["after"]
    assert before and after and before != after
    assert result["deployments"]["after"][0]["status"] == "PRIMARY"
    json.dumps(result)  # the audit log stores it as JSON
    async with aws.client("ecs") as ecs:
        described = await ecs.describe_services(cluster="prod", services=["web"])
    assert described["services"][0]["deployments"][0]["id"] == after


async def test_ecs_redeploy_of_a_missing_service_or_cluster_fails(
    aws: AwsSession, ctx: ActionContext
) -> None:
    await make_service(aws, "prod", "web")
    action = EcsRedeploy()
    with pytest.raises(PermanentError, match="service api in cluster prod: MISSING"):
        await action.run(action.parse({"cluster": "prod", "service": "api"}), ctx)
    with pytest.raises(PermanentError, match=r"cluster staging: Cluster not found\."):
        await action.run(action.parse({"cluster": "staging", "service": "web"}), ctx)


# --- what every AWS action shares ---------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "params", "field"),
    [
        (SqsRedrive(), {}, "queue"),
        (SqsRedrive(), {"queue": "a b"}, "queue"),
        (SqsRedrive(), {"queue": "https://sqs.example/just-a-name"}, "queue"),
        (SqsRedrive(), {"queue": "arn:aws:sns:us-east-1:1:topic"}, "queue"),
        (SqsRedrive(), {"queue": "q-dlq", "destination": "q-dlq"}, "destination"),
        (SqsRedrive(), {"queue": "q-dlq", "max_messages": 0}, "max_messages"),
        (SqsRedrive(), {"queue": "q-dlq", "max_messages": "10"}, "max_messages"),
        (SqsRedrive(), {"queue": "q-dlq", "limit": 10}, "limit"),
        (LambdaConcurrency(), {"reserved": 1, "max": 2}, "function"),
        (LambdaConcurrency(), {"function": "f", "max": 2}, "reserved"),
        (LambdaConcurrency(), {"function": "f", "reserved": 1, "delta": 1, "max": 2}, "reserved"),
        (LambdaConcurrency(), {"function": "f", "delta": 1}, "max"),
        (LambdaConcurrency(), {"function": "f", "reserved": 9, "max": 5}, "reserved"),
        (LambdaConcurrency(), {"function": "f", "delta": 0, "max": 5}, "delta"),
        (LambdaConcurrency(), {"function": "f", "delta": 1, "min": 6, "max": 5}, "min"),
        (
            LambdaConcurrency(),
            {
                "function": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f:live",
                "delta": 1,
                "max": 5,
            },
            "function",
        ),
        (EcsRedeploy(), {"service": "web"}, "cluster"),
        (EcsRedeploy(), {"cluster": "prod"}, "service"),
        (EcsRedeploy(), {"cluster": "prod", "service": "arn:aws:sqs:x:1:web"}, "service"),
        (EcsRedeploy(), {"cluster": "prod", "service": "web", "force": True}, "force"),
        (LambdaRollback(), {"function": "f"}, "alias"),
        (LambdaRollback(), {"function": "f:live", "alias": "live"}, "function"),
        (LambdaRollback(), {"function": "f", "alias": "7"}, "alias"),
        (
            LambdaRollback(),
            {"function": "f", "alias": "live", "to_version": "$LATEST"},
            "to_version",
        ),
        (LambdaRollback(), {"function": "f", "alias": "live", "to_version": 0}, "to_version"),
    ],
)
def test_params_are_checked_and_errors_name_the_field(
    action: Any, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(ParamError) as caught:
        action.parse(params)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("action", "params"),
    [
        (SqsRedrive(), {"queue": "orders-dlq"}),
        (LambdaConcurrency(), {"function": "f", "reserved": 1, "max": 2}),
        (EcsRedeploy(), {"cluster": "prod", "service": "web"}),
        (LambdaRollback(), {"function": "f", "alias": "live"}),
    ],
)
async def test_without_backends_aws_an_action_fails_clearly(
    action: Any, params: dict[str, Any]
) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(
            PermanentError, match=r"^backends.aws is not configured in remedy.yaml$"
        ):
            await action.run(action.parse(params), ActionContext(http=session))


@pytest.mark.usefixtures("aws_credentials")
async def test_an_unreachable_endpoint_is_temporary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore would retry the connection
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        ctx = ActionContext(http=session, aws=AwsSession(REGION, f"http://127.0.0.1:{port}"))
        action = EcsRedeploy()
        with pytest.raises(TemporaryError, match=r"cannot reach AWS .*EndpointConnectionError"):
            await action.run(action.parse({"cluster": "prod", "service": "web"}), ctx)


def client_error(code: str, status: int, message: str = "m") -> Any:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
    }
    return ClientError(response, "Operation")


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("ThrottlingException", 400, TemporaryError),
        ("TooManyRequestsException", 429, TemporaryError),
        ("ServiceUnavailable", 503, TemporaryError),
        ("InternalFailure", 500, TemporaryError),
        ("ResourceConflictException", 409, TemporaryError),
        ("AccessDenied", 403, PermanentError),
        ("AccessDeniedException", 400, PermanentError),
        ("ResourceNotFoundException", 404, PermanentError),
        ("AWS.SimpleQueueService.NonExistentQueue", 400, PermanentError),
        ("ValidationException", 400, PermanentError),
        ("InvalidParameterValueException", 400, PermanentError),
    ],
)
def test_aws_errors_become_permanent_or_temporary(
    code: str, status: int, kind: type[Exception]
) -> None:
    with pytest.raises(kind) as caught, translated("thing x"):
        raise client_error(code, status, "AWS says no")
    assert type(caught.value) is kind
    assert str(caught.value) == f"thing x: AWS says no ({code}, HTTP {status})"

"""``aws.sqs_redrive``: move messages from a dead-letter queue back to where they came from.

What the console's "Start DLQ redrive" does, bounded by ``max_messages``.
The destination defaults to the DLQ's source queue, found as AWS finds it:
the queues whose ``RedrivePolicy`` names the DLQ's ARN as
``deadLetterTargetArn`` (``ListDeadLetterSourceQueues``, or scanning
``ListQueues`` where an endpoint lacks it). Exactly one source is required;
give ``destination`` when there are several.

Two ways to move, reported as ``method``:

- ``message_move_task``: ``StartMessageMoveTask``, AWS's own redrive, then
  polled until it completes. Used when the endpoint has it (a
  ``ListMessageMoveTasks`` probe succeeds) and the DLQ holds no more than
  ``max_messages``: a task moves everything, so a bigger backlog goes the
  other way.
- ``receive_send_delete``: batches of up to 10: receive (all message
  attributes and system attributes), ``SendMessageBatch`` to the destination
  with the same body and message attributes, then delete from the DLQ only
  the entries whose send succeeded. A message that could not be sent stays in
  the DLQ (made visible again at the end). Delivery is at least once, as with
  SQS itself: a send that AWS took but did not confirm is sent again next time.
  For FIFO queues the message group is kept, and the deduplication id is the
  DLQ message's id: stable if the redrive is retried, and never the original
  id the destination may still remember (which would drop the message
  silently).

Params:
    queue: the DLQ, by name, URL or ARN (one in another region than
        ``backends.aws.region`` is refused)
    destination: the queue to move to, by name, URL or ARN (default: the DLQ's source)
    max_messages: at most this many messages are taken from the DLQ (default 100)

Result: ``queue``, ``destination``, ``method``, ``moved``, ``failed``
(sends that failed; those messages stay in the DLQ), ``errors`` (the first
few per-message failures), ``not_deleted`` (sent but still in the DLQ) and,
when the move task was not used, ``why_not_move_task``.

Permissions (IAM): ``sqs:GetQueueUrl`` and ``sqs:GetQueueAttributes`` on both
queues; on the DLQ ``sqs:ReceiveMessage``, ``sqs:DeleteMessage``,
``sqs:ChangeMessageVisibility`` and ``sqs:ListDeadLetterSourceQueues`` (or
``sqs:ListQueues`` with ``GetQueueAttributes`` on every queue, for the scan);
``sqs:SendMessage`` on the destination; for the move task
``sqs:StartMessageMoveTask`` and ``sqs:ListMessageMoveTasks``. With KMS-encrypted
queues, ``kms:Decrypt`` on the DLQ's key and ``kms:GenerateDataKey`` on the
destination's.

Example::

    - action: aws.sqs_redrive
      params: {queue: '{{ labels.QueueName }}', max_messages: 500}
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

# botocore ships no type information (its clients are used as Any anyway).
from botocore.exceptions import ClientError  # type: ignore[import-untyped, unused-ignore]

from remediations.aws.errors import describe, error_codes, is_temporary, status_code, translated
from remediations.aws.session import NO_RETRIES, aws_session
from remediations.base import (
    ActionContext,
    ActionError,
    ParamError,
    PermanentError,
    TemporaryError,
)
from remediations.params import Fields

BATCH = 10  # SQS's limit on messages per receive, send and delete batch
BATCH_BYTES = 256 * 1024  # a conservative payload limit for one SendMessageBatch
VISIBILITY_SECONDS = 120  # a received message stays hidden while it is being moved
MAX_ERRORS = 5
_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}(\.fifo)?")
# sqs.REGION.amazonaws.com(.cn), or the legacy REGION.queue.amazonaws.com
_SQS_HOST = re.compile(
    r"sqs\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?|(?P<legacy>[a-z0-9-]+)\.queue\.amazonaws\.com"
)
_ATTRIBUTE_FIELDS = ("DataType", "StringValue", "BinaryValue")
# How endpoints without an operation answer it (moto: a bare 500).
_UNKNOWN_OPERATION = frozenset(
    {"InvalidAction", "UnknownOperationException", "UnknownOperation", "NotImplemented"}
)
_NO_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_QUEUE_ATTRIBUTES = [
    "QueueArn",
    "FifoQueue",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


@dataclasses.dataclass(frozen=True, slots=True)
class QueueRef:
    """A queue as a param names it: always its name, and its URL or owner when given."""

    name: str
    url: str | None = None
    account: str | None = None
    region: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Queue:
    """A queue as SQS describes it."""

    name: str
    url: str
    arn: str
    fifo: bool
    backlog: int  # visible + in flight + delayed, approximately


@dataclasses.dataclass(frozen=True, slots=True)
class RedriveParams:
    """A validated ``aws.sqs_redrive``."""

    queue: QueueRef
    destination: QueueRef | None
    max_messages: int


def parse_queue(field: str, value: str) -> QueueRef:
    """A queue name, URL (``https://sqs.../ACCOUNT/NAME``) or ARN (``arn:aws:sqs:...``)."""
    if value.startswith(("https://", "http://")):
        parts = [p for p in urlsplit(value).path.split("/") if p]
        if len(parts) != 2 or not _NAME.fullmatch(parts[1]):
            raise ParamError(field, f"expected a queue URL ending in /ACCOUNT/NAME, got {value!r}")
        host = _SQS_HOST.fullmatch(urlsplit(value).hostname or "")
        region = (host["region"] or host["legacy"]) if host else None
        return QueueRef(parts[1], url=value, account=parts[0], region=region)
    if value.startswith("arn:"):
        parts = value.split(":")
        if len(parts) != 6 or parts[2] != "sqs" or not _NAME.fullmatch(parts[5]):
            raise ParamError(field, f"expected an SQS queue ARN, got {value!r}")
        return QueueRef(parts[5], account=parts[4] or None, region=parts[3] or None)
    if not _NAME.fullmatch(value):
        raise ParamError(
            field,
            f"expected a queue name (letters, digits, - and _, up to 80, maybe .fifo), "
            f"a URL or an ARN, got {value!r}",
        )
    return QueueRef(value)


class SqsRedrive:
    """Move up to ``max_messages`` from a DLQ to its source queue (or ``destination``)."""

    name: ClassVar[str] = "aws.sqs_redrive"

    def __init__(self, wait_seconds: int = 1, poll_seconds: float = 2.0) -> None:
        # wait_seconds: long polling, so an empty receive means an empty queue
        # (short polling samples only some of SQS's servers).
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds

    def parse(self, params: Mapping[str, Any]) -> RedriveParams:
        """See the module docstring."""
        fields = Fields(params, ("queue", "destination", "max_messages"))
        queue = parse_queue("queue", fields.string("queue"))
        destination = None
        if fields.has("destination"):
            destination = parse_queue("destination", fields.string("destination"))
            if destination.name == queue.name and destination.account == queue.account:
                raise ParamError("destination", "is the dead-letter queue itself")
        max_messages = fields.integer("max_messages", 100, minimum=1)
        return RedriveParams(queue, destination, max_messages)

    def subject(self, params: RedriveParams) -> str:
        """The DLQ's name, what ``backends.aws.allow_queues`` must admit."""
        return params.queue.name

    async def run(self, params: RedriveParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Find both queues, then move with a message move task or in batches."""
        aws = aws_session(ctx)
        aws.check_region(params.queue.region, f"queue {params.queue.name}")
        if params.destination is not None:
            aws.check_region(params.destination.region, f"queue {params.destination.name}")
        async with aws.client("sqs") as sqs:
            dlq = await describe_queue(sqs, params.queue)
            if params.destination is not None:
                destination = await describe_queue(sqs, params.destination)
            else:
                destination = await describe_queue(sqs, await _source(sqs, dlq))
            if destination.arn == dlq.arn:
                raise PermanentError(f"queue {dlq.name}: the destination is the queue itself")
            if not ctx.allowed(destination.name):
                raise PermanentError(
                    f"queue {dlq.name}: destination {destination.name} is outside "
                    "backends.aws.allow_queues"
                )
            if destination.fifo != dlq.fifo:
                kinds = {True: "FIFO", False: "standard"}
                raise PermanentError(
                    f"queue {dlq.name} is a {kinds[dlq.fifo]} queue and {destination.name} "
                    f"a {kinds[destination.fifo]} one: messages cannot move between them"
                )
            result: dict[str, Any] = {"queue": dlq.name, "destination": destination.name}
            async with aws.client("sqs", config=NO_RETRIES) as probe:
                moved = await self._move_task(sqs, probe, dlq, destination, params.max_messages)
            if isinstance(moved, str):
                result["why_not_move_task"] = moved
                moved = await self._batches(sqs, dlq, destination, params.max_messages)
            result.update(moved)
        return result

    async def _move_task(
        self, sqs: Any, probe: Any, dlq: Queue, destination: Queue, max_messages: int
    ) -> dict[str, Any] | str:
        """Redrive with ``StartMessageMoveTask``; why not, when it cannot be used."""
        if dlq.backlog == 0:
            return "the queue looks empty (its counts are approximate)"
        if dlq.backlog > max_messages:
            return (
                f"the queue holds about {dlq.backlog} messages, more than max_messages "
                f"({max_messages}), and a move task cannot stop at a count"
            )
        with translated(f"message move tasks of {dlq.name}"):
            try:
                previous = await _latest_task(probe, dlq)
            except ClientError as exc:
                return f"ListMessageMoveTasks: {describe(exc)}"
        if previous.get("Status") == "RUNNING":
            raise TemporaryError(
                f"queue {dlq.name}: a message move task is already running "
                f"({_task_progress(previous)})"
            )
        with translated(f"start a message move task from {dlq.name} to {destination.name}"):
            try:
                started = await sqs.start_message_move_task(
                    SourceArn=dlq.arn, DestinationArn=destination.arn
                )
            except ClientError as exc:
                if is_temporary(exc):
                    raise
                # refused (not permitted, not a DLQ in AWS's eyes...): nothing was started
                return f"StartMessageMoveTask: {describe(exc)}"
        handle = started.get("TaskHandle")
        while True:
            await asyncio.sleep(self.poll_seconds)
            with translated(f"message move tasks of {dlq.name}"):
                task = await _latest_task(sqs, dlq)
            # ours is the latest once it is listed; only a running task carries its handle
            ours = bool(task) and task.get("StartedTimestamp") != previous.get("StartedTimestamp")
            status = task.get("Status")
            if not ours or status == "RUNNING":
                continue
            moved = int(task.get("ApproximateNumberOfMessagesMoved") or 0)
            if status == "COMPLETED":
                return {
                    "method": "message_move_task",
                    "task": handle,
                    "moved": moved,
                    "failed": 0,
                    "errors": [],
                    "not_deleted": 0,
                }
            reason = task.get("FailureReason") or "no reason given"
            message = f"queue {dlq.name}: the message move task ended {status}: {reason} "
            message += f"({_task_progress(task)})"
            if status == "FAILED":
                raise TemporaryError(message)
            raise PermanentError(message)

    async def _batches(
        self, sqs: Any, dlq: Queue, destination: Queue, max_messages: int
    ) -> dict[str, Any]:
        """Receive, send and delete in batches; delete only what was sent."""
        moved = failed = not_deleted = received = 0
        errors: list[str] = []
        held: dict[str, str] = {}  # received and not sent: message id -> receipt handle
        try:
            while received < max_messages:
                with translated(f"receive from {dlq.name}"):
                    answer = await sqs.receive_message(
                        QueueUrl=dlq.url,
                        MaxNumberOfMessages=min(BATCH, max_messages - received),
                        WaitTimeSeconds=self.wait_seconds,
                        VisibilityTimeout=VISIBILITY_SECONDS,
                        MessageAttributeNames=["All"],
                        MessageSystemAttributeNames=["All"],
                    )
                messages = answer.get("Messages") or []
                if not messages:
                    break
                received += len(messages)
                held.update((m["MessageId"], m["ReceiptHandle"]) for m in messages)
                for batch in _by_size(messages):
                    entries = [_entry(str(i), m, destination.fifo) for i, m in enumerate(batch)]
                    with translated(f"send to {destination.name}"):
                        sent = await sqs.send_message_batch(
                            QueueUrl=destination.url, Entries=entries
                        )
                    ok = {entry["Id"] for entry in sent.get("Successful", [])}
                    errors.extend(_failures(sent))
                    done = [
                        {"Id": str(i), "ReceiptHandle": held.pop(m["MessageId"])}
                        for i, m in enumerate(batch)
                        if str(i) in ok
                    ]
                    moved += len(done)
                    failed += len(batch) - len(done)
                    if done:
                        with translated(f"delete from {dlq.name}"):
                            deleted = await sqs.delete_message_batch(QueueUrl=dlq.url, Entries=done)
                        not_deleted += len(deleted.get("Failed", []))
                        errors.extend(_failures(deleted))
        except ActionError as exc:
            await _release(sqs, dlq, list(held.values()))
            raise _with_progress(exc, moved) from None
        await _release(sqs, dlq, list(held.values()))
        return {
            "method": "receive_send_delete",
            "moved": moved,
            "failed": failed,
            "errors": errors[:MAX_ERRORS],
            "not_deleted": not_deleted,
        }


async def describe_queue(sqs: Any, ref: QueueRef) -> Queue:
    """The queue's URL, ARN, kind and backlog; a missing queue is a permanent error."""
    with translated(f"queue {ref.name}"):
        url = ref.url
        if url is None:
            lookup = {"QueueName": ref.name}
            if ref.account:
                lookup["QueueOwnerAWSAccountId"] = ref.account
            url = (await sqs.get_queue_url(**lookup))["QueueUrl"]
        attributes = (
            await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=_QUEUE_ATTRIBUTES)
        )["Attributes"]
    backlog = sum(int(attributes.get(name) or 0) for name in _QUEUE_ATTRIBUTES[2:])
    fifo = str(attributes.get("FifoQueue", "false")).lower() == "true"
    return Queue(ref.name, url, attributes["QueueArn"], fifo, backlog)


async def _source(sqs: Any, dlq: Queue) -> QueueRef:
    """The one queue whose redrive policy targets ``dlq``; a permanent error otherwise."""
    with translated(f"source queues of {dlq.name}"):
        try:
            urls = await listed_sources(sqs, dlq)
        except ClientError as exc:
            if not _unknown_operation(exc):
                raise
            urls = await scanned_sources(sqs, dlq)
    names = sorted(_name(url) for url in urls)
    if len(urls) == 1:
        return QueueRef(_name(urls[0]), url=urls[0])
    if not urls:
        raise PermanentError(
            f"queue {dlq.name} is the dead-letter queue of no queue (no RedrivePolicy "
            f"names {dlq.arn}); give destination"
        )
    raise PermanentError(
        f"queue {dlq.name} is the dead-letter queue of {len(urls)} queues "
        f"({', '.join(names)}); give destination"
    )


async def listed_sources(sqs: Any, dlq: Queue) -> list[str]:
    """The URLs ``ListDeadLetterSourceQueues`` gives, every page (botocore's errors as they are)."""
    urls: list[str] = []
    pages = sqs.get_paginator("list_dead_letter_source_queues").paginate(QueueUrl=dlq.url)
    async for page in pages:
        urls.extend(page.get("queueUrls", []))
    return urls


async def scanned_sources(sqs: Any, dlq: Queue) -> list[str]:
    """The URLs of the queues whose ``RedrivePolicy`` targets the DLQ, reading every queue.

    For endpoints without ``ListDeadLetterSourceQueues``; botocore's errors as they are.
    """
    urls: list[str] = []
    async for page in sqs.get_paginator("list_queues").paginate():
        for url in page.get("QueueUrls", []):
            try:
                answer = await sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["RedrivePolicy"]
                )
            except ClientError as exc:
                if error_codes(exc) & _NO_QUEUE:
                    continue  # deleted since it was listed
                raise
            if _dead_letter_target(answer.get("Attributes", {})) == dlq.arn:
                urls.append(url)
    return urls


def _dead_letter_target(attributes: Mapping[str, Any]) -> str | None:
    """The ``deadLetterTargetArn`` of a queue's ``RedrivePolicy``, if it has one."""
    try:
        policy = json.loads(attributes.get("RedrivePolicy") or "{}")
    except ValueError:
        return None
    target = policy.get("deadLetterTargetArn") if isinstance(policy, dict) else None
    return str(target) if target else None


def _unknown_operation(exc: Any) -> bool:
    """Whether an endpoint does not have the operation at all (or failed on it, after retries)."""
    return bool(error_codes(exc) & _UNKNOWN_OPERATION) or status_code(exc) >= 500


def _name(url: str) -> str:
    """A queue's name from its URL."""
    return url.rstrip("/").rsplit("/", 1)[-1]


async def _latest_task(sqs: Any, dlq: Queue) -> Mapping[str, Any]:
    """The most recent message move task from the DLQ (empty when there was none)."""
    listed = await sqs.list_message_move_tasks(SourceArn=dlq.arn, MaxResults=1)
    tasks = listed.get("Results") or []
    return tasks[0] if tasks else {}


def _entry(entry_id: str, message: Mapping[str, Any], fifo: bool) -> dict[str, Any]:
    """A ``SendMessageBatch`` entry carrying a received message's body and attributes."""
    entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message["Body"]}
    attributes = {
        name: {k: v for k, v in value.items() if k in _ATTRIBUTE_FIELDS}
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    if attributes:
        entry["MessageAttributes"] = attributes
    system = message.get("Attributes") or {}
    if system.get("AWSTraceHeader"):
        entry["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": system["AWSTraceHeader"]}
        }
    if fifo:
        entry["MessageGroupId"] = system.get("MessageGroupId") or message["MessageId"]
        entry["MessageDeduplicationId"] = message["MessageId"]
    return entry


def _size(message: Mapping[str, Any]) -> int:
    """A message's payload size as SQS counts it: body plus attribute names, types, values."""
    size = len(message["Body"].encode())
    for name, value in (message.get("MessageAttributes") or {}).items():
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        data = value.get("StringValue") or value.get("BinaryValue") or b""
        size += len(data.encode() if isinstance(data, str) else data)
    return size


def _by_size(messages: Sequence[Mapping[str, Any]]) -> Iterator[list[Mapping[str, Any]]]:
    """The messages in send batches under :data:`BATCH_BYTES` (a big one goes alone)."""
    batch: list[Mapping[str, Any]] = []
    total = 0
    for message in messages:
        size = _size(message)
        if batch and total + size > BATCH_BYTES:
            yield batch
            batch, total = [], 0
        batch.append(message)
        total += size
    if batch:
        yield batch


def _failures(answer: Mapping[str, Any]) -> list[str]:
    """A batch answer's per-entry failures, as ``Code: Message``."""
    return [
        f"{failed.get('Code', 'error')}: {failed.get('Message', 'no message')}"
        for failed in answer.get("Failed", [])
    ]


async def _release(sqs: Any, dlq: Queue, handles: Sequence[str]) -> None:
    """Make messages that were not moved visible in the DLQ again, now rather than later.

    Best effort: if it fails they reappear when their visibility timeout ends.
    """
    for start in range(0, len(handles), BATCH):
        entries = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for i, handle in enumerate(handles[start : start + BATCH])
        ]
        with contextlib.suppress(ActionError), translated(f"release messages in {dlq.name}"):
            await sqs.change_message_visibility_batch(QueueUrl=dlq.url, Entries=entries)


def _with_progress(exc: ActionError, moved: int) -> ActionError:
    """The same kind of error, saying how far the move got."""
    if not moved:
        return exc
    message = f"{exc} (after moving {moved} messages)"
    if isinstance(exc, TemporaryError):
        return TemporaryError(message, exc.delay)
    if isinstance(exc, PermanentError):
        return PermanentError(message)
    return type(exc)(message)


def _task_progress(task: Mapping[str, Any]) -> str:
    """``3 of 10 moved``, from a ``ListMessageMoveTasks`` result."""
    moved = task.get("ApproximateNumberOfMessagesMoved", 0)
    total = task.get("ApproximateNumberOfMessagesToMove")
    return f"{moved} of {total} moved" if total is not None else f"{moved} moved"

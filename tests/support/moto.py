"""A real AWS API for the tests: moto's server on 127.0.0.1 (SPEC §9).

One ``ThreadedMotoServer`` per test session, on a free loopback port. The
``moto_server`` fixture hands each test its endpoint URL with moto's state
reset and dummy credentials in the environment (restored after the test),
so the standard credential chain of the code under test finds them and
nothing ever reaches AWS itself.

Load it with ``pytest_plugins = ["tests.support.moto"]`` (or import the
fixtures into a test module).
"""

from __future__ import annotations

import io
import json
import os
import urllib.request
import zipfile
from collections.abc import Iterator

import pytest

from remediations.aws.session import AwsSession
from tests.support.engines import missing

REGION = "us-east-1"
# The whole credential chain: dummy keys first, nothing from files, profiles or IMDS.
_ENV: dict[str, str | None] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_SESSION_TOKEN": None,
    "AWS_SECURITY_TOKEN": None,
    "AWS_PROFILE": None,
    "AWS_DEFAULT_PROFILE": None,
    "AWS_CONFIG_FILE": "/nonexistent/remedy-tests/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/remedy-tests/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session", name="moto_process")
def moto_process_fixture() -> Iterator[str]:
    """``moto_process``: moto's server for the whole session; its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        missing("install moto[server] (pip install 'moto[server]')")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(name="aws_credentials")
def aws_credentials_fixture() -> Iterator[None]:
    """``aws_credentials``: dummy credentials and region in the environment for one test."""
    saved = {name: os.environ.get(name) for name in _ENV}
    _apply(_ENV)
    try:
        yield
    finally:
        _apply(saved)


@pytest.fixture(name="moto_server")
def moto_server_fixture(moto_process: str, aws_credentials: None) -> str:
    """``moto_server``: the endpoint URL of a freshly reset moto, with dummy credentials set."""
    del aws_credentials
    # no proxy, whatever the environment says: tests talk to 127.0.0.1 only
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    reset = urllib.request.Request(f"{moto_process}/moto-api/reset", method="POST")
    with opener.open(reset, timeout=10) as answer:
        assert answer.status == 200
    return moto_process


# --- what an operator would do with the AWS CLI ------------------------------------------


async def make_queue(aws: AwsSession, name: str, dlq: str | None = None) -> str:
    """A queue (FIFO when the name says so), sending to ``dlq`` after one receive."""
    attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
    async with aws.client("sqs") as sqs:
        if dlq is not None:
            target = await queue_arn(aws, dlq)
            policy = {"deadLetterTargetArn": target, "maxReceiveCount": 1}
            attributes["RedrivePolicy"] = json.dumps(policy)
        answer = await sqs.create_queue(QueueName=name, Attributes=attributes)
    return str(answer["QueueUrl"])


async def queue_arn(aws: AwsSession, name: str) -> str:
    async with aws.client("sqs") as sqs:
        url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
        answer = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(answer["Attributes"]["QueueArn"])


async def count(aws: AwsSession, name: str) -> int:
    """Visible plus in-flight messages (moto's counts are exact)."""
    async with aws.client("sqs") as sqs:
        url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
        answer = await sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )
    return sum(int(v) for v in answer["Attributes"].values())


async def make_function(aws: AwsSession, name: str, reserved: int | None = None) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    async with aws.client("iam") as iam:
        role = await iam.create_role(
            RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust)
        )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("handler.py", "def handler(event, context):\n    return event\n")
    async with aws.client("lambda") as api:
        created = await api.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role["Role"]["Arn"],
            Handler="handler.handler",
            Code={"ZipFile": archive.getvalue()},
        )
        if reserved is not None:
            await api.put_function_concurrency(
                FunctionName=name, ReservedConcurrentExecutions=reserved
            )
    return str(created["FunctionArn"])


async def reserved_concurrency(aws: AwsSession, name: str) -> int | None:
    async with aws.client("lambda") as api:
        answer = await api.get_function_concurrency(FunctionName=name)
    value = answer.get("ReservedConcurrentExecutions")
    return None if value is None else int(value)


def _apply(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


async def publish_versions(aws: AwsSession, name: str, count: int) -> list[str]:
    """Publish ``count`` versions of a function, each with new code, as a deploy would."""
    versions = []
    async with aws.client("lambda") as api:
        for n in range(count):
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w") as zipped:
                zipped.writestr("handler.py", f"def handler(event, context):\n    return {n}\n")
            await api.update_function_code(FunctionName=name, ZipFile=archive.getvalue())
            published = await api.publish_version(FunctionName=name)
            versions.append(str(published["Version"]))
    return versions


async def alias_version(aws: AwsSession, name: str, alias: str) -> str:
    async with aws.client("lambda") as api:
        answer = await api.get_alias(FunctionName=name, Name=alias)
    return str(answer["FunctionVersion"])

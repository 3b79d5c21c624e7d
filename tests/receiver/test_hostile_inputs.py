"""No input gets a 500: whatever reaches the port is a 4xx JSON answer, counted, storing nothing.

A 5xx is the wrong answer to a bad request twice over: Alertmanager and SNS
retry it, so a poison message comes back forever, and the traceback behind it
fills the log for anyone who can reach the port (several of these arrive
before authentication). Each case is sent over a real socket to the real app,
byte for byte where the aiohttp client would refuse to send it.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any

import pytest

from receiver.auth import Token
from receiver.config import AuthConfig, SnsConfig
from tests.conftest import RemedyClient, StartRemedy, am_alert, am_payload, moved
from tests.support.cloudwatch import TOPIC, alarm, sns_notification
from tests.support.rawhttp import RawAnswer

WEBHOOK_SECRET = "wh-secret"
OPERATOR = {"Authorization": "Bearer op-secret"}
AUTH = AuthConfig(
    webhook_tokens=(Token("alertmanager", WEBHOOK_SECRET), Token("sns", "sns-pw", username="sns")),
    api_tokens=(Token("oncall", "op-secret", "operator"),),
)
UNSIGNED = SnsConfig(verify_signature=False, allowed_topics=(TOPIC,))
SIGNED = SnsConfig(allowed_topics=(TOPIC,))
RULE = """
rules:
  - name: anything
    match: {alertname: ServiceDown}
    target: 'x:{{ alert.fingerprint }}'
    actions:
      - action: http.request
        params: {url: 'http://127.0.0.1:1/'}
"""
JSON = (b"Content-Type", b"application/json")
WEBHOOK_AUTH = (b"Authorization", f"Bearer {WEBHOOK_SECRET}".encode())
SNS_BASIC = (b"Authorization", b"Basic " + base64.b64encode(b"sns:sns-pw"))
RAW_TOPIC = (b"x-amz-sns-topic-arn", TOPIC.encode())


async def post(
    server: RemedyClient,
    path: str,
    body: bytes | dict[str, Any],
    *headers: tuple[bytes, bytes],
) -> RawAnswer:
    """POST ``body`` (a dict is sent as JSON, lone surrogates as ``\\ud800`` escapes)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return await server.raw("POST", path, [JSON, *headers], data)


async def stored(server: RemedyClient) -> tuple[Any, Any]:
    return await server.stored(OPERATOR)


async def assert_refused(
    server: RemedyClient,
    answer: RawAnswer,
    status: int,
    field: str | None,
    before: tuple[list[Any], list[Any]],
) -> None:
    """A ``status`` JSON answer naming ``field``, and nothing stored."""
    assert answer.status == status, answer
    body = answer.json()
    assert isinstance(body["error"], str) and body["error"]
    assert body.get("field") == field, body
    assert await stored(server) == before


# -- 1. truncatedAlerts past any counter ------------------------------------------


async def test_a_truncated_count_no_counter_can_hold_is_a_400(remedy: StartRemedy) -> None:
    server = await remedy(RULE, auth=AUTH)
    before, counted = await stored(server), await server.rejections()
    for huge in (10**309, 2**64):
        payload = am_payload(am_alert(), truncated=huge)
        answer = await post(server, "/webhook/alertmanager", payload, WEBHOOK_AUTH)
        await assert_refused(server, answer, 400, "truncatedAlerts", before)
    assert moved(counted, await server.rejections()) == {("alertmanager", "malformed"): 2}
    # the largest count Alertmanager can send is still taken
    answer = await post(
        server, "/webhook/alertmanager", am_payload(am_alert(), truncated=2**64 - 1), WEBHOOK_AUTH
    )
    assert answer.status == 200


# -- 2. lone surrogates in a CloudWatch alarm --------------------------------------


def _with_surrogate(where: str) -> dict[str, Any]:
    message = alarm()
    bad = "orders\ud800"
    if where == "Message.AlarmName":
        message["AlarmName"] = bad
    elif where == "Message.AlarmArn":
        message["AlarmArn"] = f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{bad}"
    elif where == "Message.Trigger.Dimensions[0].value":
        message["Trigger"]["Dimensions"][0]["value"] = bad
    elif where == "Message.Trigger.Dimensions[0].name":
        message["Trigger"]["Dimensions"][0]["name"] = bad
    else:
        message["Trigger"][where.rsplit(".", 1)[1]] = bad
    return message


SURROGATE_FIELDS = [
    "Message.AlarmName",
    "Message.Trigger.Namespace",
    "Message.Trigger.MetricName",
    "Message.Trigger.Dimensions[0].name",
    "Message.Trigger.Dimensions[0].value",
    "Message.AlarmArn",
]


@pytest.mark.parametrize("field", SURROGATE_FIELDS)
async def test_a_lone_surrogate_in_an_alarm_is_a_400_naming_the_field(
    remedy: StartRemedy, field: str
) -> None:
    server = await remedy(RULE, auth=AUTH, sns=UNSIGNED)
    before, counted = await stored(server), await server.rejections()
    message = _with_surrogate(field)
    delivery = {**sns_notification(message), "Subject": "ALARM"}
    inside_sns = await post(server, "/webhook/sns", delivery, SNS_BASIC)
    await assert_refused(server, inside_sns, 400, field, before)
    raw = await post(server, "/webhook/sns", message, SNS_BASIC, RAW_TOPIC)
    await assert_refused(server, raw, 400, field, before)
    assert moved(counted, await server.rejections()) == {("sns", "malformed"): 2}


# -- 3. StateChangeTime out of range -----------------------------------------------


@pytest.mark.parametrize("changed", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_a_state_change_time_out_of_range_is_a_400(remedy: StartRemedy, changed: str) -> None:
    server = await remedy(RULE, auth=AUTH, sns=UNSIGNED)
    before = await stored(server)
    message = alarm(changed=changed)
    answer = await post(server, "/webhook/sns", sns_notification(message), SNS_BASIC)
    await assert_refused(server, answer, 400, "Message.StateChangeTime", before)
    answer = await post(server, "/webhook/sns", message, SNS_BASIC, RAW_TOPIC)
    await assert_refused(server, answer, 400, "Message.StateChangeTime", before)


# -- 4. lone surrogates in the SNS envelope ----------------------------------------


@pytest.mark.parametrize("field", ["TopicArn", "MessageId"])
@pytest.mark.parametrize("sns", [SIGNED, UNSIGNED], ids=["verified", "unverified"])
async def test_a_lone_surrogate_in_the_envelope_is_a_400_before_any_signature_check(
    remedy: StartRemedy, field: str, sns: SnsConfig
) -> None:
    server = await remedy(RULE, auth=AUTH, sns=sns)
    before, counted = await stored(server), await server.rejections()
    delivery = {**sns_notification(alarm()), field: "m\ud800"}
    answer = await post(server, "/webhook/sns", delivery, SNS_BASIC)
    await assert_refused(server, answer, 400, field, before)
    assert moved(counted, await server.rejections()) == {("sns", "malformed"): 1}


# -- 7. content encodings ----------------------------------------------------------


@pytest.mark.parametrize("encoding", [b"br", b"zstd", b"compress", b"gzip, br", b"\xff"])
async def test_an_unsupported_content_encoding_is_a_415_in_json(
    remedy: StartRemedy, encoding: bytes
) -> None:
    server = await remedy(RULE, auth=AUTH, sns=UNSIGNED)
    before, counted = await stored(server), await server.rejections()
    body = json.dumps(am_payload(am_alert())).encode()
    answer = await post(
        server, "/webhook/alertmanager", body, WEBHOOK_AUTH, (b"Content-Encoding", encoding)
    )
    await assert_refused(server, answer, 415, "Content-Encoding", before)
    assert moved(counted, await server.rejections()) == {("alertmanager", "encoding"): 1}


async def test_gzip_and_deflate_bodies_are_read_within_the_limit(remedy: StartRemedy) -> None:
    server = await remedy(RULE, auth=AUTH, max_body_bytes=20_000)
    body = json.dumps(am_payload(am_alert())).encode()
    for encoding, data in ((b"gzip", gzip.compress(body)), (b"deflate", zlib.compress(body))):
        answer = await post(
            server, "/webhook/alertmanager", data, WEBHOOK_AUTH, (b"Content-Encoding", encoding)
        )
        assert answer.status == 200, answer
    before = await stored(server)
    bomb = gzip.compress(b" " * 1_000_000 + body)  # a small body that inflates past the limit
    answer = await post(
        server, "/webhook/alertmanager", bomb, WEBHOOK_AUTH, (b"Content-Encoding", b"gzip")
    )
    assert answer.status == 413
    assert answer.json()["limit_bytes"] == 20_000
    broken = await post(
        server, "/webhook/alertmanager", body, WEBHOOK_AUTH, (b"Content-Encoding", b"gzip")
    )
    await assert_refused(server, broken, 400, "Content-Encoding", before)


# -- 8. raw deliveries with headers that are not text ------------------------------


@pytest.mark.parametrize("sns", [SIGNED, UNSIGNED], ids=["verified", "unverified"])
@pytest.mark.parametrize("header", [b"x-amz-sns-message-id", b"x-amz-sns-topic-arn"])
async def test_a_raw_delivery_with_an_undecodable_sns_header_is_a_400(
    remedy: StartRemedy, sns: SnsConfig, header: bytes
) -> None:
    server = await remedy(RULE, auth=AUTH, sns=sns)
    before, counted = await stored(server), await server.rejections()
    headers = {b"x-amz-sns-topic-arn": TOPIC.encode(), header: b"m-\xff"}
    answer = await post(server, "/webhook/sns", alarm(), SNS_BASIC, *headers.items())
    await assert_refused(server, answer, 400, header.decode(), before)
    assert moved(counted, await server.rejections()) == {("sns", "malformed"): 1}


async def test_a_request_id_that_is_not_text_is_replaced(remedy: StartRemedy) -> None:
    server = await remedy(RULE)
    for given in (b"\xff", b"a" * 300, b"an id"):
        answer = await server.raw("GET", "/healthz", [(b"X-Request-Id", given)])
        assert answer.status == 200
        assert answer.headers["x-request-id"].isascii()
        assert answer.headers["x-request-id"] != given.decode("latin-1")
    answer = await server.raw("GET", "/healthz", [(b"X-Request-Id", b"r-42")])
    assert answer.headers["x-request-id"] == "r-42"


async def test_raw_deliveries_with_an_empty_message_id_are_not_duplicates(
    remedy: StartRemedy,
) -> None:
    server = await remedy(RULE, auth=AUTH, sns=UNSIGNED)
    empty = (b"x-amz-sns-message-id", b"")
    for name in ("orders-dlq-depth", "billing-dlq-depth"):
        answer = await post(server, "/webhook/sns", alarm(name), SNS_BASIC, RAW_TOPIC, empty)
        assert answer.status == 200, answer
    _, body = await server.get_json("/api/v1/audit", headers={"Authorization": "Bearer op-secret"})
    received = [e["alert"]["name"] for e in body["events"] if e["event"] == "received"]
    assert sorted(received) == ["billing-dlq-depth", "orders-dlq-depth"]

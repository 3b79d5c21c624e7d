"""``POST /webhook/sns``: CloudWatch alarms delivered by SNS, through the whole service."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from receiver.auth import Token
from receiver.clock import SimulatedClock, timestamp
from receiver.config import AuthConfig, SnsConfig
from tests.conftest import ALL_BACKENDS, StartRemedy
from tests.support.cloudwatch import TOPIC, alarm, sns_notification
from tests.support.recorder import Recorder
from tests.support.sns import AWS_CERT, FIXTURES, CertServer, Signer, signed

BACKENDS = ALL_BACKENDS

UNSIGNED = SnsConfig(verify_signature=False, allowed_topics=(TOPIC,))
RULE = """
rules:
  - name: redrive-dlq
    match:
      source: cloudwatch
      alertname: orders-dlq-depth
      matchers: ['QueueName=~".+-dlq"']
    target: 'sqs:{{ labels.region }}/{{ labels.QueueName }}'
    actions:
      - action: http.request
        params: {url: 'http://127.0.0.1:1/redrive/{{ labels.QueueName }}'}
"""


async def test_an_alarm_is_matched_like_any_alert(remedy: StartRemedy) -> None:
    server = await remedy(RULE, sns=UNSIGNED)
    status, body = await server.post_sns(sns_notification(alarm()))
    assert (status, body["stored"], body["remediations"]) == (200, 1, 1)
    await server.settle()
    (dry,) = await server.events(outcome="dry_run")
    assert dry["target"] == "sqs:us-east-1/orders-dlq"
    assert dry["alert"]["source"] == "cloudwatch"


async def test_a_message_delivered_again_is_a_duplicate(remedy: StartRemedy) -> None:
    server = await remedy(RULE, sns=UNSIGNED)
    await server.post_sns(sns_notification(alarm(), message_id="m-1"))
    # same MessageId, another alarm time: only the MessageId says it is the same delivery
    again = sns_notification(alarm(changed="2026-11-24T05:03:00.000+0000"), message_id="m-1")
    status, body = await server.post_sns(again)
    assert (status, body["duplicates"], body["stored"]) == (200, 1, 0)


async def test_ok_cancels_what_waits_for_the_alarm(remedy: StartRemedy) -> None:
    server = await remedy(RULE + "    for: 1h\n", sns=UNSIGNED)
    await server.post_sns(sns_notification(alarm(changed=_now())))
    _, listed = await server.get_json("/api/v1/remediations")
    assert [r["state"] for r in listed["remediations"]] == ["waiting"]
    # CloudWatch's OK carries the time it resolved, five minutes on
    await server.post_sns(sns_notification(alarm(state="OK", changed=_now(300))))
    _, listed = await server.get_json("/api/v1/remediations")
    assert [(r["state"], r["reason"]) for r in listed["remediations"]] == [("skipped", "cancelled")]


async def test_an_alarm_delivered_after_its_ok_starts_nothing(remedy: StartRemedy) -> None:
    server = await remedy(RULE, sns=UNSIGNED)
    # SNS does not keep order: the OK of 05:05 arrives before the ALARM of 05:00
    await server.post_sns(
        sns_notification(alarm(state="OK", changed="2026-11-24T05:05:00.000+0000"))
    )
    status, body = await server.post_sns(
        sns_notification(alarm(changed="2026-11-24T05:00:00.000+0000"))
    )
    assert (status, body["remediations"]) == (200, 0)
    (skipped,) = await server.events(outcome="cancelled")
    assert skipped["error"] == "the alarm had already returned to OK when this ALARM arrived"


async def test_a_topic_outside_the_allow_list_is_refused(remedy: StartRemedy) -> None:
    server = await remedy(RULE, sns=UNSIGNED)
    other = "arn:aws:sns:us-east-1:999999999999:elsewhere"
    status, body = await server.post_sns(sns_notification(alarm(), topic=other))
    assert (status, body["reason"]) == (403, "topic")
    (event,) = await server.events()
    assert (event["event"], event["reason"]) == ("skipped", "sns_topic")


async def test_a_subscription_is_confirmed_only_when_signed_and_for_its_topic(
    remedy: StartRemedy, recorder: Recorder, cert_server: CertServer, signer: Signer
) -> None:
    confirm_url = recorder.url("/?Action=ConfirmSubscription")
    checked = SnsConfig(
        allowed_topics=(TOPIC,),
        cert_url_pattern=cert_server.pattern.pattern,
        subscribe_url_pattern=f"^{re.escape(confirm_url)}&",
    )
    server = await remedy(RULE, sns=checked)
    base = {
        **sns_notification({}, kind="SubscriptionConfirmation"),
        "Message": "You have chosen to subscribe to the topic",
        "Token": "t0k3n",
        "Timestamp": timestamp(datetime.now(UTC)),
        "SigningCertURL": cert_server.url(signer.name),
        "SubscribeURL": f"{confirm_url}&TopicArn={TOPIC}&Token=t0k3n",
    }
    del base["Subject"]
    other_topic = "arn:aws:sns:us-east-1:999999999999:elsewhere"
    refusals = [
        (signed({**base, "TopicArn": other_topic}, signer), 403),  # a topic not allowed
        ({**signed(base, signer), "Token": "changed"}, 403),  # a bad signature
        (signed({**base, "SubscribeURL": recorder.url("/internal?x=1")}, signer), 400),
        (signed({**base, "SubscribeURL": f"{confirm_url}&TopicArn={other_topic}"}, signer), 400),
    ]
    for message, expected in refusals:
        status, _ = await server.post_sns(message)
        assert status == expected
    assert recorder.received == []  # nothing was fetched for any of them
    status, body = await server.post_sns(signed(base, signer))
    assert (status, body["status"]) == (200, "confirmed")
    assert len(recorder.received) == 1
    assert recorder.received[0].path.startswith("/?Action=ConfirmSubscription&TopicArn=")


async def test_nothing_is_confirmed_without_signatures_or_taken_without_topics(
    remedy: StartRemedy, recorder: Recorder, tmp_path: Path
) -> None:
    server = await remedy(RULE, sns=UNSIGNED)
    confirm = {
        **sns_notification({}, kind="SubscriptionConfirmation"),
        "Token": "t",
        "SubscribeURL": recorder.url(f"/?Action=ConfirmSubscription&TopicArn={TOPIC}"),
    }
    status, body = await server.post_sns(confirm)
    assert (status, body["reason"]) == (403, "unsigned")
    assert recorder.received == []
    closed = await remedy(
        RULE, sns=SnsConfig(verify_signature=False), storage=f"sqlite:///{tmp_path}/2.db"
    )
    status, body = await closed.post_sns(sns_notification(alarm()))
    assert (status, body["reason"]) == (403, "topic")


async def test_raw_delivery_needs_auth_when_signatures_are_checked(
    remedy: StartRemedy, tmp_path: Path
) -> None:
    signed = SnsConfig(allowed_topics=(TOPIC,))
    server = await remedy(RULE, sns=signed)
    status, body = await server.post_sns(alarm())
    assert (status, body["reason"]) == (403, "unsigned")
    auth = AuthConfig(webhook_tokens=(Token("sns", "s3cret", username="sns"),))
    trusted = await remedy(RULE, sns=signed, auth=auth, storage=f"sqlite:///{tmp_path}/2.db")

    basic = "Basic " + base64.b64encode(b"sns:s3cret").decode()
    status, body = await trusted.post_sns(alarm(), headers={"Authorization": basic})
    assert (status, body["reason"]) == (403, "topic")  # raw deliveries name their topic
    headers = {"Authorization": basic, "x-amz-sns-topic-arn": TOPIC}
    status, body = await trusted.post_sns(alarm(), headers=headers)
    assert (status, body["stored"]) == (200, 1)


async def test_insufficient_data_and_bad_bodies(remedy: StartRemedy) -> None:
    server = await remedy(RULE, sns=UNSIGNED)
    status, body = await server.post_sns(sns_notification(alarm(state="INSUFFICIENT_DATA")))
    assert (status, body["status"]) == (200, "ignored")
    status, body = await server.post_sns({**sns_notification(alarm()), "Type": "Gossip"})
    assert status == 400
    status, body = await server.post_sns({**sns_notification(alarm()), "Message": "not json"})
    assert (status, body["error"]) == (400, "Message is not JSON")
    broken = {**alarm(), "AlarmArn": "nope"}
    status, body = await server.post_sns(sns_notification(broken))
    assert (status, body["field"]) == (400, "Message.AlarmArn")


def _now(later: float = 0) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=later)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


async def test_a_signed_alarm_is_verified_and_a_tampered_one_refused(
    remedy: StartRemedy, cert_server: CertServer, signer: Signer
) -> None:
    checked = SnsConfig(allowed_topics=(TOPIC,), cert_url_pattern=cert_server.pattern.pattern)
    server = await remedy(RULE, sns=checked)
    delivery = {
        **sns_notification(alarm()),
        "Timestamp": timestamp(datetime.now(UTC)),
        "SigningCertURL": cert_server.url(signer.name),
    }
    good = signed(delivery, signer)
    status, body = await server.post_sns(good)
    assert (status, body["stored"]) == (200, 1)
    tampered = {**signed({**delivery, "MessageId": "m-2"}, signer), "Subject": "OK: all fine"}
    status, body = await server.post_sns(tampered)
    assert (status, body["reason"]) == (403, "bad_signature")
    elsewhere = signed(
        {**delivery, "MessageId": "m-3", "SigningCertURL": "https://example.com/cert.pem"}, signer
    )
    requests_before = len(cert_server.requests)
    status, body = await server.post_sns(elsewhere)
    assert (status, body["reason"]) == (403, "cert_url")
    assert len(cert_server.requests) == requests_before  # refused before any fetch
    assert len(await server.events(outcome="received")) == 1


async def test_a_real_aws_message_verifies_through_the_service(
    remedy: StartRemedy, cert_server: CertServer
) -> None:
    vector = json.loads((FIXTURES / "notification-v2.json").read_text())
    vector["SigningCertURL"] = cert_server.url(AWS_CERT)  # not part of the signed string
    at_the_time = SimulatedClock(datetime(2026, 3, 6, 20, 5, tzinfo=UTC))
    pattern = cert_server.pattern.pattern
    topics = (vector["TopicArn"],)
    server = await remedy(
        RULE, sns=SnsConfig(cert_url_pattern=pattern, allowed_topics=topics), clock=at_the_time
    )
    status, body = await server.post_sns(vector)
    # the signature holds; the message is plain text, not an alarm, so it is refused for that
    assert (status, body["error"]) == (400, "Message is not JSON")
    vector["Message"] = vector["Message"] + " (changed)"
    status, body = await server.post_sns(vector)
    assert (status, body["reason"]) == (403, "bad_signature")

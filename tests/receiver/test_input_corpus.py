"""A corpus of bad deliveries, posted over HTTP: each a 4xx JSON answer, counted, storing nothing.

Wrong types at every field remedy reads, lone surrogates in every string,
NaN and Infinity, numbers past any counter, deep nesting, bodies that are not
UTF-8, duplicate keys. Authenticated, so that parsing, not auth, refuses
them. An SNS refusal for the topic or the envelope's Type is audited (the
README says so); nothing else is stored, and no alert or remediation ever.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from receiver.auth import Token
from receiver.config import AuthConfig, SnsConfig
from tests.conftest import RemedyClient, StartRemedy, am_alert, am_payload, moved
from tests.support.cloudwatch import TOPIC, alarm, metric_math_alarm, sns_notification
from tests.support.documents import MISSING, at, dotted, paths, replaced

AUTH = AuthConfig(
    webhook_tokens=(Token("am", "wh-secret"), Token("sns", "sns-pw", username="sns")),
    api_tokens=(Token("oncall", "op-secret", "operator"),),
)
OPERATOR = {"Authorization": "Bearer op-secret"}
AM_HEADERS = [(b"Content-Type", b"application/json"), (b"Authorization", b"Bearer wh-secret")]
SNS_HEADERS = [
    (b"Content-Type", b"text/plain; charset=UTF-8"),
    (b"Authorization", b"Basic " + base64.b64encode(b"sns:sns-pw")),
]
RAW_HEADERS = [*SNS_HEADERS, (b"x-amz-sns-topic-arn", TOPIC.encode())]
RULE = """
rules:
  - name: anything
    match: {matchers: ['alertname=~".+"']}
    target: 'x:{{ alert.fingerprint }}'
    actions:
      - action: http.request
        params: {url: 'http://127.0.0.1:1/'}
"""

Case = tuple[str, bytes]  # what it is, the body
WRONG = {
    str: [1, 2.5, True, [], {"a": "b"}],
    dict: ["x", 1, [], True],
    list: ["x", 1, {}, True],
    int: ["x", 1.5, [], True, -1],
}
SPOIL = "\ud800"


def dumps(document: Any) -> bytes:
    return json.dumps(document).encode()  # lone surrogates go out as \ud800 escapes


def raw_json(document: Any, **tokens: str) -> bytes:
    """JSON with ``"__NAME__"`` strings replaced by raw text (``NaN``, a duplicate key...)."""
    text = json.dumps(document)
    for name, raw in tokens.items():
        text = text.replace(f'"__{name}__"', raw)
    return text.encode()


def wrong_types(document: Any, at_paths: list[tuple[Any, ...]], nullable: bool) -> Iterator[Case]:
    """The document with each place given a value of another type (and ``null``, if refused)."""
    for path in at_paths:
        original = at(document, path)
        for value in WRONG[type(original)] + ([] if nullable else [None]):
            yield f"{dotted(path)}={value!r}", dumps(replaced(document, path, value))


def surrogates(
    document: Any, at_paths: list[tuple[Any, ...]], named: tuple[str, ...] = ()
) -> Iterator[Case]:
    """The document with a lone surrogate in each string, and in each key of the ``named`` maps.

    Other keys are field names: spelled wrong, they are unknown keys, ignored
    like any other (the field they named is then missing, and that is tested).
    """
    for path in at_paths:
        original = at(document, path)
        if isinstance(original, str):
            yield f"{dotted(path)} surrogate", dumps(replaced(document, path, original + SPOIL))
        if len(path) > 1 and path[-2] in named:
            renamed = replaced(document, path, MISSING)
            parent = at(renamed, path[:-1])
            parent[path[-1] + SPOIL] = original
            yield f"{dotted(path)} key surrogate", dumps(renamed)


def documents_gone_wrong(valid: dict[str, Any]) -> Iterator[Case]:
    """What any JSON endpoint must refuse, around a ``valid`` document."""
    yield "empty", b""
    yield "whitespace", b" \n"
    for value in ("null", "[]", '"x"', "1", "true", "[{}]"):
        yield f"top-level {value}", value.encode()
    yield "NaN", raw_json({**valid, "extra": "__X__"}, X="NaN")
    yield "Infinity", raw_json({**valid, "extra": "__X__"}, X="Infinity")
    yield "-Infinity", raw_json({**valid, "extra": "__X__"}, X="-Infinity")
    yield "1e400", raw_json({**valid, "extra": "__X__"}, X="1e400")
    yield "-1e400", raw_json({**valid, "extra": "__X__"}, X="-1e400")
    yield "5000 digits", raw_json({**valid, "extra": "__X__"}, X="1" * 5000)
    yield "deep arrays", b"[" * 100_000 + b"]" * 100_000
    yield "deep objects", b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    yield "deep inside", raw_json({**valid, "extra": "__X__"}, X="[" * 50_000 + "]" * 50_000)
    yield "cut short", dumps(valid)[:-1]
    yield "trailing garbage", dumps(valid) + b"}"
    body = dumps(valid)
    for name, bad in (
        ("byte ff", b"\xff"),
        ("overlong slash", b"\xc0\xaf"),
        ("cut sequence", b"\xe2\x82"),
        ("encoded surrogate", b"\xed\xa0\x80"),
    ):
        yield f"not UTF-8: {name}", body[:1] + b'"k": "' + bad + b'", ' + body[1:]
    first = next(iter(valid))
    again = f"{json.dumps(first)}: {json.dumps(valid[first])}, ".encode()
    yield "duplicate top-level key", body[:1] + again + body[1:]


def alertmanager_cases() -> Iterator[Case]:
    valid = am_payload(
        am_alert(labels={"job": "web"}, annotations={"summary": "down"}, fingerprint="f1"),
        am_alert("Other", status="resolved"),
        truncated=1,
    )
    everywhere = list(paths(valid))
    # endsAt may be null (Go's zero time), fingerprint too (remedy computes it); the rest not
    nullable = [p for p in everywhere if p[-1] in ("endsAt", "fingerprint")]
    yield from wrong_types(valid, [p for p in everywhere if p not in nullable], nullable=False)
    yield from wrong_types(valid, nullable, nullable=True)
    maps = ("labels", "annotations", "groupLabels", "commonLabels", "commonAnnotations")
    yield from surrogates(valid, everywhere, maps)
    yield from documents_gone_wrong(valid)
    for count in ("1e400", "1" + "0" * 309, str(2**64), "-0.5", "1.0"):
        yield f"truncatedAlerts={count}", raw_json({**valid, "truncatedAlerts": "__X__"}, X=count)
    labels = '{"alertname": "A", "alertname": "B"}'
    alert = {**am_alert(), "labels": "__L__"}
    yield "duplicate label", raw_json({**valid, "alerts": [alert]}, L=labels)
    for moment in ("0001-01-01T00:00:01+14:00", "9999-12-31T23:59:59-14:00", "yesterday", "1"):
        bad = {**am_alert(), "startsAt": moment}
        yield f"startsAt={moment}", dumps({**valid, "alerts": [bad]})


# The fields of an alarm remedy reads; CloudWatch writes null for the optional ones it lacks.
REQUIRED = ["AlarmName", "NewStateValue", "AlarmArn", "StateChangeTime"]
OPTIONAL = ["AlarmDescription", "NewStateReason", "OldStateValue", "Trigger"]


def alarm_fields(message: dict[str, Any]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The places in ``message`` remedy reads: (must not be null, may be null)."""
    required = [(key,) for key in REQUIRED]
    nullable = [(key,) for key in OPTIONAL if message.get(key) is not None]
    for path in paths(message.get("Trigger")):
        names = {"Namespace", "MetricName", "Dimensions", "Metrics", "MetricStat", "Expression"}
        if path[-1] in names or isinstance(path[-1], int):
            nullable.append(("Trigger", *path))
        elif path[-1] in {"name", "value", "Name", "Value", "Metric"}:
            required.append(("Trigger", *path))
    return required, nullable


def alarm_cases() -> Iterator[Case]:
    """Bad CloudWatch alarms, as the JSON inside an SNS ``Message`` or a raw delivery."""
    for message in (alarm(), metric_math_alarm()):
        required, nullable = alarm_fields(message)
        yield from wrong_types(message, required, nullable=False)
        yield from wrong_types(message, nullable, nullable=True)
        yield from surrogates(message, required + nullable)
    message = alarm()
    for state in ("BURNING", "alarm", ""):
        yield f"NewStateValue={state}", dumps({**message, "NewStateValue": state})
    for arn in ("nope", "arn:aws:sqs:us-east-1:1:q", "arn:aws:cloudwatch"):
        yield f"AlarmArn={arn}", dumps({**message, "AlarmArn": arn})
    for moment in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "soon", "2026-13-01"):
        yield f"StateChangeTime={moment}", dumps({**message, "StateChangeTime": moment})
    yield "duplicate AlarmName", b'{"AlarmName": "other", ' + dumps(message)[1:]
    yield "NaN threshold", raw_json({**message, "Trigger": {"Threshold": "__X__"}}, X="NaN")


def sns_cases() -> Iterator[Case]:
    """Bad SNS envelopes (signatures off: what remedy itself reads is what is tested)."""
    valid = sns_notification(alarm())
    yield from wrong_types(valid, [("Type",), ("TopicArn",), ("Message",)], nullable=False)
    yield from wrong_types(valid, [("MessageId",)], nullable=True)
    yield from surrogates(valid, list(paths(valid)))
    for key in valid:  # the envelope's keys are checked too: an audit record may name them
        renamed = {(k + SPOIL if k == key else k): v for k, v in valid.items()}
        yield f"{key} key surrogate", dumps(renamed)
    yield from documents_gone_wrong(valid)
    for label, message in alarm_cases():
        try:
            text = message.decode()
        except UnicodeDecodeError:
            continue  # not UTF-8: the envelope itself would not be JSON text
        yield f"Message: {label}", dumps({**valid, "Message": text})
    yield "Message not JSON", dumps({**valid, "Message": "{"})
    yield "Message NaN", dumps({**valid, "Message": '{"AlarmName": NaN}'})
    yield "Message duplicate", dumps({**valid, "Message": '{"a": 1, "a": 2}'})
    yield "Message deep", dumps({**valid, "Message": "[" * 100_000 + "]" * 100_000})


def signed_cases() -> Iterator[Case]:
    """Every envelope field of another type, and in any case without a valid signature."""
    valid = sns_notification(alarm())
    yield from wrong_types(valid, list(paths(valid)), nullable=False)


async def refused_one_by_one(
    server: RemedyClient, path: str, headers: list[tuple[bytes, bytes]], cases: list[Case]
) -> list[Any]:
    """Post each case; each is a 4xx JSON answer, counted once, storing no alert.

    Returns the audit events the refusals left (SNS refusals that are audited).
    """
    source = path.rsplit("/", 1)[1]
    events, remediations = await server.stored(OPERATOR)
    for label, body in cases:
        counted = await server.rejections()
        answer = await server.raw("POST", path, headers, body)
        assert 400 <= answer.status < 500, (label, answer)
        error = answer.json()
        assert isinstance(error["error"], str) and error["error"], (label, error)
        assert isinstance(error.get("field") or "", str), (label, error)
        changes = moved(counted, await server.rejections())
        assert {key[0] for key in changes} == {source}, (label, changes)
        assert sum(changes.values()) == 1, (label, changes)
    after, remediations_after = await server.stored(OPERATOR)
    assert remediations_after == remediations
    # nothing of the deliveries: an SNS refusal of the topic or the Type leaves only its record
    new: list[Any] = after[: len(after) - len(events)]
    assert after[len(new) :] == events
    assert all(e["event"] == "skipped" and e["reason"].startswith("sns_") for e in new), new
    return new


async def test_alertmanager_refuses_the_corpus(remedy: StartRemedy) -> None:
    server = await remedy(RULE, auth=AUTH)
    cases = list(alertmanager_cases())
    assert len(cases) > 150
    # each case is one change away from a delivery that is taken
    good = await server.raw(
        "POST", "/webhook/alertmanager", AM_HEADERS, dumps(am_payload(am_alert()))
    )
    assert good.status == 200, good
    await server.settle()
    new = await refused_one_by_one(server, "/webhook/alertmanager", AM_HEADERS, cases)
    assert new == []  # Alertmanager refusals are not audited: nothing at all was stored


async def test_sns_refuses_the_corpus(remedy: StartRemedy) -> None:
    unsigned = SnsConfig(verify_signature=False, allowed_topics=(TOPIC,))
    server = await remedy(RULE, auth=AUTH, sns=unsigned)
    cases = list(sns_cases())
    assert len(cases) > 150
    good = await server.raw("POST", "/webhook/sns", SNS_HEADERS, dumps(sns_notification(alarm())))
    assert good.status == 200, good
    await server.settle()
    await refused_one_by_one(server, "/webhook/sns", SNS_HEADERS, cases)


async def test_raw_deliveries_refuse_the_alarm_corpus(remedy: StartRemedy) -> None:
    server = await remedy(RULE, auth=AUTH, sns=SnsConfig(allowed_topics=(TOPIC,)))
    good = await server.raw("POST", "/webhook/sns", RAW_HEADERS, dumps(alarm()))
    assert good.status == 200, good
    await server.settle()
    await refused_one_by_one(server, "/webhook/sns", RAW_HEADERS, list(alarm_cases()))


async def test_signed_deliveries_refuse_every_envelope_field_of_another_type(
    remedy: StartRemedy,
) -> None:
    server = await remedy(RULE, auth=AUTH, sns=SnsConfig(allowed_topics=(TOPIC,)))
    await refused_one_by_one(server, "/webhook/sns", SNS_HEADERS, list(signed_cases()))

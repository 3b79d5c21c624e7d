"""Both parsers take any JSON value in any field: a parsed message, or their own error.

Never another exception: a stray ``OverflowError`` or ``UnicodeEncodeError``
is a 500 that the sender retries forever. And what they do accept is safe to
store, count and log: text that encodes, times that are aware, counts that fit.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.ingest import PayloadError, jsontext
from receiver.ingest.alertmanager import WebhookMessage, parse_webhook
from receiver.ingest.cloudwatch import parse_alarm
from rules.alert import Alert, fingerprint_of
from tests.conftest import am_alert, am_payload
from tests.support.cloudwatch import alarm, metric_math_alarm
from tests.support.documents import MISSING, at, paths, replaced

FAST = settings(max_examples=150, deadline=None)

LONE_SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc80", "\udcff", "\udfff"])
TEXT = st.lists(st.characters() | LONE_SURROGATES, max_size=12).map("".join)
TIMES = st.sampled_from(
    [
        "2026-11-24T05:00:00Z",
        "2026-11-24T05:00:00.000+0000",
        "2026-11-24T05:00:00",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "9999-12-31T23:59:59.999999Z",
        "2026-02-30T00:00:00Z",
        "2026-11-24T05:00:00\ud800",
    ]
)
NUMBERS = (
    st.integers()
    | st.sampled_from([-1, 0, 2**64 - 1, 2**64, 10**309])
    | st.floats(allow_nan=True, allow_infinity=True)
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT | TIMES
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def field_values(original: Any) -> st.SearchStrategy[Any]:
    """What may stand in a field: any JSON value, nothing, or the value it had spoiled.

    Spoiled is the likeliest to get past the first checks: the same text with a
    lone surrogate, a time out of range, a count past any counter.
    """
    spoiled = (
        LONE_SURROGATES.map(lambda bad: original + bad)
        if isinstance(original, str)
        else st.sampled_from([2**64, 10**309, float("inf"), float("nan")])
    )
    return st.one_of(JSON_VALUES, st.just(MISSING), spoiled, TIMES)


def assert_storable(alert: Alert) -> None:
    """What the store, the audit log, the metrics and the logs need of an accepted alert."""
    for text in (alert.name, alert.fingerprint, alert.generator_url, alert.status, alert.source):
        text.encode()
    for mapping in (alert.labels, alert.annotations):
        for key, item in mapping.items():
            key.encode()
            item.encode()
    fingerprint_of(alert.labels)
    assert alert.starts_at.utcoffset() == timedelta(0)
    assert alert.ends_at is None or alert.ends_at.utcoffset() == timedelta(0)
    json.dumps(alert.summary(), ensure_ascii=False).encode()


def check_webhook(payload: Any) -> None:
    try:
        message = parse_webhook(payload)
    except PayloadError as exc:
        json.dumps({"error": exc.message, "field": exc.field})  # the answer can be written
        return
    assert isinstance(message, WebhookMessage)
    assert 0 <= message.truncated_alerts < 2**64
    float(message.truncated_alerts)  # the counter takes it
    for text in (message.receiver, message.group_key, message.external_url, message.status):
        text.encode()
    for alert in message.alerts:
        assert_storable(alert)


def check_alarm(message: Any, insufficient_data: Any) -> None:
    try:
        alert = parse_alarm(message, insufficient_data)
    except PayloadError as exc:
        json.dumps({"error": exc.message, "field": exc.field})
        return
    if alert is not None:
        assert_storable(alert)


WEBHOOK = am_payload(
    am_alert(labels={"job": "web"}, annotations={"summary": "down"}, fingerprint="abc"),
    am_alert("Other", status="resolved"),
    truncated=2,
)
ALARMS = [alarm(), alarm(state="OK"), metric_math_alarm()]


@FAST
@given(JSON_VALUES)
def test_the_webhook_parser_takes_any_json_document(payload: Any) -> None:
    check_webhook(payload)


@FAST
@given(st.data())
def test_the_webhook_parser_takes_any_value_in_any_field(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(list(paths(WEBHOOK))))
    value = data.draw(field_values(at(WEBHOOK, path)))
    check_webhook(replaced(WEBHOOK, path, value))


@FAST
@given(JSON_VALUES, st.sampled_from(["ignore", "firing", "resolved"]))
def test_the_alarm_parser_takes_any_json_document(message: Any, insufficient: str) -> None:
    check_alarm(message, insufficient)


@FAST
@given(st.data(), st.sampled_from(["ignore", "firing", "resolved"]))
def test_the_alarm_parser_takes_any_value_in_any_field(
    data: st.DataObject, insufficient: str
) -> None:
    template = data.draw(st.sampled_from(ALARMS))
    path = data.draw(st.sampled_from(list(paths(template))))
    value = data.draw(field_values(at(template, path)))
    check_alarm(replaced(template, path, value), insufficient)


@FAST
@given(st.binary(max_size=64) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_the_json_decoder_answers_any_bytes_with_a_value_or_its_error(data: bytes) -> None:
    try:
        value = jsontext.decode(data)
    except PayloadError as exc:
        json.dumps({"error": exc.message})
        return
    # what it accepts is plain JSON: it writes back the same, without NaN or Infinity
    assert json.loads(json.dumps(value, allow_nan=False)) == value

"""The stored form of an event never changes: stores written before still verify."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.audit import (
    EVENTS,
    GENESIS_HASH,
    Alerts,
    AuditRecord,
    canonical_json,
    chain_hash,
    event_body,
    event_data,
)
from receiver.store.writer import AuditChain

TEXT = st.text(max_size=12)
KEYS = st.sampled_from(["job", "instance", "token", "api_key", "url", "Authorization", "n"])
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
SECRETISH = st.sampled_from(["https://user:pw@example.com/x?token=1&a=2", "http://h/?password=x"])
JSON = st.recursive(
    SCALARS | SECRETISH,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS | TEXT, inner, max_size=4),
    max_leaves=10,
)
ALERTS = st.none() | st.fixed_dictionaries(
    {"fingerprint": TEXT | SECRETISH, "labels": st.dictionaries(KEYS, TEXT | SECRETISH)}
)
RECORDS = st.builds(
    AuditRecord,
    event=st.sampled_from(EVENTS),
    alert=ALERTS,
    rule=st.none() | TEXT,
    action=st.none() | TEXT,
    target=st.none() | TEXT,
    params=JSON,
    reason=st.none() | TEXT,
    error=st.none() | TEXT,
    duration_ms=st.none() | st.integers(min_value=0),
    actor=TEXT,
    remediation=st.none() | st.integers(min_value=1),
    result=JSON,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(RECORDS, min_size=1, max_size=4), st.integers(min_value=1, max_value=2**53))
def test_events_are_written_exactly_as_their_canonical_json(
    records: list[AuditRecord], first_id: int
) -> None:
    """Built field by field for speed, an event's text is still its body's canonical JSON."""
    alerts = Alerts()
    for offset, record in enumerate(records):
        body = event_body(first_id + offset, "2026-12-01T00:00:00.000Z", record)
        data, fingerprint = event_data(first_id + offset, body["ts"], record, alerts)
        assert data == canonical_json(body)
        alert: Any = body["alert"]
        assert fingerprint == (alert["fingerprint"] if alert else None)


def test_one_alert_shared_by_several_events_is_written_in_each() -> None:
    alert = {"fingerprint": "f", "labels": {"job": "web", "token": "hunter2"}}
    chain = AuditChain()
    _, rows = chain.link(
        "2026-12-01T00:00:00.000Z",
        [AuditRecord("received", alert), AuditRecord("matched", alert, rule="r")],
    )
    assert [row[6] for row in rows] == ["f", "f"]
    assert all('"labels":{"job":"web","token":"<redacted>"}' in row[7] for row in rows)


def test_the_first_event_of_a_store_hashes_as_it_always_has() -> None:
    """Pinned: a change here would fail every store written before it."""
    _, rows = AuditChain().link(
        "2026-08-01T12:00:00.000Z", [AuditRecord("paused", reason="maintenance", actor="oncall")]
    )
    data, prev_hash, digest = rows[0][7:]
    assert data == (
        '{"action":null,"actor":"oncall","alert":null,"duration_ms":null,"error":null,'
        '"event":"paused","id":1,"params":null,"reason":"maintenance","remediation":null,'
        '"result":null,"rule":null,"target":null,"ts":"2026-08-01T12:00:00.000Z"}'
    )
    assert (prev_hash, digest) == (GENESIS_HASH, chain_hash(GENESIS_HASH, data))

"""The store's ingest on its own, on every backend: what one write stores for an alert."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from receiver.config import Config
from receiver.store.base import AuditQuery, IncomingAlert, Plan, Store
from receiver.store.url import store_for
from rules.alert import Alert
from tests.conftest import ALL_BACKENDS

BACKENDS = ALL_BACKENDS

STEP = {"action": "http.request", "params": {"url": "http://127.0.0.1:1/"}}


def broken(status: str) -> Alert:
    return Alert(
        source="alertmanager",
        name="Broken",
        status=status,  # type: ignore[arg-type]  # the tests pass firing or resolved
        labels={"alertname": "Broken"},
        annotations={},
        starts_at=datetime(2026, 11, 24, 5, 0, tzinfo=UTC),
        ends_at=None,
        fingerprint="f1",
    )


@pytest.fixture
async def store(storage: str) -> AsyncIterator[Store]:
    opened = store_for(Config(storage=storage))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_rule_that_has_its_remediation_already_stores_none_and_the_rest_in_order(
    store: Store,
) -> None:
    """The firing alert's rule ``fix`` made a remediation for the occurrence; its resolve,
    planned for ``fix`` again (one per occurrence and rule) and for two more rules, stores
    only the two, in the plans' order, with their matched events."""
    first = await store.ingest([IncomingAlert(broken("firing"), [Plan("fix", "svc:a", [STEP])])])
    assert (first.stored, len(first.queued)) == (1, 1)
    plans = [Plan(rule, "svc:a", [STEP]) for rule in ("notify", "fix", "audit-note")]
    second = await store.ingest([IncomingAlert(broken("resolved"), plans)])
    assert (second.stored, second.duplicates) == (1, 0)
    assert [rem.rule for rem in second.queued] == ["notify", "audit-note"]
    assert second.queued[0].id < second.queued[1].id
    stored = sorted((rem.id, rem.rule) for rem in await store.remediations())
    assert [rule for _, rule in stored] == ["fix", "notify", "audit-note"]
    matched = await store.audit(AuditQuery(outcome="matched"))
    assert sorted(e.record.rule or "" for e in matched) == ["audit-note", "fix", "notify"]


async def test_a_duplicate_delivery_stores_nothing_of_its_plans(store: Store) -> None:
    incoming = IncomingAlert(broken("firing"), [Plan("fix", "svc:a", [STEP])])
    await store.ingest([incoming])
    again = await store.ingest([incoming, incoming])
    assert (again.stored, again.duplicates, list(again.queued)) == (0, 2, [])
    assert len(await store.remediations()) == 1
    assert len(await store.audit(AuditQuery(outcome="duplicate"))) == 2

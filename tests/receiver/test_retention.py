"""Audit retention: old events go, the chain that remains still verifies, tampering still shows."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from receiver.audit import AuditRecord
from receiver.clock import SimulatedClock
from receiver.config import Config
from receiver.store.base import AuditQuery
from receiver.store.url import store_for
from tests.conftest import ALL_BACKENDS, StartRemedy, am_alert, am_payload
from tests.support.database import Database
from tests.support.recorder import Recorder

BACKENDS = ALL_BACKENDS
START = datetime(2026, 8, 1, 12, 0, tzinfo=UTC)


async def write(store: Any, clock: SimulatedClock, when: datetime, *reasons: str) -> None:
    clock.set(when)
    await store.record([AuditRecord("paused", reason=reason, actor="oncall") for reason in reasons])


@contextlib.asynccontextmanager
async def opened(storage: str, clock: SimulatedClock) -> AsyncIterator[Any]:
    """The store at ``storage``, open for the block (as one ``remedy serve`` run)."""
    store = store_for(Config(storage=storage), clock=clock)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def kept(store: Any) -> list[tuple[int, str | None]]:
    events = await store.audit(AuditQuery(limit=1000))
    return [(e.id, e.record.reason) for e in reversed(events)]


async def test_old_events_go_and_what_remains_verifies(storage: str) -> None:
    clock = SimulatedClock(START)
    async with opened(storage, clock) as store:
        await write(store, clock, START, "a", "b", "c")
        await write(store, clock, START + timedelta(days=40), "d", "e")
        assert await store.prune(START + timedelta(days=30)) == 3
        assert await kept(store) == [(4, "d"), (5, "e")]
        result = await store.verify()
        assert (result.ok, result.events) == (True, 2)
        # every answer says where the checked chain starts, and why
        assert result.to_dict()["pruned"] == {
            "through": 3,
            "events": 3,
            "at": "2026-09-10T12:00:00.000Z",
        }
        assert await store.prune(START + timedelta(days=30)) == 0  # nothing older left
        await write(store, clock, START + timedelta(days=41), "f")
    async with opened(storage, clock) as store:
        await write(store, clock, START + timedelta(days=42), "g")
        assert [event_id for event_id, _ in await kept(store)] == [4, 5, 6, 7]
        assert (await store.verify()).ok


async def test_an_event_stamped_too_early_does_not_take_newer_ones_with_it(
    storage: str,
) -> None:
    """A clock stepped back once must not make pruning eat events inside the retention."""
    clock = SimulatedClock(START)
    async with opened(storage, clock) as store:
        await write(store, clock, START, "old")
        await write(store, clock, START + timedelta(days=10), "recent")
        late = SimulatedClock(START)  # a second writer's clock, days behind
        store.clock = late
        await write(store, late, START + timedelta(days=1), "stamped early")
        store.clock = clock
        assert await store.prune(START + timedelta(days=5)) == 1
        assert [reason for _, reason in await kept(store)] == ["recent", "stamped early"]
        assert (await store.verify()).ok


async def test_a_cut_tail_stays_missing_across_a_restart(storage: str, database: Database) -> None:
    clock = SimulatedClock(START)
    async with opened(storage, clock) as store:
        await write(store, clock, START, "a", "b", "c")
    await database.execute("DELETE FROM audit WHERE id >= 2")  # hide the last two
    async with opened(storage, clock) as store:
        await write(store, clock, START + timedelta(hours=1), "d")
        assert [event_id for event_id, _ in await kept(store)] == [1, 4]  # 2 and 3 not reused
        result = await store.verify()
        assert (result.ok, result.first_bad_id) == (False, 2)


async def test_a_store_pruned_empty_goes_on_from_the_checkpoint(
    storage: str, database: Database
) -> None:
    clock = SimulatedClock(START)
    async with opened(storage, clock) as store:
        await write(store, clock, START, "a", "b")
        assert await store.prune(START + timedelta(days=1)) == 2
        result = await store.verify()
        assert (result.ok, result.events) == (True, 0)
    async with opened(storage, clock) as store:
        await write(store, clock, START + timedelta(days=2), "c")
        assert await kept(store) == [(3, "c")]  # never id 1 again
        assert (await store.verify()).ok


async def test_tampering_after_pruning_is_still_found(storage: str, database: Database) -> None:
    clock = SimulatedClock(START)
    async with opened(storage, clock) as store:
        await write(store, clock, START, "a", "b")
        await write(store, clock, START + timedelta(days=9), "c", "d", "e")
        await store.prune(START + timedelta(days=5))
        await database.execute("DELETE FROM audit WHERE id = 3")  # cut the new start of the chain
        result = await store.verify()
        assert (result.ok, result.first_bad_id) == (False, 3)
        assert "missing" in (result.reason or "")


async def test_hiding_the_checkpoint_is_found(storage: str, database: Database) -> None:
    clock = SimulatedClock(START)
    async with opened(storage, clock) as store:
        await write(store, clock, START, "a")
        await write(store, clock, START + timedelta(days=9), "b")
        await store.prune(START + timedelta(days=5))
        await database.execute("UPDATE audit_checkpoint SET last_hash = ?", "f" * 64)
        result = await store.verify()
        assert (result.ok, result.first_bad_id) == (False, 2)
        await database.execute("DELETE FROM audit_checkpoint")  # as if nothing had been pruned
        assert (await store.verify()).first_bad_id == 1


async def test_the_service_prunes_what_is_past_its_retention(
    remedy: StartRemedy, storage: str
) -> None:
    clock = SimulatedClock(datetime.now(UTC) - timedelta(days=100))
    async with opened(storage, clock) as old:
        await write(old, clock, clock.now(), "long ago")

    server = await remedy(retention=90 * 86400.0)
    await server.service.running_scheduler.prune()  # it also runs at start and hourly
    events = await server.events()
    assert [e["reason"] for e in events] == []
    _, verified = await server.get_json("/api/v1/audit/verify")
    assert verified["ok"] is True
    metrics = await (await server.client.get("/metrics")).text()
    assert "remedy_audit_pruned_events_total 1.0" in metrics


async def test_audit_verify_says_what_retention_pruned(storage: str, tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    async with opened(storage, clock) as store:
        await write(store, clock, START, "a", "b")
        await write(store, clock, START + timedelta(days=3), "c")
        await store.prune(START + timedelta(days=2))
    config = tmp_path / "remedy.yaml"
    config.write_text(f"storage: {storage}\n")
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "receiver", "audit", "verify", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "OK 1 events",
        "2 older events were pruned by retention (through #2, last at"
        " 2026-08-04T12:00:00.000Z): the chain is checked from there",
    ]


HISTORY_RULE = """
rules:
  - name: fix
    match: {{alertname: Broken}}
    target: 'svc:{{{{ labels.svc }}}}'
    guards: {{rate_limit: {{count: 5, per: 60d}}}}
    actions:
      - action: http.request
        params: {{url: '{url}'}}
"""


async def table_counts(database: Database) -> dict[str, int]:
    return {
        table: await database.count(table) for table in ("alerts", "remediations", "executions")
    }


async def test_ended_occurrences_go_and_what_the_guards_count_stays(
    remedy: StartRemedy, recorder: Recorder, database: Database
) -> None:
    clock = SimulatedClock(START)
    server = await remedy(
        HISTORY_RULE.format(url=recorder.url()), clock=clock, dry_run=False, retention=30 * 86400.0
    )
    ended = am_alert("Broken", labels={"svc": "a"}, starts_at="2026-08-01T11:00:00Z")
    still_firing = am_alert("Broken", labels={"svc": "b"}, starts_at="2026-08-01T11:00:00Z")
    for alert in (ended, {**ended, "status": "resolved"}, still_firing):
        await server.post_alerts(am_payload(alert))
        await server.settle()
    assert (await table_counts(database)) == {"alerts": 3, "remediations": 2, "executions": 2}

    clock.set(START + timedelta(days=45))
    await server.service.running_scheduler.prune()
    # a's occurrence ended: gone; b still fires: kept, and so its redelivery stays a duplicate;
    # both executions stay, since the rate limit looks back 60 days
    assert (await table_counts(database)) == {"alerts": 1, "remediations": 1, "executions": 2}
    _, body = await server.post_alerts(am_payload(still_firing))
    assert body["duplicates"] == 1
    assert len(recorder.received) == 2
    # the rule shortened (or removed) for a while: the 60-day window is remembered
    await server.service.store.prune_history(clock.now() - timedelta(days=30), 0.0)
    assert (await table_counts(database))["executions"] == 2

    clock.set(START + timedelta(days=70))
    await server.service.running_scheduler.prune()
    assert (await table_counts(database))["executions"] == 0


async def test_no_remediation_id_is_ever_given_out_twice(
    remedy: StartRemedy, recorder: Recorder, database: Database
) -> None:
    """An old approve link must never approve a newer remediation that got its id."""
    clock = SimulatedClock(START)
    server = await remedy(
        HISTORY_RULE.format(url=recorder.url()), clock=clock, dry_run=False, retention=30 * 86400.0
    )
    only = am_alert("Broken", labels={"svc": "a"}, starts_at="2026-08-01T11:00:00Z")
    for alert in (only, {**only, "status": "resolved"}):
        await server.post_alerts(am_payload(alert))
        await server.settle()
    clock.set(START + timedelta(days=45))
    await server.service.running_scheduler.prune()
    later = am_alert("Broken", labels={"svc": "c"}, starts_at="2026-09-15T11:00:00Z")
    await server.post_alerts(am_payload(later))
    await server.settle()
    _, body = await server.get_json("/api/v1/remediations")
    assert [r["id"] for r in body["remediations"]][-1] == 2

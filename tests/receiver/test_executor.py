"""What the executor records: on_failure, crash recovery, and shutdown of a running action."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from receiver.store.base import StoreUnavailable
from receiver.store.sqlite import SQLiteStore
from tests.conftest import ALL_BACKENDS, StartRemedy, am_alert, am_payload
from tests.support.recorder import Recorder

BACKENDS = ALL_BACKENDS

RULE = """
rules:
  - name: warm
    match: {{alertname: LowCacheHitRate}}
    target: 'cache:{{{{ labels.instance }}}}'
    actions:
      - action: http.request
        params: {{url: '{main}'}}
    on_failure:
      - action: http.request
        params: {{url: '{page}', json: {{text: 'warming {{{{ labels.instance }}}} failed'}}}}
"""


def rule(recorder: Recorder) -> str:
    return RULE.format(main=recorder.url("/warm"), page=recorder.url("/page"))


async def remediation_states(server: object) -> list[str]:
    _, body = await server.get_json("/api/v1/remediations")  # type: ignore[attr-defined]
    return [r["state"] for r in body["remediations"]]


async def test_success_skips_on_failure_and_ends_succeeded(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rule(recorder), dry_run=False)
    await server.post_alerts(am_payload(am_alert("LowCacheHitRate", labels={"instance": "a"})))
    await server.settle()
    assert [r.path for r in recorder.received] == ["/warm"]
    assert await remediation_states(server) == ["succeeded"]


async def test_failure_runs_on_failure_and_ends_failed(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    recorder.status = 500
    server = await remedy(rule(recorder), dry_run=False)
    await server.post_alerts(am_payload(am_alert("LowCacheHitRate", labels={"instance": "a"})))
    await server.settle()
    assert [r.path for r in recorder.received] == ["/warm", "/page"]
    assert recorder.received[1].json() == {"text": "warming a failed"}
    events = await server.events()
    assert [(e["event"], e["reason"]) for e in events[2:]] == [
        ("started", None),
        ("failed", None),
        ("started", "on_failure"),
        ("failed", "on_failure"),
    ]
    assert await remediation_states(server) == ["failed"]


@pytest.mark.sqlite_only  # simulates the crash with a copy of the SQLite file
async def test_work_that_was_running_at_a_crash_is_interrupted_not_rerun(
    remedy: StartRemedy, recorder: Recorder, db_path: Path
) -> None:
    recorder.gate = asyncio.Event()
    server = await remedy(rule(recorder), dry_run=False)
    await server.post_alerts(am_payload(am_alert("LowCacheHitRate", labels={"instance": "a"})))
    for _ in range(200):
        if recorder.received:
            break
        await asyncio.sleep(0.01)
    assert await remediation_states(server) == ["running"]
    # Simulate the crash: copy the store as it is while the action runs.
    crashed = db_path.parent / "crashed.db"
    with sqlite3.connect(db_path) as source, sqlite3.connect(crashed) as copy:
        source.backup(copy)
    recorder.gate.set()
    restarted = await remedy(rule(recorder), dry_run=False, storage=f"sqlite:///{crashed}")
    await restarted.settle()
    assert await remediation_states(restarted) == ["interrupted"]
    # not run a second time, and reported through on_failure
    assert sorted(r.path for r in recorder.received) == ["/page", "/warm"]
    interrupted = await restarted.events(outcome="interrupted")
    assert interrupted[0]["rule"] == "warm"
    page = await restarted.events(outcome="on_failure")
    assert [e["event"] for e in page] == ["started", "succeeded"]


async def test_shutdown_does_not_wait_for_an_open_audit_tail(remedy: StartRemedy) -> None:
    server = await remedy()
    response = await server.client.get("/api/v1/audit/stream")
    assert response.status == 200
    async with asyncio.timeout(10):  # a hang guard: without the shutdown hook this blocks
        await server.client.close()


@pytest.mark.sqlite_only  # simulates the crash with a copy of the SQLite file
async def test_on_failure_cut_short_by_a_crash_is_reported_not_rerun(
    remedy: StartRemedy, recorder: Recorder, db_path: Path
) -> None:
    recorder.statuses = [500]  # the fix fails, so on_failure pages...
    recorder.gate, recorder.gate_path = asyncio.Event(), "/page"  # ...and the page hangs
    server = await remedy(rule(recorder), dry_run=False)
    await server.post_alerts(am_payload(am_alert("LowCacheHitRate", labels={"instance": "a"})))
    crashed = db_path.parent / "crashed.db"
    for _ in range(200):
        with sqlite3.connect(db_path) as conn:
            followup = conn.execute("SELECT followup FROM remediations").fetchone()[0]
        if followup == 2:
            break
        await asyncio.sleep(0.01)
    with sqlite3.connect(db_path) as source, sqlite3.connect(crashed) as copy:
        source.backup(copy)
    recorder.gate.set()
    restarted = await remedy(rule(recorder), dry_run=False, storage=f"sqlite:///{crashed}")
    await restarted.settle()
    assert sorted(r.path for r in recorder.received) == ["/page", "/warm"]  # /page once
    interrupted = await restarted.events(outcome="interrupted")
    assert [(e["event"], e["reason"]) for e in interrupted] == [("interrupted", "on_failure")]


@pytest.mark.sqlite_only  # the SQLite file lease (PostgreSQL replicas come with leases)
async def test_a_second_process_cannot_take_a_store_in_use(
    remedy: StartRemedy, db_path: Path
) -> None:
    await remedy()
    with pytest.raises(StoreUnavailable, match="another remedy process is using"):
        await SQLiteStore(db_path).open()
    reader = SQLiteStore(db_path, readonly=True)  # readers (remedy audit) still can
    await reader.open()
    assert (await reader.verify()).ok
    await reader.close()


async def test_ready_work_is_decided_or_started_when_the_webhook_answers(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    # Claimed by the ingest transaction itself: no second write, no wait for a worker.
    recorder.gate = asyncio.Event()  # the action runs, and stays running, until opened
    server = await remedy(rule(recorder), dry_run=False)
    status, body = await server.post_alerts(
        am_payload(am_alert("LowCacheHitRate", labels={"instance": "a"}))
    )
    assert (status, body["remediations"]) == (200, 1)
    assert await remediation_states(server) == ["running"]  # before any settling
    assert [e["event"] for e in await server.events()][-1] == "started"
    recorder.gate.set()
    await server.settle()
    assert await remediation_states(server) == ["succeeded"]


async def test_dry_run_work_is_decided_when_the_webhook_answers(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rule(recorder), dry_run=True)
    await server.post_alerts(am_payload(am_alert("LowCacheHitRate", labels={"instance": "b"})))
    assert await remediation_states(server) == ["dry_run"]  # before any settling
    assert recorder.received == []


async def test_work_waiting_for_a_slot_runs_in_arrival_order(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    recorder.gate = asyncio.Event()  # the first action holds the only slot until opened
    warm = recorder.url("/warm")
    ordered = rule(recorder).replace(
        f"params: {{url: '{warm}'}}",
        f"params: {{url: '{warm}', json: {{instance: '{{{{ labels.instance }}}}'}}}}",
    )
    server = await remedy(ordered, dry_run=False, max_concurrent=1)
    for name in ("a", "b", "c", "d"):
        alert = am_alert("LowCacheHitRate", labels={"instance": name})
        assert (await server.post_alerts(am_payload(alert)))[0] == 200
        await asyncio.sleep(0.05)  # arrival order: each waits behind the ones before it
    assert await remediation_states(server) == ["running", "queued", "queued", "queued"]
    recorder.gate.set()
    last = am_alert("LowCacheHitRate", labels={"instance": "e"})  # new: it waits its turn too
    assert (await server.post_alerts(am_payload(last)))[0] == 200
    await server.settle()
    assert [r.json()["instance"] for r in recorder.received] == ["a", "b", "c", "d", "e"]


async def test_a_resolve_later_in_the_same_webhook_cancels_before_anything_runs(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rule(recorder), dry_run=False)
    firing = am_alert("LowCacheHitRate", labels={"instance": "a"})
    resolved = am_alert("LowCacheHitRate", "resolved", labels={"instance": "a"})
    assert (await server.post_alerts(am_payload(firing, resolved)))[0] == 200
    await server.settle()
    assert recorder.received == []
    assert await remediation_states(server) == ["skipped"]

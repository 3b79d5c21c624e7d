"""Each guard rail through the whole service: its decision, its audit reason, its metric."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from receiver.store.sqlite import SQLiteStore
from tests.conftest import ALL_BACKENDS, RemedyClient, StartRemedy, am_alert, am_payload
from tests.support.polling import wait_for
from tests.support.recorder import Recorder

BACKENDS = ALL_BACKENDS


def rule(url: str, guards: str = "", extra: str = "", name: str = "fix") -> str:
    """A live rule on ``target: svc:{{ labels.svc }}`` calling ``url``."""
    return f"""
rules:
  - name: {name}
    match: {{alertname: Broken}}
    target: 'svc:{{{{ labels.svc }}}}'
    guards: {{{guards}}}
    actions:
      - action: http.request
        params: {{url: '{url}', json: {{svc: '{{{{ labels.svc }}}}'}}}}
{extra}"""


def broken(svc: str, n: int = 0, status: str = "firing", **labels: str) -> dict[str, Any]:
    """Occurrence ``n`` of the alert on service ``svc`` (each n starts at its own time)."""
    return am_alert(
        "Broken", status, labels={"svc": svc, **labels}, starts_at=f"2026-11-24T05:{n:02d}:00Z"
    )


async def fire(server: RemedyClient, *alerts: dict[str, Any]) -> None:
    for alert in alerts:
        status, body = await server.post_alerts(am_payload(alert))
        assert status == 200, body
        await server.settle()


async def decisions(server: RemedyClient) -> list[tuple[str, str | None]]:
    _, body = await server.get_json("/api/v1/remediations")
    return [(r["state"], r["reason"]) for r in body["remediations"]]


async def metric(server: RemedyClient, name: str, **labels: str) -> float:
    text = await (await server.client.get("/metrics")).text()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{wanted}}}" if labels else name
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_rate_limit_per_rule_and_target(remedy: StartRemedy, recorder: Recorder) -> None:
    server = await remedy(rule(recorder.url(), "rate_limit: {count: 2, per: 1h}"), dry_run=False)
    await fire(server, broken("a", 1), broken("a", 2), broken("a", 3), broken("b", 4))
    assert await decisions(server) == [
        ("succeeded", None),
        ("succeeded", None),
        ("skipped", "rate_limited"),
        ("succeeded", None),
    ]
    assert [r.json()["svc"] for r in recorder.received] == ["a", "a", "b"]
    skipped = await server.events(outcome="rate_limited")
    assert "2 executions on svc:a" in skipped[0]["error"]
    assert (
        await metric(server, "remedy_guard_decisions_total", rule="fix", decision="rate_limited")
        == 1
    )
    assert (
        await metric(server, "remedy_remediations_skipped_total", rule="fix", reason="rate_limited")
        == 1
    )


async def test_cooldown_after_an_execution(remedy: StartRemedy, recorder: Recorder) -> None:
    server = await remedy(rule(recorder.url(), "cooldown: 10m"), dry_run=False)
    await fire(server, broken("a", 1), broken("a", 2))
    assert await decisions(server) == [("succeeded", None), ("skipped", "cooldown")]
    assert len(recorder.received) == 1


async def test_one_remediation_at_a_time_per_target(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    recorder.gate = asyncio.Event()
    server = await remedy(rule(recorder.url()), dry_run=False)
    await server.post_alerts(am_payload(broken("a", 1)))
    await wait_for(lambda: _received(recorder, 1))
    await server.post_alerts(am_payload(broken("a", 2)))
    await wait_for(lambda: _state_of(server, 2, "skipped"))
    recorder.gate.set()
    await server.settle()
    assert await decisions(server) == [("succeeded", None), ("skipped", "locked")]
    locked = await server.events(outcome="locked")
    assert "remediation 1 holds svc:a" in locked[0]["error"]


async def test_lock_wait_runs_after_the_holder_finishes(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    recorder.gate = asyncio.Event()
    server = await remedy(rule(recorder.url(), "lock_wait: 20s"), dry_run=False, max_concurrent=2)
    await server.post_alerts(am_payload(broken("a", 1)))
    await wait_for(lambda: _received(recorder, 1))
    await server.post_alerts(am_payload(broken("a", 2)))
    await server.post_alerts(am_payload(broken("b", 3)))
    # the waiting one does not hold a worker: another target goes ahead meanwhile
    await wait_for(lambda: _received(recorder, 2))
    assert [r.json()["svc"] for r in recorder.received] == ["a", "b"]
    assert (await decisions(server))[1] == ("queued", None)
    recorder.gate.set()
    await server.settle()
    assert await decisions(server) == [("succeeded", None)] * 3
    assert len(recorder.received) == 3


async def test_global_breaker_opens_and_stays_open_until_resume(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rule(recorder.url()), dry_run=False, max_actions=(2, 600.0))
    await fire(server, broken("a", 1), broken("b", 2), broken("c", 3), broken("d", 4))
    assert await decisions(server) == [
        ("succeeded", None),
        ("succeeded", None),
        ("skipped", "breaker_open"),
        ("skipped", "breaker_open"),
    ]
    _, status = await server.get_json("/api/v1/status")
    assert list(status["breakers"]) == ["global"]
    response = await server.client.post("/api/v1/resume")
    assert response.status == 200
    resumed = await server.events(outcome="resumed")
    assert resumed[0]["reason"] == "closed breakers: global"
    # the window counts again from the resume: two more run, the third trips it again
    await fire(server, broken("e", 5), broken("f", 6), broken("g", 7))
    assert (await decisions(server))[-3:] == [
        ("succeeded", None),
        ("succeeded", None),
        ("skipped", "breaker_open"),
    ]


async def test_blast_radius_opens_the_scope_breaker_only(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    guards = "blast_radius: {scope: '{{ labels.ns }}', max_targets: 2, per: 10m}"
    server = await remedy(rule(recorder.url(), guards), dry_run=False)
    await fire(
        server,
        broken("a", 1, ns="prod"),
        broken("b", 2, ns="prod"),
        broken("a", 3, ns="prod"),
        broken("c", 4, ns="prod"),
        broken("d", 5, ns="dev"),
        broken("a", 6, ns="prod"),
    )
    assert await decisions(server) == [
        ("succeeded", None),
        ("succeeded", None),
        ("succeeded", None),
        ("skipped", "breaker_open"),
        ("succeeded", None),
        ("skipped", "breaker_open"),
    ]
    _, status = await server.get_json("/api/v1/status")
    assert list(status["breakers"]) == ["scope:prod"]
    assert status["breakers"]["scope:prod"].startswith("2 targets in scope prod")


async def test_allow_list_denies_and_never_reaches_the_target(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    allow = {"http": (re.escape(recorder.url("/allowed")),)}
    server = await remedy(rule(recorder.url("/elsewhere")), dry_run=False, allow=allow)
    await fire(server, broken("a", 1))
    assert await decisions(server) == [("skipped", "denied")]
    assert recorder.received == []
    denied = await server.events(outcome="denied")
    assert "outside backends.http.allow" in denied[0]["error"]


async def test_pause_shows_in_status_and_metrics(remedy: StartRemedy, recorder: Recorder) -> None:
    server = await remedy(rule(recorder.url()), dry_run=False)
    assert (await server.client.post("/api/v1/pause", params={"reason": "deploy"})).status == 200
    assert (await server.get_json("/api/v1/status"))[1]["paused"] is True
    assert await metric(server, "remedy_paused") == 1
    await server.client.post("/api/v1/resume")
    await fire(server, broken("a", 2))
    assert await decisions(server) == [("succeeded", None)]
    assert await metric(server, "remedy_paused") == 0
    events = [(e["event"], e["reason"]) for e in await server.events()]
    assert ("paused", "deploy") in events


async def test_nothing_starts_after_a_pause_in_a_burst(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rule(recorder.url()), dry_run=False)
    burst = [am_payload(broken(f"s{i}", i % 60)) for i in range(60)]
    posts = [asyncio.create_task(server.post_alerts(p)) for p in burst[:30]]
    await asyncio.sleep(0.02)
    paused = await server.client.post("/api/v1/pause")
    assert paused.status == 200
    received_at_pause = len(recorder.received)
    posts += [asyncio.create_task(server.post_alerts(p)) for p in burst[30:]]
    await asyncio.gather(*posts)
    await server.settle()
    events = await server.events()
    pause_id = next(e["id"] for e in events if e["event"] == "paused")
    assert not [e for e in events if e["event"] == "started" and e["id"] > pause_id]
    started = [e for e in events if e["event"] == "started"]
    assert len(recorder.received) == len(started) >= received_at_pause
    assert any(e["reason"] == "held: remedy is paused" for e in events)
    await server.client.post("/api/v1/resume")
    await server.settle()
    assert sorted(r.json()["svc"] for r in recorder.received) == sorted(f"s{i}" for i in range(60))


async def test_rule_dry_run_overrides_a_live_config(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    guards = "dry_run: true, rate_limit: {count: 1, per: 1h}"
    server = await remedy(rule(recorder.url(), guards), dry_run=False)
    await fire(server, broken("a", 1), broken("a", 2))
    # the guards still decide in dry-run, against dry-run history only
    assert await decisions(server) == [("dry_run", None), ("skipped", "rate_limited")]
    assert recorder.received == []


async def test_for_waits_and_a_resolve_cancels(remedy: StartRemedy, recorder: Recorder) -> None:
    extra = "    for: 1h\n"
    server = await remedy(rule(recorder.url()) + extra, dry_run=False)
    firing = am_alert("Broken", labels={"svc": "a"}, starts_at=_now_iso())
    await fire(server, firing)
    assert await decisions(server) == [("waiting", None)]
    await fire(server, {**firing, "status": "resolved"})
    assert await decisions(server) == [("skipped", "cancelled")]
    assert recorder.received == []


async def test_for_runs_once_the_alert_has_lasted(remedy: StartRemedy, recorder: Recorder) -> None:
    server = await remedy(rule(recorder.url()) + "    for: 2s\n", dry_run=False)
    await fire(server, am_alert("Broken", labels={"svc": "a"}, starts_at=_now_iso()))
    assert await decisions(server) == [("waiting", None)]
    await wait_for(lambda: _state_of(server, 1, "succeeded"))
    # an alert that has already lasted longer than `for` runs at once
    await fire(server, broken("b", 1))
    assert (await decisions(server))[1] == ("succeeded", None)


async def test_approval_approve_reject_and_expire(remedy: StartRemedy, recorder: Recorder) -> None:
    guards = "require_approval: true, approval_timeout: 2s"
    server = await remedy(rule(recorder.url(), guards), dry_run=False)
    await fire(server, broken("a", 1), broken("b", 2), broken("c", 3))
    _, pending = await server.get_json("/api/v1/remediations", params={"state": "pending_approval"})
    assert [r["id"] for r in pending["remediations"]] == [1, 2, 3]
    assert (await server.client.post("/api/v1/remediations/1/approve")).status == 200
    assert (await server.client.post("/api/v1/remediations/2/reject")).status == 200
    again = await server.client.post("/api/v1/remediations/2/approve")
    assert again.status == 409
    await server.settle()
    await wait_for(lambda: _state_of(server, 3, "skipped"))
    assert await decisions(server) == [
        ("succeeded", None),
        ("skipped", "rejected"),
        ("skipped", "expired"),
    ]
    assert [r.json()["svc"] for r in recorder.received] == ["a"]
    approved = await server.events(outcome="approved")
    assert approved[0]["actor"] == "system"  # no auth configured: the actor is system


async def test_verify_verified_when_the_alert_resolves(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    extra = "    verify: {resolved_within: 10m}\n"
    server = await remedy(rule(recorder.url()) + extra, dry_run=False)
    await fire(server, broken("a", 1))
    assert await decisions(server) == [("verifying", None)]
    await fire(server, broken("a", 1, status="resolved"))
    assert await decisions(server) == [("verified", None)]
    assert await metric(server, "remedy_verifications_total", rule="fix", result="verified") == 1
    events = [e["event"] for e in await server.events(alert=_fingerprint(await server.events()))]
    assert events[-1] == "verified"


async def test_verify_ineffective_runs_on_failure(remedy: StartRemedy, recorder: Recorder) -> None:
    extra = (
        "    verify: {resolved_within: 1s}\n"
        "    on_failure:\n"
        f"      - {{action: http.request, params: {{url: '{recorder.url('/page')}'}}}}\n"
    )
    server = await remedy(rule(recorder.url("/fix")) + extra, dry_run=False)
    await fire(server, broken("a", 1))
    await wait_for(lambda: _state_of(server, 1, "ineffective"))
    await wait_for(lambda: _received(recorder, 2))
    assert [r.path for r in recorder.received] == ["/fix", "/page"]
    assert await metric(server, "remedy_verifications_total", rule="fix", result="ineffective") == 1


async def test_temporary_errors_are_retried_permanent_ones_not(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    recorder.statuses = [503, 503, 200]
    extra_retries = rule(recorder.url()).replace(
        "      - action: http.request\n", "      - action: http.request\n        retries: 3\n"
    )
    server = await remedy(extra_retries, dry_run=False, retry_initial=0.01, retry_max=0.05)
    await fire(server, broken("a", 1))
    assert len(recorder.received) == 3
    succeeded = await server.events(outcome="succeeded")
    assert succeeded[0]["result"]["attempts"] == 3
    recorder.statuses = [404, 200]
    await fire(server, broken("b", 2))
    assert len(recorder.received) == 4  # a 404 is permanent: one try
    assert (await decisions(server))[-1] == ("failed", None)


async def test_a_full_queue_answers_503_and_stores_nothing(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    recorder.gate = asyncio.Event()
    server = await remedy(rule(recorder.url()), dry_run=False, max_queue=1, max_concurrent=1)
    await server.post_alerts(am_payload(broken("a", 1)))
    await wait_for(lambda: _received(recorder, 1))
    await server.post_alerts(am_payload(broken("b", 2)))  # queued behind the busy worker
    status, body = await server.post_alerts(am_payload(broken("c", 3)))
    assert (status, body["error"]) == (503, "overloaded, retry later")
    recorder.gate.set()
    await server.settle()
    assert len(await decisions(server)) == 2


async def _received(recorder: Recorder, count: int) -> bool:
    return len(recorder.received) >= count


async def _state_of(server: RemedyClient, rem_id: int, state: str) -> bool:
    _, body = await server.get_json("/api/v1/remediations")
    return any(r["id"] == rem_id and r["state"] == state for r in body["remediations"])


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


def _fingerprint(events: list[dict[str, Any]]) -> str:
    fingerprint: str = events[0]["alert"]["fingerprint"]
    return fingerprint


ON_FAILURE = "    on_failure:\n      - {{action: http.request, params: {{url: '{page}'}}}}\n"


async def test_on_failure_outside_the_allow_list_is_denied(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    recorder.status = 500
    extra = ON_FAILURE.format(page=recorder.url("/page"))
    allow = {"http": (re.escape(recorder.url("/fix")),)}
    server = await remedy(rule(recorder.url("/fix")) + extra, dry_run=False, allow=allow)
    await fire(server, broken("a", 1))
    assert [r.path for r in recorder.received] == ["/fix"]
    denied = await server.events(outcome="denied")
    assert denied[0]["error"].startswith("on_failure not run: http.request:")


async def test_on_failure_due_during_a_pause_is_held_until_resume(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    recorder.status = 500
    recorder.gate = asyncio.Event()
    extra = ON_FAILURE.format(page=recorder.url("/page"))
    server = await remedy(rule(recorder.url("/fix")) + extra, dry_run=False)
    await server.post_alerts(am_payload(broken("a", 1)))
    await wait_for(lambda: _received(recorder, 1))
    await server.client.post("/api/v1/pause")
    recorder.gate.set()
    await server.settle()
    assert [r.path for r in recorder.received] == ["/fix"]
    held = [e for e in await server.events() if e["reason"] == "on_failure held: remedy is paused"]
    assert [e["event"] for e in held] == ["queued"]
    _, state = await server.get_json("/api/v1/status")
    assert state["held"] == 1
    await server.client.post("/api/v1/resume")  # held, not dropped: it runs after resume
    await server.settle()
    assert [r.path for r in recorder.received] == ["/fix", "/page"]


async def test_on_failure_past_max_actions_opens_the_global_breaker(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    recorder.status = 500
    extra = ON_FAILURE.format(page=recorder.url("/page"))
    server = await remedy(
        rule(recorder.url("/fix")) + extra, dry_run=False, max_actions=(1, 3600.0)
    )
    await fire(server, broken("a", 1))
    assert [r.path for r in recorder.received] == ["/fix"]
    skipped = await server.events(outcome="breaker_open")
    assert skipped[0]["error"].startswith("on_failure not run: 1 actions within 3600s")
    _, state = await server.get_json("/api/v1/status")
    assert list(state["breakers"]) == ["global"]  # the same guard as a claim: it opens


async def test_a_pause_stops_a_run_before_its_next_step(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    zero = recorder.url("/zero")
    first_step = f"      - {{action: http.request, params: {{url: '{zero}'}}}}\n"
    two_steps = rule(recorder.url("/one")).replace("    actions:\n", "    actions:\n" + first_step)
    recorder.gate = asyncio.Event()
    server = await remedy(two_steps, dry_run=False)
    await server.post_alerts(am_payload(broken("a", 1)))
    await wait_for(lambda: _received(recorder, 1))
    await server.client.post("/api/v1/pause")
    recorder.gate.set()
    await server.settle()
    assert [r.path for r in recorder.received] == ["/zero"]
    assert await decisions(server) == [("failed", None)]
    failed = await server.events(outcome="failed")
    assert "paused before step 2" in failed[0]["error"]


async def test_a_breaker_shows_in_metrics_and_resumes_alone(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    guards = "blast_radius: {scope: '{{ labels.ns }}', max_targets: 1, per: 10m}"
    server = await remedy(rule(recorder.url(), guards), dry_run=False)
    await fire(server, broken("a", 1, ns="prod"), broken("b", 2, ns="prod"))
    await wait_for(lambda: _metric_is(server, "remedy_breakers_open", 1))
    await server.client.post("/api/v1/pause")
    response = await server.client.post("/api/v1/resume", params={"breaker": "scope:prod"})
    body = await response.json()
    assert (response.status, body["paused"], body["breakers"]) == (200, True, {})
    missing = await server.client.post("/api/v1/resume", params={"breaker": "scope:dev"})
    assert missing.status == 404
    await wait_for(lambda: _metric_is(server, "remedy_breakers_open", 0))


@pytest.mark.sqlite_only  # holds SQLite's write lock from a second connection
async def test_a_finish_that_meets_a_busy_store_is_retried(
    remedy: StartRemedy, recorder: Recorder, db_path: Path
) -> None:
    recorder.gate = asyncio.Event()
    store = SQLiteStore(db_path, busy_timeout=0.05)
    server = await remedy(rule(recorder.url()), dry_run=False, store=store)
    await server.post_alerts(am_payload(broken("a", 1)))
    await wait_for(lambda: _received(recorder, 1))
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    recorder.gate.set()
    await asyncio.sleep(0.5)  # meanwhile the finish fails against the lock, and is retried
    blocker.execute("ROLLBACK")
    blocker.close()
    await server.settle()
    assert await decisions(server) == [("succeeded", None)]
    await fire(server, broken("a", 2))  # and the target's lock was released
    assert (await decisions(server))[1] == ("succeeded", None)


async def _metric_is(server: RemedyClient, name: str, value: float) -> bool:
    return await metric(server, name) == value


async def test_continue_on_error_lets_a_step_fail(remedy: StartRemedy, recorder: Recorder) -> None:
    recorder.statuses = [500]
    first = (
        f"      - {{action: http.request, params: {{url: '{recorder.url('/optional')}'}},"
        " continue_on_error: true}\n"
    )
    rules = rule(recorder.url("/main")).replace("    actions:\n", "    actions:\n" + first)
    server = await remedy(rules, dry_run=False)
    await fire(server, broken("a", 1))
    assert [r.path for r in recorder.received] == ["/optional", "/main"]
    assert await decisions(server) == [("succeeded", None)]
    events = [(e["event"], e["action"]) for e in await server.events() if e["action"]]
    assert events == [
        ("started", "http.request"),
        ("failed", "http.request"),
        ("started", "http.request"),
        ("succeeded", "http.request"),
    ]


async def test_a_waiting_timer_survives_a_restart(
    remedy: StartRemedy, recorder: Recorder, db_path: Path
) -> None:
    rules = rule(recorder.url()) + "    for: 2s\n"
    server = await remedy(rules, dry_run=False)
    await fire(server, am_alert("Broken", labels={"svc": "a"}, starts_at=_now_iso()))
    assert await decisions(server) == [("waiting", None)]
    await server.client.close()  # stop; the timer lives in the store
    restarted = await remedy(rules, dry_run=False)
    await wait_for(lambda: _state_of(restarted, 1, "succeeded"))
    assert len(recorder.received) == 1

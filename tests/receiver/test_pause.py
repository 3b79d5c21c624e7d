"""A pause holds work and loses none; a resolve stops every further step, retry and on_failure."""

from __future__ import annotations

import asyncio
import re

from yarl import URL

from tests.conftest import ALL_BACKENDS, RemedyClient, StartRemedy, am_payload
from tests.receiver.test_guards import (
    ON_FAILURE,
    _received,
    broken,
    decisions,
    fire,
    metric,
    rule,
)
from tests.support.html import Page
from tests.support.polling import wait_for
from tests.support.recorder import Recorder

BACKENDS = ALL_BACKENDS


async def pause(server: RemedyClient, reason: str = "deploy") -> None:
    response = await server.client.post("/api/v1/pause", params={"reason": reason})
    assert response.status == 200, await response.text()


async def resume(server: RemedyClient) -> None:
    response = await server.client.post("/api/v1/resume")
    assert response.status == 200, await response.text()
    await server.settle()


async def status(server: RemedyClient) -> dict[str, object]:
    code, body = await server.get_json("/api/v1/status")
    assert code == 200
    return dict(body)


# -- a pause holds ---------------------------------------------------------------------


async def test_an_alert_that_fires_during_a_pause_runs_once_after_resume(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rule(recorder.url()), dry_run=False)
    await pause(server, "incident 42")
    await fire(server, broken("a", 1))
    # Alertmanager's repeat_interval sends the same alert again: a duplicate, still held.
    await fire(server, broken("a", 1))
    state = await status(server)
    assert state["paused"] is True
    assert state["held"] == 1
    pause_info = state["pause"]
    assert isinstance(pause_info, dict)
    assert (pause_info["actor"], pause_info["reason"]) == ("system", "incident 42")
    assert pause_info["since"].startswith("20")
    assert recorder.received == []
    assert await decisions(server) == [("queued", None)]

    await resume(server)
    assert len(recorder.received) == 1
    assert await decisions(server) == [("succeeded", None)]
    assert (await status(server))["held"] == 0
    reasons = [(e["event"], e["reason"]) for e in await server.events() if e["remediation"]]
    assert ("queued", "held: remedy is paused") in reasons
    assert ("queued", "released: remedy resumed") in reasons


async def test_held_work_goes_through_every_guard_at_resume(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rule(recorder.url(), "rate_limit: {count: 1, per: 1h}"), dry_run=False)
    await fire(server, broken("a", 1))
    await pause(server)
    await fire(server, broken("a", 2))
    await resume(server)
    assert await decisions(server) == [("succeeded", None), ("skipped", "rate_limited")]
    assert len(recorder.received) == 1


async def test_held_work_whose_alert_resolved_is_cancelled(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rule(recorder.url()), dry_run=False)
    await pause(server)
    await fire(server, broken("a", 1))
    await fire(server, broken("a", 1, status="resolved"))
    assert (await status(server))["held"] == 0
    await resume(server)
    assert await decisions(server) == [("skipped", "cancelled")]
    assert recorder.received == []


async def test_work_held_past_pause_hold_is_dropped_at_resume(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rule(recorder.url()), dry_run=False, pause_hold=0.2)
    await pause(server)
    await fire(server, broken("a", 1))
    await asyncio.sleep(0.3)
    await fire(server, broken("b", 2))  # held just now: still fresh at resume
    await resume(server)
    assert await decisions(server) == [("skipped", "paused"), ("succeeded", None)]
    assert [r.json()["svc"] for r in recorder.received] == ["b"]
    dropped = await server.events(outcome="paused")
    assert "past guards.pause_hold" in dropped[-1]["error"]


async def test_held_work_survives_a_restart(remedy: StartRemedy, recorder: Recorder) -> None:
    first = await remedy(rule(recorder.url()), dry_run=False)
    await pause(first)
    await fire(first, broken("a", 1))
    await first.client.close()
    second = await remedy(rule(recorder.url()), dry_run=False)
    await second.settle()
    assert recorder.received == []
    assert (await status(second))["held"] == 1
    await resume(second)
    assert len(recorder.received) == 1


async def test_an_approval_given_during_a_pause_is_kept(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rule(recorder.url(), "require_approval: true"), dry_run=False)
    await fire(server, broken("a", 1))
    await pause(server)
    response = await server.client.post("/api/v1/remediations/1/approve")
    assert response.status == 200
    body = await response.json()
    assert body["message"] == "approved — runs when resumed (remedy is paused)"
    assert body["remediation"]["state"] == "queued"
    await server.settle()
    assert recorder.received == []
    assert (await status(server))["held"] == 1
    await resume(server)
    assert len(recorder.received) == 1
    assert await decisions(server) == [("succeeded", None)]
    # counted once, as what it became, never as a rejection
    assert (
        await metric(server, "remedy_remediations_skipped_total", rule="fix", reason="rejected")
        == 0
    )
    assert await metric(server, "remedy_remediations_total", rule="fix", state="skipped") == 0


async def test_the_page_says_who_paused_and_that_an_approval_waits(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rule(recorder.url(), "require_approval: true"), dry_run=False)
    await fire(server, broken("a", 1))
    await pause(server, "incident 42")
    page = await (await server.client.get("/")).text()
    token = page.split("name=token value='", 1)[1].split("'", 1)[0]
    response = await server.client.post(
        "/ui/remediations/1/approve", data={"token": token}, allow_redirects=False
    )
    assert response.status == 303
    back = URL("/ui/remediations/1/approve").join(URL(response.headers["Location"]))
    after = await (await server.client.get(back)).text()
    shown = Page(after).text
    assert "it runs when remedy is resumed" in shown
    assert re.search(r"PAUSED by system \d+ s ago : incident 42", shown), shown
    assert "held by the pause 1" in shown


# -- a resolve stops what follows ------------------------------------------------------


def two_steps(recorder: Recorder, extra: str = "") -> str:
    first = f"      - {{action: http.request, params: {{url: '{recorder.url('/one')}'}}}}\n"
    return rule(recorder.url("/two")).replace("    actions:\n", "    actions:\n" + first) + extra


async def test_a_resolve_stops_the_next_step(remedy: StartRemedy, recorder: Recorder) -> None:
    recorder.gate = asyncio.Event()
    server = await remedy(two_steps(recorder), dry_run=False)
    await server.post_alerts(am_payload(broken("a", 1)))
    await wait_for(lambda: _received(recorder, 1))
    status_code, _ = await server.post_alerts(am_payload(broken("a", 1, status="resolved")))
    assert status_code == 200
    recorder.gate.set()  # the attempt already running finishes
    await server.settle()
    assert [r.path for r in recorder.received] == ["/one"]
    assert await decisions(server) == [("succeeded", None)]
    cancelled = await server.events(outcome="cancelled")
    assert [(e["event"], e["action"]) for e in cancelled] == [("skipped", "http.request")]
    assert cancelled[0]["error"] == "the alert resolved before step 2 (http.request)"


async def test_a_resolve_stops_retries_and_on_failure(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    recorder.statuses = [200]  # step one succeeds
    recorder.status = 503  # step two fails temporarily: retried
    recorder.gate = asyncio.Event()
    recorder.gate_path = "/two"
    retried = two_steps(recorder, ON_FAILURE.format(page=recorder.url("/page"))).replace(
        "      - action: http.request\n", "      - action: http.request\n        retries: 5\n"
    )
    server = await remedy(retried, dry_run=False, retry_initial=0.05, retry_max=0.05)
    await server.post_alerts(am_payload(broken("a", 1)))
    await wait_for(lambda: _received(recorder, 2))
    await server.post_alerts(am_payload(broken("a", 1, status="resolved")))
    recorder.gate.set()
    await server.settle()
    assert [r.path for r in recorder.received] == ["/one", "/two"]
    assert await decisions(server) == [("failed", None)]
    failed = await server.events(outcome="failed")
    assert "not retried: the alert resolved before the retry" in failed[0]["error"]
    assert "503" in failed[0]["error"]  # the error that would have been retried
    skipped = await server.events(outcome="cancelled")
    assert [e["error"] for e in skipped] == [
        "on_failure not run: the alert resolved before it could run"
    ]


async def test_an_on_failure_held_past_pause_hold_is_dropped_at_resume(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    recorder.status = 500
    recorder.gate = asyncio.Event()
    server = await remedy(
        rule(recorder.url("/fix")) + ON_FAILURE.format(page=recorder.url("/page")),
        dry_run=False,
        pause_hold=0.2,
    )
    await server.post_alerts(am_payload(broken("a", 1)))
    await wait_for(lambda: _received(recorder, 1))
    await pause(server)
    recorder.gate.set()
    await server.settle()
    await asyncio.sleep(0.3)
    await resume(server)
    assert [r.path for r in recorder.received] == ["/fix"]
    dropped = await server.events(outcome="paused")
    assert "on_failure held by the pause since" in dropped[-1]["error"]
    assert (await status(server))["held"] == 0

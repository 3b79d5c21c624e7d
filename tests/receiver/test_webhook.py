"""The Alertmanager webhook end to end: real server, real store, real HTTP target."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from receiver.store.sqlite import SQLiteStore
from tests.conftest import ALL_BACKENDS, StartRemedy, am_alert, am_payload
from tests.support.recorder import Recorder

BACKENDS = ALL_BACKENDS

HOOK_RULE = """
rules:
  - name: warm-cache
    match: {{alertname: LowCacheHitRate}}
    target: 'cache:{{{{ labels.instance }}}}'
    actions:
      - action: http.request
        params:
          method: POST
          url: '{url}'
          json: {{instance: '{{{{ labels.instance }}}}', alert: '{{{{ alert.name }}}}'}}
"""


def hook_rule(recorder: Recorder) -> str:
    return HOOK_RULE.format(url=recorder.url("/warm"))


def cache_alert(instance: str = "web-1:8080", **kwargs: Any) -> dict[str, Any]:
    return am_alert("LowCacheHitRate", labels={"instance": instance}, **kwargs)


async def test_dry_run_records_the_rendered_action_and_sends_nothing(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(hook_rule(recorder))
    status, body = await server.post_alerts(am_payload(cache_alert()))
    assert status == 200
    assert body["stored"] == 1
    await server.settle()
    events = await server.events()
    assert [e["event"] for e in events] == ["received", "matched", "dry_run"]
    dry = events[-1]
    assert dry["rule"] == "warm-cache"
    assert dry["target"] == "cache:web-1:8080"
    assert dry["params"]["json"] == {"instance": "web-1:8080", "alert": "LowCacheHitRate"}
    assert recorder.received == []


async def test_live_run_sends_the_request_and_records_the_outcome(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(hook_rule(recorder), dry_run=False)
    status, _ = await server.post_alerts(am_payload(cache_alert()))
    assert status == 200
    await server.settle()
    assert len(recorder.received) == 1
    sent = recorder.received[0]
    assert (sent.method, sent.path) == ("POST", "/warm")
    assert sent.json() == {"instance": "web-1:8080", "alert": "LowCacheHitRate"}
    events = await server.events()
    assert [e["event"] for e in events] == ["received", "matched", "started", "succeeded"]
    assert events[-1]["duration_ms"] >= 0
    assert events[-1]["result"]["status"] == 200
    _, body = await server.get_json("/api/v1/remediations", params={"state": "succeeded"})
    assert [r["rule"] for r in body["remediations"]] == ["warm-cache"]


async def test_a_resolve_in_the_same_delivery_stops_only_its_own_alert(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(hook_rule(recorder), dry_run=False)
    payload = am_payload(
        cache_alert("flapping:8080"),
        cache_alert("steady:8080"),
        cache_alert("flapping:8080", status="resolved"),
    )
    status, _ = await server.post_alerts(payload)
    assert status == 200
    await server.settle()
    assert [r.json()["instance"] for r in recorder.received] == ["steady:8080"]
    _, listed = await server.get_json("/api/v1/remediations")
    states = sorted((r["target"], r["state"], r["reason"]) for r in listed["remediations"])
    assert states == [
        ("cache:flapping:8080", "skipped", "cancelled"),
        ("cache:steady:8080", "succeeded", None),
    ]


async def test_a_resolve_cancels_what_waits_and_runs_its_own_rule_once(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    """The firing alert's remediation waits for approval; its resolve cancels it and
    starts the rule that takes resolves, once, however often the resolve comes."""
    rules = f"""
rules:
  - name: warm-cache
    match: {{alertname: LowCacheHitRate}}
    guards: {{require_approval: true}}
    target: 'cache:{{{{ labels.instance }}}}'
    actions:
      - action: http.request
        params: {{url: '{recorder.url("/warm")}'}}
  - name: note-recovery
    match: {{alertname: LowCacheHitRate, status: resolved}}
    target: 'cache:{{{{ labels.instance }}}}'
    actions:
      - action: http.request
        params: {{url: '{recorder.url("/recovered")}'}}
"""
    server = await remedy(rules, dry_run=False)
    status, _ = await server.post_alerts(am_payload(cache_alert()))
    assert status == 200
    _, listed = await server.get_json("/api/v1/remediations")
    assert [r["state"] for r in listed["remediations"]] == ["pending_approval"]
    for _ in range(2):  # the second delivery of the resolve is a duplicate
        status, _ = await server.post_alerts(am_payload(cache_alert(status="resolved")))
        assert status == 200
    await server.settle()
    assert [r.path for r in recorder.received] == ["/recovered"]
    _, listed = await server.get_json("/api/v1/remediations")
    states = sorted((r["rule"], r["state"], r["reason"]) for r in listed["remediations"])
    assert states == [("note-recovery", "succeeded", None), ("warm-cache", "skipped", "cancelled")]
    assert len(await server.events(outcome="duplicate")) == 1


async def test_a_failing_target_is_recorded_as_failed(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    recorder.status = 404
    server = await remedy(hook_rule(recorder), dry_run=False)
    await server.post_alerts(am_payload(cache_alert()))
    await server.settle()
    failed = (await server.events(outcome="failed"))[0]
    assert "answered 404" in failed["error"]
    assert failed["action"] == "http.request"


async def test_a_slow_target_times_out(remedy: StartRemedy, recorder: Recorder) -> None:
    recorder.delay = 2
    rules = hook_rule(recorder).replace(
        "    actions:\n      - action: http.request\n",
        "    actions:\n      - action: http.request\n        timeout: 200ms\n",
    )
    server = await remedy(rules, dry_run=False)
    await server.post_alerts(am_payload(cache_alert()))
    await server.settle()
    assert [e["event"] for e in await server.events()][-1] == "timeout"


async def test_resolved_alert_is_stored_but_a_firing_rule_does_not_match(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(hook_rule(recorder))
    status, body = await server.post_alerts(am_payload(cache_alert(status="resolved")))
    assert (status, body["stored"], body["remediations"]) == (200, 1, 0)
    events = await server.events()
    assert [(e["event"], e["alert"]["status"]) for e in events] == [("received", "resolved")]


async def test_a_batch_of_100_alerts_is_stored_in_one_answer(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(hook_rule(recorder))
    alerts = [cache_alert(f"web-{i}:8080") for i in range(100)]
    status, body = await server.post_alerts(am_payload(*alerts))
    assert (status, body["stored"], body["remediations"]) == (200, 100, 100)
    await server.settle()
    assert len(await server.events(outcome="dry_run")) == 100


async def test_redelivery_is_a_duplicate_and_runs_nothing_twice(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(hook_rule(recorder), dry_run=False)
    payload = am_payload(cache_alert())
    await server.post_alerts(payload)
    status, body = await server.post_alerts(payload)
    assert (status, body["duplicates"], body["remediations"]) == (200, 1, 0)
    await server.settle()
    assert len(recorder.received) == 1
    skipped = await server.events(outcome="duplicate")
    assert [(e["event"], e["reason"]) for e in skipped] == [("skipped", "duplicate")]


async def test_concurrent_deliveries_of_one_alert_run_once(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(hook_rule(recorder), dry_run=False)
    payload = am_payload(cache_alert())
    answers = await asyncio.gather(*(server.post_alerts(payload) for _ in range(20)))
    assert {status for status, _ in answers} == {200}
    assert sum(body["stored"] for _, body in answers) == 1
    await server.settle()
    assert len(recorder.received) == 1


async def test_malformed_json_is_a_400_and_stores_nothing(remedy: StartRemedy) -> None:
    server = await remedy()
    status, body = await server.post_alerts(b'{"version": "4", "alerts": [')
    assert status == 400
    assert "not valid JSON" in body["error"]
    assert await server.events() == []


async def test_a_wrong_type_names_the_field_and_stores_none_of_the_batch(
    remedy: StartRemedy,
) -> None:
    server = await remedy()
    good = am_alert("A")
    bad = am_alert("B", labels={"severity": "page"})
    bad["labels"]["replicas"] = 3
    status, body = await server.post_alerts(am_payload(good, bad))
    assert status == 400
    assert body["field"] == "alerts[1].labels.replicas"
    assert await server.events() == []


async def test_bad_fields_each_get_their_own_reason(remedy: StartRemedy) -> None:
    server = await remedy()
    cases = {
        "alerts[0].startsAt": {**am_alert(), "startsAt": "yesterday"},
        "alerts[0].status": {**am_alert(), "status": "burning"},
        "alerts[0].labels.alertname": {**am_alert(), "labels": {"job": "web"}},
    }
    for field, alert in cases.items():
        status, body = await server.post_alerts(am_payload(alert))
        assert (status, body["field"]) == (400, field), body
    status, body = await server.post_alerts({**am_payload(am_alert()), "version": "3"})
    assert (status, body["field"]) == (400, "version")
    status, body = await server.post_alerts([1, 2])
    assert status == 400


async def test_a_5000_alert_group_is_accepted(remedy: StartRemedy, recorder: Recorder) -> None:
    server = await remedy(hook_rule(recorder))
    alerts = [cache_alert(f"web-{i}:8080", annotations={"summary": "x" * 200}) for i in range(5000)]
    payload = am_payload(*alerts)
    assert len(json.dumps(payload)) > 1024 * 1024  # over aiohttp's own default limit
    status, body = await server.post_alerts(payload)
    assert (status, body["stored"]) == (200, 5000)
    await server.settle()


async def test_a_body_over_the_limit_is_a_413(remedy: StartRemedy) -> None:
    server = await remedy(max_body_bytes=10_000)
    alerts = [am_alert(labels={"i": str(i)}) for i in range(200)]
    status, body = await server.post_alerts(am_payload(*alerts))
    assert status == 413
    assert body["limit_bytes"] == 10_000
    assert await server.events() == []


async def test_truncated_alerts_are_counted_not_resolved(remedy: StartRemedy) -> None:
    server = await remedy()
    status, _ = await server.post_alerts(am_payload(am_alert(), truncated=7))
    assert status == 200
    response = await server.client.get("/metrics")
    text = await response.text()
    assert "remedy_alerts_truncated_total 7.0" in text


@pytest.mark.sqlite_only  # holds SQLite's write lock from a second connection
async def test_storage_that_cannot_take_the_write_is_a_503(
    remedy: StartRemedy, db_path: Path
) -> None:
    server = await remedy(store=SQLiteStore(db_path, busy_timeout=0.1))
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        status, body = await server.post_alerts(am_payload(am_alert()))
        assert status == 503
        assert body["error"] == "storage unavailable, retry later"
        blocker.execute("ROLLBACK")
        status, body = await server.post_alerts(am_payload(am_alert()))
        assert (status, body["stored"]) == (200, 1)
    finally:
        blocker.close()


async def test_odd_but_valid_json_is_a_400_not_a_500(remedy: StartRemedy) -> None:
    server = await remedy()
    surrogate = json.dumps(am_payload(am_alert(labels={"job": "\ud800"})))
    cases = {
        "alerts[0].labels.job": surrogate,
        "alerts[0].startsAt": json.dumps(
            am_payload({**am_alert(), "startsAt": "9999-12-31T23:59:59-01:00"})
        ),
        "": "[" * 100_000 + "]" * 100_000,
    }
    for field, body in cases.items():
        status, answer = await server.post_alerts(body)
        assert status == 400, (field, answer)
        assert (answer.get("field") or "") == field
    assert await server.events() == []


async def test_a_label_that_breaks_the_url_is_a_template_error(remedy: StartRemedy) -> None:
    rules = HOOK_RULE.format(url="http://{{ labels.instance }}/warm")
    server = await remedy(rules, dry_run=False)
    for instance in ("[::1", "h:99999", "h/x\r\nX-Injected: 1"):
        status, _ = await server.post_alerts(am_payload(cache_alert(instance)))
        assert status == 200
    await server.settle()
    skipped = await server.events(outcome="template_error")
    assert len(skipped) == 3
    assert all("url" in e["error"] for e in skipped)


async def test_a_chunked_body_over_the_limit_is_a_413(remedy: StartRemedy) -> None:
    server = await remedy(max_body_bytes=10_000)

    async def chunks() -> Any:
        yield b'{"version": "4", "alerts": ['
        for _ in range(100):
            yield b'{"status": "firing", "labels": {"alertname": "' + b"x" * 200 + b'"}},'
        yield b"{}]}"

    response = await server.client.post(
        "/webhook/alertmanager", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
    assert (await response.json())["limit_bytes"] == 10_000

"""The service as operators see it: matching, template errors, metrics, reload, status, tail."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.conftest import StartRemedy, am_alert, am_payload

MATCHERS = """
rules:
  - name: by-{name}
    match:
      matchers: ['{matcher}']
    target: 'job:{{{{ labels.job }}}}'
    actions:
      - action: http.request
        params: {{url: 'http://127.0.0.1:1/x'}}
"""


@pytest.mark.parametrize(
    ("matcher", "job", "matches"),
    [
        ('job="web"', "web", True),
        ('job="web"', "webserver", False),
        ('job!="web"', "api", True),
        ('job!="web"', "web", False),
        ('job=~"web|api"', "api", True),
        ('job=~"web"', "webserver", False),  # anchored: the whole value must match
        ('job!~"web.*"', "api", True),
        ('job!~"web.*"', "webserver", False),
    ],
)
async def test_each_matcher_operator_through_the_service(
    remedy: StartRemedy, matcher: str, job: str, *, matches: bool
) -> None:
    server = await remedy(MATCHERS.format(name="op", matcher=matcher))
    _, body = await server.post_alerts(am_payload(am_alert("Any", labels={"job": job})))
    assert body["remediations"] == (1 if matches else 0)


async def test_a_missing_label_is_a_recorded_template_error(remedy: StartRemedy) -> None:
    server = await remedy(MATCHERS.format(name="job", matcher='severity="page"'))
    status, body = await server.post_alerts(
        am_payload(am_alert("NoJob", labels={"severity": "page"}))
    )
    assert (status, body["remediations"]) == (200, 0)
    await server.settle()
    skipped = await server.events(outcome="template_error")
    assert len(skipped) == 1
    assert skipped[0]["event"] == "skipped"
    assert "label 'job' is missing" in skipped[0]["error"]
    _, listed = await server.get_json("/api/v1/remediations", params={"state": "skipped"})
    assert [r["reason"] for r in listed["remediations"]] == ["template_error"]


async def test_metrics_count_what_happened(remedy: StartRemedy) -> None:
    server = await remedy(MATCHERS.format(name="web", matcher='job="web"'))
    payload = am_payload(am_alert(labels={"job": "web"}), am_alert("B", labels={"job": "db"}))
    await server.post_alerts(payload)
    await server.post_alerts(payload)
    await server.post_alerts(b"not json")
    await server.settle()
    text = await (await server.client.get("/metrics")).text()
    expected = [
        'remedy_alerts_received_total{source="alertmanager",status="firing"} 4.0',
        'remedy_alerts_duplicate_total{source="alertmanager"} 2.0',
        'remedy_webhook_rejected_total{reason="malformed",source="alertmanager"} 1.0',
        'remedy_rule_matches_total{rule="by-web"} 2.0',
        'remedy_actions_total{action="http.request",outcome="dry_run"} 1.0',
        'remedy_remediations_total{rule="by-web",state="dry_run"} 1.0',
        "remedy_store_write_seconds_count",
        'remedy_http_request_duration_seconds_count{method="POST",'
        'route="/webhook/alertmanager",status="200"} 2.0',
    ]
    for line in expected:
        assert line in text, line


async def test_status_health_and_readiness(remedy: StartRemedy) -> None:
    server = await remedy(MATCHERS.format(name="web", matcher='job="web"'))
    status, body = await server.get_json("/api/v1/status")
    assert status == 200
    assert body["dry_run"] is True
    assert body["rules"] == 1
    assert body["storage"] == "sqlite"
    assert (await server.get_json("/healthz"))[0] == 200
    assert (await server.get_json("/readyz")) == (200, {"status": "ready"})
    _, rules = await server.get_json("/api/v1/rules")
    assert rules["rules"][0]["matchers"] == ['job="web"']


async def test_reload_takes_a_valid_set_and_keeps_the_old_on_error(
    remedy: StartRemedy, tmp_path: Path
) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(MATCHERS.format(name="one", matcher='job="web"'))
    server = await remedy(rules=(str(rules_file),))
    rules_file.write_text(MATCHERS.format(name="two", matcher='job="web"'))
    response = await server.client.post("/-/reload")
    assert response.status == 200
    _, body = await server.get_json("/api/v1/rules")
    assert [r["name"] for r in body["rules"]] == ["by-two"]
    rules_file.write_text("rules:\n  - name: broken\n")
    response = await server.client.post("/-/reload")
    assert response.status == 400
    problems = (await response.json())["problems"]
    assert problems[0].startswith(f"{rules_file}:2: rule broken: missing required key")
    _, body = await server.get_json("/api/v1/rules")
    assert [r["name"] for r in body["rules"]] == ["by-two"]
    assert len(await server.events(outcome="rules_reloaded")) == 1


async def test_stream_tails_new_events(remedy: StartRemedy) -> None:
    server = await remedy()
    response = await server.client.get("/api/v1/audit/stream")
    assert response.headers["Content-Type"] == "text/event-stream"
    await server.post_alerts(am_payload(am_alert()))
    data = None
    async with asyncio.timeout(5):
        async for raw in response.content:
            line = raw.decode()
            if line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                break
    assert data is not None
    assert data["event"] == "received"
    response.close()


async def test_unknown_paths_are_json_404s(remedy: StartRemedy) -> None:
    server = await remedy()
    status, body = await server.get_json("/api/v1/nothing")
    assert status == 404
    assert body == {"error": "Not Found"}

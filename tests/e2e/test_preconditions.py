"""``when:`` asked of a real Prometheus just before a remediation runs.

Prometheus scrapes a metrics page the test controls (``service_up`` of the
alert's job); the rule restarts only while the service is still down. Up
again → ``skipped: precondition``, nothing called; still down → it runs; a
label that tries to rewrite the query asks the same question; Prometheus
gone → ``precondition_error`` and nothing runs (fail closed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from receiver.config import ApiServer
from tests.conftest import RemedyClient, StartRemedy, am_alert, am_payload
from tests.support.prometheus import Monitoring, Prometheus
from tests.support.recorder import Recorder

RULES = """\
rules:
  - name: restart-if-still-down
    match: {{alertname: ServiceDown}}
    target: 'svc:{{{{ labels.job }}}}'
    when:
      - query: 'service_up{{job="{{{{ labels.job }}}}"}} == 0'
    actions:
      - action: http.request
        params: {{url: '{url}'}}
"""
DEADLINE = 60.0  # a hang guard, not a speed requirement


class Target:
    """A page of metrics for Prometheus to scrape; the test sets the values."""

    def __init__(self) -> None:
        self.up: dict[str, int] = {"web": 1}
        self.server: TestServer | None = None

    async def metrics(self, _: web.Request) -> web.Response:
        lines = ["# TYPE service_up gauge"]
        lines += [f'service_up{{job="{job}"}} {value}' for job, value in self.up.items()]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    page = Target()
    app = web.Application()
    app.router.add_get("/metrics", page.metrics)
    page.server = TestServer(app, host="127.0.0.1")
    await page.server.start_server()
    try:
        yield page
    finally:
        await page.server.close()


async def scraped(prometheus: Prometheus, expr: str, want: float) -> None:
    """Wait until Prometheus answers ``expr`` with ``want`` (it scrapes every second)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while (value := await prometheus.value(expr)) != want:
        if loop.time() > deadline:
            pytest.fail(f"{expr} stayed {value}, not {want}\n{prometheus.tail()}")
        await asyncio.sleep(0.2)


async def fire(server: RemedyClient, job: str, minute: int) -> dict[str, object]:
    """A ServiceDown for ``job`` (a new occurrence each minute); its remediation once decided."""
    alert = am_alert(
        "ServiceDown", labels={"job": job}, starts_at=f"2026-11-24T05:{minute:02d}:00.000Z"
    )
    status, _ = await server.post_alerts(am_payload(alert))
    assert status == 200
    await server.settle()
    _, body = await server.get_json("/api/v1/remediations")
    record: dict[str, object] = body["remediations"][-1]
    return record


async def test_when_asks_prometheus_of_the_present_and_fails_closed(
    remedy: StartRemedy, recorder: Recorder, target: Target, monitoring: Monitoring
) -> None:
    assert target.server is not None
    prometheus = await monitoring.prometheus(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "services",
                    "honor_labels": True,  # the page's job label is the service's
                    "static_configs": [{"targets": [f"127.0.0.1:{target.server.port}"]}],
                }
            ],
        }
    )
    await scraped(prometheus, 'service_up{job="web"}', 1)
    server = await remedy(
        RULES.format(url=recorder.url()),
        dry_run=False,
        prometheus=ApiServer(url=prometheus.url, timeout=5),
    )

    # Up again by the time the remediation would run: nothing is touched.
    record = await fire(server, "web", 1)
    assert (record["state"], record["reason"]) == ("skipped", "precondition")
    assert record["when"] == [{"query": 'service_up{job="web"} == 0', "expect": "nonempty"}]
    assert recorder.received == []
    (skipped,) = await server.events(outcome="precondition")
    assert skipped["error"] == 'service_up{job="web"} == 0: no series, expected nonempty'

    # Still down: it runs.
    target.up["web"] = 0
    await scraped(prometheus, 'service_up{job="web"}', 0)
    record = await fire(server, "web", 2)
    assert record["state"] == "succeeded"
    assert len(recorder.received) == 1

    # A label written to end the string and add "or vector(1)" asks the same question.
    hostile = '"}) or vector(1) #'
    record = await fire(server, hostile, 3)
    assert (record["state"], record["reason"]) == ("skipped", "precondition")
    assert record["when"] == [
        {"query": 'service_up{job="\\"}) or vector(1) #"} == 0', "expect": "nonempty"}
    ]
    assert len(recorder.received) == 1
    # Nor can a character Prometheus's lexer refuses make the question an error.
    record = await fire(server, "web\ufffd", 5)
    assert (record["state"], record["reason"]) == ("skipped", "precondition")

    # Prometheus gone: the remediation does not run, and the error is counted.
    monitoring.stop()
    record = await fire(server, "web", 4)
    assert (record["state"], record["reason"]) == ("skipped", "precondition_error")
    assert len(recorder.received) == 1
    (failed,) = await server.events(outcome="precondition_error")
    assert failed["error"].startswith('service_up{job="web"} == 0: cannot reach Prometheus')
    metrics = await (await server.client.get("/metrics")).text()
    assert 'remedy_precondition_errors_total{rule="restart-if-still-down"} 1.0' in metrics


VERIFIED_RULES = """\
rules:
  - name: restart-and-check
    match: {{alertname: ServiceDown}}
    target: 'svc:{{{{ labels.job }}}}'
    actions:
      - action: http.request
        params: {{url: '{url}'}}
    verify:
      query: 'service_up{{job="{{{{ labels.job }}}}"}} == 1'
      within: 4s
    on_failure:
      - action: http.request
        params: {{url: '{page}'}}
"""


async def decided(server: RemedyClient, rem_id: int) -> dict[str, object]:
    """The remediation once it is no longer running or verifying (60 s hang guard)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        _, body = await server.get_json("/api/v1/remediations")
        found: list[dict[str, object]] = [r for r in body["remediations"] if r["id"] == rem_id]
        (record,) = found
        if record["state"] not in ("queued", "running", "verifying"):
            await server.settle()  # and its on_failure, if one is due
            return record
        assert loop.time() < deadline, f"remediation {rem_id} stayed {record['state']}"
        await asyncio.sleep(0.2)


async def test_verify_query_proves_the_effect_or_pages(
    remedy: StartRemedy, recorder: Recorder, target: Target, monitoring: Monitoring
) -> None:
    assert target.server is not None
    target.up = {"web": 1, "api": 0}
    prometheus = await monitoring.prometheus(
        {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "services",
                    "honor_labels": True,
                    "static_configs": [{"targets": [f"127.0.0.1:{target.server.port}"]}],
                }
            ],
        }
    )
    await scraped(prometheus, 'service_up{job="api"}', 0)
    server = await remedy(
        VERIFIED_RULES.format(url=recorder.url("/restart"), page=recorder.url("/page")),
        dry_run=False,
        prometheus=ApiServer(url=prometheus.url, timeout=5),
    )
    await fire(server, "web", 1)  # the service is back: the query holds
    await fire(server, "api", 2)  # it stays down: the query never holds within 4s
    web_record = await decided(server, 1)
    assert web_record["state"] == "verified"
    api_record = await decided(server, 2)
    assert api_record["state"] == "ineffective"
    assert [r.path for r in recorder.received].count("/page") == 1  # on_failure paged, once
    (verified,) = await server.events(outcome="verified")
    assert verified["reason"] == (
        'verify.query held: service_up{job="web"} == 1: value 1, expected nonempty'
    )
    (ineffective,) = await server.events(outcome="ineffective")
    assert ineffective["reason"] == "verify.query did not hold in time"
    assert ineffective["error"] == 'service_up{job="api"} == 1: no series, expected nonempty'

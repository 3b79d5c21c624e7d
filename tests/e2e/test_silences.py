"""``silence:`` against a real Alertmanager: made while remedy works, never left behind.

The silence appears in Alertmanager's ``/api/v2/silences`` while the
remediation runs, matching the alert's labels exactly; it is expired once the
remediation is verified, at once when it fails, and after a ``kill -9`` the
restarted remedy expires what its crash left behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from receiver.config import ApiServer
from tests.conftest import StartRemedy, am_alert, am_payload
from tests.support.processes import free_port, serve, stop
from tests.support.prometheus import Alertmanager, Monitoring
from tests.support.recorder import Recorder

T = TypeVar("T")
DEADLINE = 60.0  # a hang guard, not a speed requirement
RULES = """\
rules:
  - name: restart-web
    match: {{alertname: ServiceDown}}
    target: 'svc:{{{{ labels.job }}}}'
    silence: {{duration: 30m, comment: restarting the service}}
    actions:
      - action: http.request
        params: {{url: '{url}', timeout: 50s}}
    verify: {{resolved_within: 10m}}
  - name: warm-cache
    match: {{alertname: LowCacheHitRate}}
    target: 'cache:{{{{ labels.instance }}}}'
    silence: {{duration: 30m}}
    actions:
      - action: http.request
        params: {{url: '{url}'}}
    verify: {{resolved_within: 2s}}
"""
ALERT = am_alert("ServiceDown", labels={"job": "web", "instance": "web-1:80"})
RESOLVED = am_alert("ServiceDown", "resolved", labels={"job": "web", "instance": "web-1:80"})


async def eventually(what: str, check: Callable[[], Awaitable[T | None]]) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not (value := await check()):
        if loop.time() > deadline:
            pytest.fail(f"{what}: not within {DEADLINE:.0f}s")
        await asyncio.sleep(0.2)
    return value


async def silences(alertmanager: Alertmanager, state: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await alertmanager.get_json("/api/v2/silences")
    return [s for s in found if s["status"]["state"] == state and s["createdBy"] == "remedy"]


async def start_alertmanager(monitoring: Monitoring) -> Alertmanager:
    return await monitoring.alertmanager(
        {"route": {"receiver": "nobody"}, "receivers": [{"name": "nobody"}]}
    )


async def test_a_silence_while_it_runs_expired_once_verified_or_failed(
    remedy: StartRemedy, recorder: Recorder, monitoring: Monitoring
) -> None:
    alertmanager = await start_alertmanager(monitoring)
    server = await remedy(
        RULES.format(url=recorder.url("/restart")),
        dry_run=False,
        alertmanager=ApiServer(url=alertmanager.url, timeout=5),
        external_url="https://remedy.example/ops",
    )
    recorder.gate = asyncio.Event()  # the restart hangs until the test lets it answer
    status, _ = await server.post_alerts(am_payload(ALERT))
    assert status == 200
    (active,) = await eventually("a silence", lambda: silences(alertmanager, "active"))
    assert sorted(
        (m["name"], m["value"], m["isEqual"], m["isRegex"]) for m in active["matchers"]
    ) == [
        ("alertname", "ServiceDown", True, False),
        ("instance", "web-1:80", True, False),
        ("job", "web", True, False),
    ]
    assert active["comment"] == (
        "restarting the service — rule restart-web, https://remedy.example/ops/#rem-1"
        " [remedy remediation 1 of https://remedy.example/ops/]"
    )
    recorder.gate.set()
    await server.settle()
    assert await silences(alertmanager, "active"), "still verifying: people are not paged yet"

    status, _ = await server.post_alerts(am_payload(RESOLVED))  # verified
    assert status == 200
    await eventually("the silence expired", lambda: silences(alertmanager, "expired"))
    assert await silences(alertmanager, "active") == []
    made, ended = await server.events(outcome="silence")
    assert (made["action"], made["result"]["silence_id"]) == ("alertmanager.silence", active["id"])
    assert (ended["action"], ended["result"]) == (
        "alertmanager.expire_silence",
        {"silence_id": active["id"], "remediation_state": "verified"},
    )

    # A restart that fails: its silence goes at once, so the failure pages people.
    recorder.gate = None
    recorder.status = 500
    again = am_alert(
        "ServiceDown",
        labels={"job": "web", "instance": "web-2:80"},
        starts_at="2026-11-24T06:00:00Z",
    )
    await server.post_alerts(am_payload(again))
    await server.settle()
    expired = await silences(alertmanager, "expired")
    assert len(expired) == 2 and await silences(alertmanager, "active") == []

    # Ineffective (the alert did not resolve within 2s): its silence goes within seconds.
    recorder.status = 200
    await server.post_alerts(am_payload(am_alert("LowCacheHitRate", labels={"instance": "c:1"})))
    await server.settle()
    await eventually("a silence for the cache", lambda: silences(alertmanager, "active"))

    async def third_expired() -> bool:
        return len(await silences(alertmanager, "expired")) == 3

    await eventually("the ineffective one's silence expired", third_expired)
    _, body = await server.get_json("/api/v1/remediations")
    assert body["remediations"][-1]["state"] == "ineffective"


async def test_a_crash_leaves_no_silence_behind(
    tmp_path: Path, recorder: Recorder, monitoring: Monitoring
) -> None:
    alertmanager = await start_alertmanager(monitoring)
    (tmp_path / "rules.yaml").write_text(RULES.format(url=recorder.url("/restart")))
    (tmp_path / "remedy.yaml").write_text(
        "dry_run: false\nrules: [rules.yaml]\nlog_level: warning\n"
        f"backends: {{alertmanager: {{url: '{alertmanager.url}'}}}}\n"
    )
    recorder.gate = asyncio.Event()  # never opened: the step is running when remedy dies
    port = free_port()
    proc = await serve(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{url}/webhook/alertmanager", json=am_payload(ALERT)) as answer,
        ):
            assert answer.status == 200
        await eventually("a silence", lambda: silences(alertmanager, "active"))
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        proc = await serve(tmp_path, port)  # recovery: the running step was interrupted
        await eventually("the silence expired", lambda: silences(alertmanager, "expired"))
        assert await silences(alertmanager, "active") == []
    finally:
        recorder.gate.set()
        await stop(proc)

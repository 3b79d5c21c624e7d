"""Three ``remedy serve`` replicas on one PostgreSQL: one execution per alert, shared guards.

Every replica is a real process on the machine's PostgreSQL, fed as an
Alertmanager HA cluster feeds them (every alert to every replica, and again);
the actions call a local recorder, which counts what really ran.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.conftest import am_alert, am_payload
from tests.support.polling import wait_for
from tests.support.postgres import SERVER
from tests.support.processes import audit_verify, free_port, serve, settled, stop
from tests.support.recorder import Recorder

BACKENDS = ("postgresql",)

RULES = """
rules:
  - name: restart
    match: {{alertname: Broken}}
    target: 'svc:{{{{ labels.svc }}}}'
    actions:
      - action: http.request
        params: {{url: '{url}/restart', json: {{svc: '{{{{ labels.svc }}}}'}}}}
  - name: flush
    match: {{alertname: CacheCold}}
    target: cache:shared
    guards: {{rate_limit: {{count: 1, per: 1h}}}}
    actions:
      - action: http.request
        params: {{url: '{url}/flush', json: {{n: '{{{{ labels.n }}}}'}}}}
  - name: reboot
    match: {{alertname: NodeSick}}
    target: 'node:{{{{ labels.node }}}}'
    guards: {{blast_radius: {{scope: cluster:prod, max_targets: 3, per: 1h}}}}
    actions:
      - action: http.request
        params: {{url: '{url}/reboot', json: {{node: '{{{{ labels.node }}}}'}}}}
  - name: unstick
    match: {{alertname: Stuck}}
    target: 'svc:{{{{ labels.svc }}}}'
    actions:
      - action: http.request
        params: {{url: '{url}/slow', json: {{svc: '{{{{ labels.svc }}}}'}}}}
        timeout: 60s
    on_failure:
      - action: http.request
        params: {{url: '{url}/page', json: {{svc: '{{{{ labels.svc }}}}'}}}}
"""


def hits(recorder: Recorder, path: str, key: str) -> collections.Counter[str]:
    """How many times the recorder was called at ``path``, by the body's ``key``."""
    return collections.Counter(r.json()[key] for r in recorder.received if r.path == path)


@contextlib.asynccontextmanager
async def replicas(
    tmp_path: Path, storage: str, recorder: Recorder, *, settings: str = ""
) -> AsyncIterator[tuple[list[str], list[asyncio.subprocess.Process], str]]:
    """Three replicas started at once on one database; their URLs, processes, application name."""
    app = "remedy-" + storage.rpartition("=")[2]  # the test's schema: its connections alone
    (tmp_path / "rules.yaml").write_text(RULES.format(url=recorder.url("")))
    (tmp_path / "remedy.yaml").write_text(
        f"storage: '{storage}&application_name={app}'\n"
        "storage_lease: 2s\ndry_run: false\nrules: [rules.yaml]\nlog_level: warning\n" + settings
    )
    ports = [free_port() for _ in range(3)]
    procs = list(await asyncio.gather(*(serve(tmp_path, port) for port in ports)))
    try:
        yield [f"http://127.0.0.1:{port}" for port in ports], procs, app
    finally:
        await asyncio.gather(*(stop(proc) for proc in procs))


async def post(session: aiohttp.ClientSession, url: str, alert: dict[str, Any]) -> int:
    """Deliver one alert as Alertmanager does; the answer's status (0: no answer)."""
    try:
        async with session.post(
            f"{url}/webhook/alertmanager",
            data=json.dumps(am_payload(alert)),
            headers={"Content-Type": "application/json"},
        ) as response:
            return response.status
    except aiohttp.ClientError:
        return 0


async def held(url: str, count: int) -> bool:
    """Whether ``GET /api/v1/status`` reports ``count`` remediations held by the pause."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/api/v1/status") as response:
        body = await response.json()
        return bool(body["held"] >= count)


async def test_alerts_posted_to_every_replica_twice_run_once_and_every_tail_shows_them(
    tmp_path: Path, storage: str, recorder: Recorder
) -> None:
    alerts = [am_alert("Broken", labels={"svc": f"svc-{i}"}) for i in range(200)]
    async with replicas(tmp_path, storage, recorder) as (urls, _procs, _app):
        succeeded_in_tail: set[str] = set()

        async def tail() -> None:
            """The live tail of the third replica, until every alert's success is in it."""
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{urls[2]}/api/v1/audit/stream") as response,
            ):
                async for line in response.content:
                    if line.startswith(b"data: "):
                        event = json.loads(line[6:])
                        if event["event"] == "succeeded":
                            succeeded_in_tail.add(event["alert"]["labels"]["svc"])
                            if len(succeeded_in_tail) == len(alerts):
                                return

        following = asyncio.create_task(tail())
        await asyncio.sleep(0.5)  # the stream is open before the first alert
        connector = aiohttp.TCPConnector(limit=60)
        async with aiohttp.ClientSession(connector=connector) as session:
            statuses = await asyncio.gather(
                *(post(session, url, alert) for _ in range(2) for alert in alerts for url in urls)
            )
        assert collections.Counter(statuses) == {200: 6 * len(alerts)}
        records = await settled(urls[0], len(alerts))
        async with asyncio.timeout(30):
            await following

    runs = hits(recorder, "/restart", "svc")
    assert len(runs) == len(alerts)  # every alert ran...
    assert max(runs.values()) == 1  # ...once, across the three replicas
    assert len(records) == len(alerts)
    assert {r["state"] for r in records} == {"succeeded"}
    assert len(succeeded_in_tail) == len(alerts)  # one replica's tail shows all three's work
    assert (await audit_verify(tmp_path)).startswith("OK ")


async def test_rate_limit_and_blast_radius_hold_across_replicas(
    tmp_path: Path, storage: str, recorder: Recorder
) -> None:
    cache = [am_alert("CacheCold", labels={"n": str(i)}) for i in range(20)]
    nodes = [am_alert("NodeSick", labels={"node": f"node-{i}"}) for i in range(20)]
    async with replicas(tmp_path, storage, recorder) as (urls, _procs, _app):
        async with aiohttp.ClientSession() as session:
            statuses = await asyncio.gather(
                *(post(session, url, alert) for alert in [*cache, *nodes] for url in urls)
            )
        assert set(statuses) == {200}
        records = await settled(urls[1], len(cache) + len(nodes))

    assert sum(hits(recorder, "/flush", "n").values()) == 1  # rate_limit 1/h on one target
    rebooted = hits(recorder, "/reboot", "node")
    assert len(rebooted) == 3  # blast radius: 3 targets
    assert max(rebooted.values()) == 1
    by_rule: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for r in records:
        by_rule[r["rule"]][r["state"]] += 1
    assert by_rule["flush"] == {"succeeded": 1, "skipped": 19}
    assert by_rule["reboot"] == {"succeeded": 3, "skipped": 17}


async def test_a_pause_through_one_replica_holds_the_work_of_all_three(
    tmp_path: Path, storage: str, recorder: Recorder
) -> None:
    alerts = [am_alert("Broken", labels={"svc": f"svc-{i}"}) for i in range(30)]
    async with replicas(tmp_path, storage, recorder) as (urls, _procs, _app):
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{urls[0]}/api/v1/pause?reason=db+migration") as response:
                assert response.status == 200
            statuses = await asyncio.gather(
                *(post(session, url, alert) for alert in alerts for url in urls[1:])
            )
            assert set(statuses) == {200}
            await wait_for(lambda: held(urls[2], len(alerts)), within=30)
            await asyncio.sleep(1.0)  # time enough for any replica to start something
            assert recorder.received == []  # none of the three started anything
            async with session.post(f"{urls[2]}/api/v1/resume") as response:
                assert response.status == 200
        records = await settled(urls[1], len(alerts))

    runs = hits(recorder, "/restart", "svc")
    assert len(runs) == len(alerts)
    assert max(runs.values()) == 1
    assert {r["state"] for r in records} == {"succeeded"}


async def test_max_concurrent_counts_the_actions_of_every_replica(
    tmp_path: Path, storage: str, recorder: Recorder
) -> None:
    recorder.gate = asyncio.Event()
    recorder.gate_path = "/slow"
    alerts = [am_alert("Stuck", labels={"svc": f"svc-{i}"}) for i in range(3)]
    settings = "guards: {max_concurrent: 1}\n"
    async with replicas(tmp_path, storage, recorder, settings=settings) as (urls, _procs, _app):
        async with aiohttp.ClientSession() as session:
            codes = await asyncio.gather(
                *(post(session, u, a) for u, a in zip(urls, alerts, strict=True))
            )
        assert set(codes) == {200}
        await wait_for(lambda: asyncio.sleep(0, bool(recorder.received)), within=30)
        await asyncio.sleep(1.5)  # time enough for the other two replicas to start theirs
        assert len(recorder.received) == 1  # one action at a time, across three replicas
        recorder.gate.set()
        records = await settled(urls[0], len(alerts))

    assert {r["state"] for r in records} == {"succeeded"}  # the others waited, then ran
    assert hits(recorder, "/slow", "svc") == {f"svc-{i}": 1 for i in range(3)}


async def test_a_killed_replica_s_work_is_interrupted_or_taken_over_after_its_lease(
    tmp_path: Path, storage: str, recorder: Recorder
) -> None:
    recorder.gate = asyncio.Event()
    recorder.gate_path = "/slow"
    alerts = [am_alert("Stuck", labels={"svc": f"svc-{i}"}) for i in range(5)]
    settings = "guards: {max_concurrent: 1}\n"  # one runs, four wait in the replica's queue
    async with replicas(tmp_path, storage, recorder, settings=settings) as (urls, procs, _app):
        async with aiohttp.ClientSession() as session:
            for alert in alerts:
                assert await post(session, urls[0], alert) == 200
        # The first action is running on the first replica.
        await wait_for(lambda: asyncio.sleep(0, bool(recorder.received)), within=30)
        os.kill(procs[0].pid, signal.SIGKILL)
        await procs[0].wait()
        first = recorder.received[0].json()["svc"]
        recorder.gate.set()
        records = await settled(urls[1], len(alerts))

    states = {r["alert"]["labels"]["svc"]: r["state"] for r in records}
    assert states[first] == "interrupted"  # started, never run again
    assert {s for svc, s in states.items() if svc != first} == {"succeeded"}
    assert hits(recorder, "/slow", "svc") == {f"svc-{i}": 1 for i in range(5)}
    assert hits(recorder, "/page", "svc") == {first: 1}  # its on_failure ran once
    assert (await audit_verify(tmp_path)).startswith("OK ")


async def test_a_replica_stopping_keeps_its_lease_while_its_actions_finish(
    tmp_path: Path, storage: str, recorder: Recorder
) -> None:
    recorder.gate = asyncio.Event()
    recorder.gate_path = "/slow"
    settings = "shutdown_grace: 20s\n"
    async with replicas(tmp_path, storage, recorder, settings=settings) as (urls, procs, _app):
        async with aiohttp.ClientSession() as session:
            assert await post(session, urls[0], am_alert("Stuck", labels={"svc": "a"})) == 200
        await wait_for(lambda: asyncio.sleep(0, bool(recorder.received)), within=30)
        procs[0].terminate()  # a rolling update: the running action gets shutdown_grace
        await asyncio.sleep(4.0)  # twice the lease
        recorder.gate.set()
        assert await procs[0].wait() == 0
        records = await settled(urls[1], 1)

    assert [r["state"] for r in records] == ["succeeded"]  # not reported interrupted meanwhile
    assert hits(recorder, "/page", "svc") == {}


async def test_backends_terminated_mid_burst_lose_nothing_answered_200(
    tmp_path: Path, storage: str, recorder: Recorder
) -> None:
    alerts = [am_alert("Broken", labels={"svc": f"svc-{i}"}) for i in range(300)]
    async with replicas(tmp_path, storage, recorder) as (urls, _procs, app):
        answered: dict[str, int] = {}
        terminated = 0

        async def deliver(session: aiohttp.ClientSession, i: int) -> None:
            answered[f"svc-{i}"] = await post(session, urls[i % 3], alerts[i])

        async def terminate() -> None:
            """Every backend of the three replicas, three times, while the burst goes on."""
            nonlocal terminated
            admin = await asyncpg.connect(SERVER)
            try:
                await wait_for(lambda: asyncio.sleep(0, len(answered) >= 60), within=30)
                for _ in range(3):
                    terminated += len(
                        await admin.fetch(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE application_name = $1",
                            app,
                        )
                    )
                    await asyncio.sleep(0.2)
            finally:
                await admin.close()

        connector = aiohttp.TCPConnector(limit=30)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(terminate(), *(deliver(session, i) for i in range(len(alerts))))
            assert terminated > 0
            assert set(answered.values()) <= {200, 503}  # an outage is a 503, never a 500
            accepted = {svc for svc, code in answered.items() if code == 200}
            # Alertmanager sends again what was not answered 200: the replicas are back.
            async with asyncio.timeout(60):
                retry = [i for i, alert in enumerate(alerts) if f"svc-{i}" not in accepted]
                while retry:
                    await asyncio.sleep(0.5)
                    await asyncio.gather(*(deliver(session, i) for i in retry))
                    retry = [i for i in retry if answered[f"svc-{i}"] != 200]
            assert set(answered.values()) == {200}
        records = await settled(urls[2], len(alerts))

    kept = {r["alert"]["labels"]["svc"] for r in records}
    assert accepted <= kept  # nothing answered 200 is lost
    runs = hits(recorder, "/restart", "svc")
    assert len(runs) == len(alerts)
    assert max(runs.values()) == 1
    assert (await audit_verify(tmp_path)).startswith("OK ")

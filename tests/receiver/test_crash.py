"""``kill -9`` in the middle of a burst: nothing answered 200 is lost, nothing runs twice."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
from pathlib import Path

import aiohttp

from tests.conftest import ALL_BACKENDS, am_alert, am_payload
from tests.support.processes import audit_verify, free_port, serve, settled
from tests.support.recorder import Recorder

BACKENDS = ALL_BACKENDS

RULE = """
rules:
  - name: restart
    match: {{alertname: Broken}}
    target: 'svc:{{{{ labels.svc }}}}'
    actions:
      - action: http.request
        params: {{url: '{url}', json: {{svc: '{{{{ labels.svc }}}}'}}}}
        timeout: 30s
"""
ALERTS = 500


async def test_kill_9_mid_burst_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, recorder: Recorder, storage: str, backend: str
) -> None:
    recorder.delay = 0.05
    (tmp_path / "rules.yaml").write_text(RULE.format(url=recorder.url("/restart")))
    # PostgreSQL: the killed process's started work is reported once its lease runs out.
    lease = "storage_lease: 2s\n" if backend == "postgresql" else ""
    (tmp_path / "remedy.yaml").write_text(
        f"storage: '{storage}'\n{lease}"
        "dry_run: false\nrules: [rules.yaml]\nlog_level: warning\nguards: {max_concurrent: 4}\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = await serve(tmp_path, port)
    accepted: list[str] = []
    killed = asyncio.Event()

    async def post(session: aiohttp.ClientSession, svc: str) -> None:
        alert = am_alert("Broken", labels={"svc": svc})
        try:
            async with session.post(
                f"{url}/webhook/alertmanager",
                data=json.dumps(am_payload(alert)),
                headers={"Content-Type": "application/json"},
            ) as response:
                if response.status == 200:
                    accepted.append(svc)
        except aiohttp.ClientError:
            pass  # the process died under this request: it was never answered 200
        if len(accepted) >= ALERTS // 2 and not killed.is_set():
            killed.set()
            os.kill(proc.pid, signal.SIGKILL)

    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=20)) as session:
            await asyncio.gather(*(post(session, f"svc-{i}") for i in range(ALERTS)))
        await proc.wait()
        assert killed.is_set()
        assert len(recorder.received) < len(accepted)  # work was still in flight at the kill
        proc = await serve(tmp_path, port)
        remediations = await settled(url)
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()

    by_svc = {r["alert"]["labels"]["svc"]: r for r in remediations}
    assert set(accepted) <= set(by_svc)  # every alert answered 200 was kept
    assert {r["state"] for r in remediations} <= {"succeeded", "interrupted"}
    runs = collections.Counter(r.json()["svc"] for r in recorder.received)
    assert max(runs.values()) == 1  # no execution happened twice
    succeeded = {svc for svc, r in by_svc.items() if r["state"] == "succeeded"}
    assert succeeded <= set(runs)
    assert (await audit_verify(tmp_path)).startswith("OK ")

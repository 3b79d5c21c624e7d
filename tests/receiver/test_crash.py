"""``kill -9`` in the middle of a burst: nothing answered 200 is lost, nothing runs twice."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp

from receiver.store.base import FINAL_STATES
from tests.conftest import ALL_BACKENDS, am_alert, am_payload
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def serve(tmp_path: Path, port: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "receiver", "serve", "--config", "remedy.yaml"),
        *("--listen", f"127.0.0.1:{port}"),
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with aiohttp.ClientSession() as session, asyncio.timeout(30):
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return proc
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)


async def test_kill_9_mid_burst_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, recorder: Recorder, storage: str
) -> None:
    recorder.delay = 0.05
    (tmp_path / "rules.yaml").write_text(RULE.format(url=recorder.url("/restart")))
    (tmp_path / "remedy.yaml").write_text(
        f"storage: '{storage}'\n"
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
    verify = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "receiver",
        "audit",
        "verify",
        "--config",
        "remedy.yaml",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await verify.communicate()
    assert verify.returncode == 0
    assert out.decode().startswith("OK ")


async def settled(url: str) -> list[dict[str, Any]]:
    """Remediations once every one has reached a final state (60 s hang guard)."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        while True:
            async with session.get(f"{url}/api/v1/remediations") as response:
                body = await response.json()
            records: list[dict[str, Any]] = body["remediations"]
            if all(r["state"] in FINAL_STATES for r in records):
                return records
            await asyncio.sleep(0.2)

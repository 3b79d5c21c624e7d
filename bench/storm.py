"""Benchmark: an alert storm (SPEC §10) — 10,000 alerts in 60 s against a live rule.

Prints, never asserts: whether anything was lost (every alert sent is stored),
the server's peak resident memory (target: under 200 MB), and how the guards
bounded the remediations (a rate limit per target and the global breaker).
Like Alertmanager, the sender retries a webhook that answers 5xx.

Everything talks to 127.0.0.1 only. Usage:
``.venv/bin/python bench/storm.py [--alerts 10000] [--seconds 60] [--per-webhook 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import free_port, hook_server, start, stop, wait_up  # a sibling script

TARGETS = 500  # distinct instances the storm is about
RULES = """
rules:
  - name: storm-restart
    match: {{alertname: StormAlert}}
    target: 'host:{{{{ labels.instance }}}}'
    guards:
      rate_limit: {{count: 1, per: 1h}}
      cooldown: 10m
    actions:
      - action: http.request
        params: {{url: '{url}', json: {{instance: '{{{{ labels.instance }}}}'}}}}
"""
CONFIG = """
dry_run: false
rules: [rules.yaml]
log_level: warning
storage: sqlite:///{db}
guards:
  max_concurrent: 8
  max_actions: {{count: 100, per: 10m}}
"""


def webhook(first: int, count: int) -> bytes:
    """Alerts ``first`` .. ``first + count - 1``: distinct occurrences, on ``TARGETS`` hosts."""
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": "StormAlert", "instance": f"host-{n % TARGETS}:9100"},
            "annotations": {"summary": "storm"},
            "startsAt": f"2026-11-24T05:{n // 6000 % 60:02d}:{n // 100 % 60:02d}.{n % 100:03d}Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": f"{n:016x}",
        }
        for n in range(first, first + count)
    ]
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="StormAlert"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "remedy",
        "groupLabels": {"alertname": "StormAlert"},
        "commonLabels": {"alertname": "StormAlert"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "alerts": alerts,
    }
    return json.dumps(body).encode()


async def send_storm(url: str, total: int, seconds: float, per: int) -> dict[str, int]:
    """Send ``total`` alerts, ``per`` to a webhook, evenly over ``seconds``; retry 5xx."""
    counts = {"webhooks": 0, "retries": 0, "refused": 0}
    gate = asyncio.Semaphore(64)
    async with aiohttp.ClientSession() as session:

        async def deliver(first: int) -> None:
            body = webhook(first, min(per, total - first))
            async with gate:
                for _ in range(120):  # about a minute of retries at most, as a bound
                    async with session.post(
                        url + "/webhook/alertmanager",
                        data=body,
                        headers={"Content-Type": "application/json"},
                    ) as response:
                        await response.read()
                        if response.status == 200:
                            counts["webhooks"] += 1
                            return
                        if response.status < 500:
                            counts["refused"] += 1
                            return
                    counts["retries"] += 1
                    await asyncio.sleep(0.5)

        tasks = []
        interval = seconds / max(1, total // per)
        begin = time.monotonic()
        for i, first in enumerate(range(0, total, per)):
            await asyncio.sleep(max(0.0, begin + i * interval - time.monotonic()))
            tasks.append(asyncio.create_task(deliver(first)))
        await asyncio.gather(*tasks)
    return counts


async def settled(url: str) -> None:
    """Wait until nothing is queued or running (bounded: five minutes)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(3000):
            async with session.get(url + "/api/v1/status") as response:
                status: dict[str, Any] = await response.json()
            busy = status["remediations"].get("queued", 0) + status["remediations"].get(
                "running", 0
            )
            if status["queue_depth"] == 0 and busy == 0:
                return
            await asyncio.sleep(0.1)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--per-webhook", type=int, default=10)
    args = parser.parse_args()

    hooks = 0

    async def record(request: web.Request) -> web.Response:
        nonlocal hooks
        await request.read()
        hooks += 1
        return web.json_response({})

    runner, hook = await hook_server(record)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "storm.db"
        (work / "rules.yaml").write_text(RULES.format(url=hook))
        (work / "storm.yaml").write_text(CONFIG.format(db=db))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        python = sys.executable
        server = start(
            [python, "-m", "receiver", "serve", "--config", "storm.yaml", "--listen", url[7:]],
            work,
        )
        try:
            await wait_up(url)
            began = time.monotonic()
            counts = await send_storm(url, args.alerts, args.seconds, args.per_webhook)
            sent_in = time.monotonic() - began
            await settled(url)
            rss = peak_rss_mb(server.pid)
        finally:
            stop(server)
            await runner.cleanup()
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
            states = dict(
                conn.execute("SELECT state, COUNT(*) FROM remediations GROUP BY state").fetchall()
            )
            reasons = dict(
                conn.execute(
                    "SELECT reason, COUNT(*) FROM remediations WHERE state = 'skipped'"
                    " GROUP BY reason"
                ).fetchall()
            )

    print(f"storm: {args.alerts} alerts in {counts['webhooks']} webhooks over {sent_in:.0f} s")
    print(
        f"  stored            {stored:8d}   {'nothing lost' if stored == args.alerts else 'LOST'}"
    )
    print(f"  5xx retried       {counts['retries']:8d}   refused (4xx) {counts['refused']}")
    print(f"  peak RSS          {rss:8.1f} MB   (target < 200 MB)")
    print(f"  actions run       {hooks:8d}   (guards: 1 per host per hour, 100 per 10m)")
    print(f"  remediations      {json.dumps(states, sort_keys=True)}")
    print(f"  skipped because   {json.dumps(reasons, sort_keys=True)}")


if __name__ == "__main__":
    asyncio.run(main())

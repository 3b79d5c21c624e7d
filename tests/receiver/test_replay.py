"""``remedy replay`` decides as the live service does on the same stream."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import StartRemedy, am_alert, am_payload

RULES = """
rules:
  - name: restart
    match: {alertname: Broken}
    target: 'svc:{{ labels.svc }}'
    guards:
      rate_limit: {count: 3, per: 1h}
    actions:
      - action: http.request
        params: {url: 'http://127.0.0.1:1/restart', json: {svc: '{{ labels.svc }}'}}
  - name: drain-node
    match: {alertname: Broken, matchers: ['severity="critical"']}
    target: 'node:{{ labels.node }}'
    guards:
      cooldown: 10m
      blast_radius: {scope: '{{ labels.zone }}', max_targets: 3, per: 1h}
    actions:
      - action: http.request
        params: {url: 'http://127.0.0.1:1/drain/{{ labels.node }}'}
  - name: page-on-resolve
    match: {alertname: Broken, status: resolved}
    target: 'svc:{{ labels.svc }}'
    actions:
      - action: http.request
        params: {url: 'http://127.0.0.1:1/page'}
"""


def stream(count: int) -> list[dict[str, object]]:
    """``count`` alerts over 40 services, 7 nodes in 2 zones; some resolve later."""
    alerts = []
    for i in range(count):
        labels = {
            "svc": f"svc-{i % 40}",
            "node": f"node-{i % 7}",
            "zone": "zone-a" if i % 7 < 3 else "zone-b",
            "severity": "critical" if i % 3 == 0 else "warning",
        }
        starts = f"2026-11-24T{4 + i // 3600:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z"
        alert = am_alert("Broken", labels=labels, starts_at=starts)
        alerts.append(alert)
        if i % 7 == 6:
            alerts.append({**alerts[-7], "status": "resolved"})
    return alerts


async def test_replay_decides_like_the_live_service(remedy: StartRemedy, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    server = await remedy(rules=(str(tmp_path / "rules.yaml"),), max_actions=(400, 3600.0))
    lines = []
    for alert in stream(1000):
        received_at = datetime.now(UTC).isoformat()
        body = am_payload(alert)
        status, _ = await server.post_alerts(body)
        assert status == 200
        await server.settle()
        lines.append(json.dumps({"received_at": received_at, "body": body}))
    _, live = await server.get_json("/api/v1/remediations")
    live_decisions = [
        (r["rule"], r["target"], r["state"], r["reason"]) for r in live["remediations"]
    ]
    (tmp_path / "stream.ndjson").write_text("\n".join(lines) + "\n")
    (tmp_path / "remedy.yaml").write_text(
        "rules: [rules.yaml]\ndry_run: true\nguards: {max_actions: {count: 400, per: 1h}}\n"
    )
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "receiver", "replay", "stream.ndjson"),
        *("--config", "remedy.yaml", "--json"),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=300)
    assert proc.returncode == 0, stderr.decode()
    report = json.loads(stdout)
    replayed = [(d["rule"], d["target"], d["decision"]) for d in report["decisions"]]
    expected = [
        (rule, target, "would_run" if state == "dry_run" else (reason or state))
        for rule, target, state, reason in live_decisions
    ]
    assert replayed == expected
    totals = report["totals"]
    # the stream exercises several guards, so agreement is not trivial
    assert totals["would_run"] > 100
    assert totals["rate_limited"] > 100
    assert totals["cooldown"] > 10
    assert totals["breaker_open"] > 10
    assert sum(totals.values()) == len(live_decisions)


def test_replay_rejects_a_bad_line_in_one_line(tmp_path: Path) -> None:
    good = json.dumps({"received_at": "2026-11-24T06:00:00Z", "body": am_payload(am_alert())})
    (tmp_path / "s.ndjson").write_text(good + "\n" + '{"received_at": "soon"}\n')
    result = subprocess.run(
        [sys.executable, "-m", "receiver", "replay", "s.ndjson"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "remedy: error: invalid alert: s.ndjson:2.received_at: not an RFC 3339 time\n"
    )


TIMED = """
rules:
  - name: warm
    match: {alertname: Slow}
    for: 1m
    target: 'svc:{{ labels.svc }}'
    guards: {cooldown: 5m}
    actions:
      - action: http.request
        params: {url: 'http://127.0.0.1:1/warm'}
"""


def test_timers_fire_at_their_own_time_in_replay(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(TIMED)
    (tmp_path / "remedy.yaml").write_text("rules: [rules.yaml]\n")
    lines = [
        {"received_at": "2026-11-24T05:00:00Z", "starts": "2026-11-24T05:00:00Z"},
        {"received_at": "2026-11-24T05:10:00Z", "starts": "2026-11-24T05:10:00Z"},
        {"received_at": "2026-11-24T05:20:00Z", "starts": "2026-11-24T05:20:00Z"},
    ]
    stream = "\n".join(
        json.dumps(
            {
                "received_at": line["received_at"],
                "body": am_payload(am_alert("Slow", labels={"svc": "a"}, starts_at=line["starts"])),
            }
        )
        for line in lines
    )
    (tmp_path / "s.ndjson").write_text(stream + "\n")

    def run(*extra: str) -> list[tuple[str, str]]:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "receiver",
                "replay",
                "s.ndjson",
                "--config",
                "remedy.yaml",
                "--json",
                *extra,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return [(d["decision"], d["at"]) for d in json.loads(result.stdout)["decisions"]]

    # each fires one minute after it arrived, 10 minutes apart: past the 5m cooldown
    assert run() == [
        ("would_run", "2026-11-24T05:01:00.000Z"),
        ("would_run", "2026-11-24T05:11:00.000Z"),
        ("waiting", "2026-11-24T05:20:00.000Z"),
    ]
    assert run("--until", "5m")[-1] == ("would_run", "2026-11-24T05:21:00.000Z")

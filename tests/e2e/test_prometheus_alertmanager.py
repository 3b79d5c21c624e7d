"""A compose service dies and comes back, with nothing faked on the way.

Real Prometheus scrapes a busybox httpd in a podman container and evaluates
the ServiceDown rule of deploy/prometheus/rules.yml; real Alertmanager, on
deploy/alertmanager/alertmanager.yml, posts it to remedy with a bearer token;
remedy runs the shipped rule ``service-down-restart-compose`` through podman's
Docker API; Prometheus sees the target up again and Alertmanager's resolved
notification verifies the remediation in the audit log. Only the timings are
shortened (and the addresses and token file are the test's own).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from receiver.auth import Token
from receiver.config import AuthConfig
from rules import DEFAULT_RULES_DIR
from tests.conftest import RemedyClient, StartRemedy
from tests.support.podman import BUSYBOX, Podman
from tests.support.prometheus import Monitoring, free_port

T = TypeVar("T")

RULE = "service-down-restart-compose"
WEBHOOK_TOKEN = "am-webhook-secret"
VIEWER_TOKEN = "viewer-secret"
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
DEADLINE = 90.0  # seconds; a hang guard, not a speed requirement
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def shipped_rule(name: str, changes: Mapping[str, Any]) -> str:
    """Rule ``name`` of the shipped rules/defaults/compose.yaml as rule text, with ``changes``."""
    shipped = yaml.safe_load((DEFAULT_RULES_DIR / "compose.yaml").read_text())
    (rule,) = [rule for rule in shipped["rules"] if rule["name"] == name]
    for key, value in changes.items():
        if isinstance(value, dict):
            rule[key] = {**rule[key], **value}
        else:
            rule[key] = value
    return yaml.safe_dump({"rules": [rule]}, sort_keys=False)


def deployed_alertmanager(webhook: str, token_file: Path) -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml, sending to ``webhook`` within a second."""
    config: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    )
    config["route"].update(group_wait="1s", group_interval="1s")
    (receiver,) = [r for r in config["receivers"] if r["name"] == "remedy"]
    (hook,) = receiver["webhook_configs"]
    hook["url"] = webhook
    hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    return config


def deployed_service_down() -> dict[str, Any]:
    """The ServiceDown alert of deploy/prometheus/rules.yml, firing without its ``for``."""
    groups = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == "ServiceDown"]
    return {"groups": [{"name": "e2e", "rules": [{**rule, "for": "0s"}]}]}


def metrics_server(port: int) -> list[str]:
    """A container command: write a metrics page, then serve it on 127.0.0.1:``port``."""
    page = "# TYPE shop_web_ready gauge\\nshop_web_ready 1\\n"
    script = (
        f"{BUSYBOX} mkdir -p /www && {BUSYBOX} printf '{page}' > /www/metrics"
        f" && exec {BUSYBOX} httpd -f -p 127.0.0.1:{port} -h /www"
    )
    return ["/bin/sh", "-c", script]


async def eventually(
    what: str,
    check: Callable[[], Awaitable[T | None]],
    diagnose: Callable[[], Awaitable[str]],
) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"{what}: not seen within {DEADLINE:.0f}s\n{await diagnose()}")
        await asyncio.sleep(0.2)


async def audit(server: RemedyClient, **query: str) -> list[dict[str, Any]]:
    """Audit events, oldest first, read with the viewer token."""
    status, body = await server.get_json(
        "/api/v1/audit", params={"limit": "1000", **query}, headers=VIEWER
    )
    assert status == 200, body
    return list(reversed(body["events"]))


async def test_a_dead_compose_service_is_restarted_and_verified(
    remedy: StartRemedy, podman_engine: Podman, monitoring: Monitoring, tmp_path: Path
) -> None:
    project, service = f"shop{uuid.uuid4().hex[:8]}", "web"
    target_port = free_port()
    container = podman_engine.run_command(
        metrics_server(target_port),
        name=f"prod-{project}-{service}-1",
        labels={"com.docker.compose.project": project, "com.docker.compose.service": service},
        network="host",  # Prometheus scrapes it on the host's loopback
    )

    server = await remedy(
        shipped_rule(RULE, {"for": "1s", "verify": {"resolved_within": "2m"}}),
        dry_run=False,
        docker_url=podman_engine.url,
        allow={"docker": (f"^prod-{project}-",)},
        auth=AuthConfig(
            webhook_tokens=(Token("alertmanager", WEBHOOK_TOKEN),),
            api_tokens=(Token("e2e", VIEWER_TOKEN, "viewer"),),
        ),
    )
    webhook = f"http://127.0.0.1:{server.client.server.port}/webhook/alertmanager"
    token_file = tmp_path / "webhook-token"
    token_file.write_text(WEBHOOK_TOKEN)
    alertmanager = await monitoring.alertmanager(deployed_alertmanager(webhook, token_file))
    job = f"{project}-{service}"
    prometheus = await monitoring.prometheus(
        {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",  # at most the interval; a slow scrape is not a dead one
                "evaluation_interval": "1s",
            },
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [alertmanager.url.removeprefix("http://")]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": job,
                    "static_configs": [
                        {
                            "targets": [f"127.0.0.1:{target_port}"],
                            # what deploy/prometheus relabels from Docker service discovery
                            "labels": {
                                "compose_project": project,
                                "compose_service": service,
                                "container": container,
                            },
                        }
                    ],
                }
            ],
        },
        rules=deployed_service_down(),
    )

    async def diagnose() -> str:
        events = await audit(server)
        timeline = "\n".join(
            f"{e['event']} {e['alert'].get('status') if e.get('alert') else ''}"
            f" {e.get('reason') or ''} {e.get('error') or ''}"
            for e in events
        )
        logs = await asyncio.to_thread(podman_engine.logs, container)
        return (
            f"{monitoring.tails()}\n--- container {container} ---\n{logs}\n"
            f"--- remedy audit ---\n{timeline}"
        )

    up = f'up{{job="{job}"}}'
    await eventually("the target scraped up", lambda: _equals(prometheus.value(up), 1.0), diagnose)
    started_before = podman_engine.inspect(container)["StartedAt"]

    # The service dies; only remedy's restart brings it back. The podman CLI
    # runs in a thread, so that remedy, on this event loop, keeps answering.
    await asyncio.to_thread(podman_engine.stop, container)

    firing = f'ALERTS{{alertname="ServiceDown", alertstate="firing", job="{job}"}}'
    await eventually(
        "Prometheus firing ServiceDown",
        lambda: prometheus.query(f"max_over_time({firing}[10m])"),
        diagnose,
    )

    async def restarted() -> bool:
        state = await asyncio.to_thread(podman_engine.inspect, container)
        return state["Status"] == "running" and state["StartedAt"] != started_before

    await eventually("remedy restarting the container", restarted, diagnose)
    await eventually(
        "the target scraped up again", lambda: _equals(prometheus.value(up), 1.0), diagnose
    )

    async def verified() -> list[dict[str, Any]]:
        return await audit(server, rule=RULE, outcome="verified")

    (done,) = await eventually("the remediation verified", verified, diagnose)
    fingerprint = done["alert"]["fingerprint"]
    events = await audit(server, alert=fingerprint)
    # The remediation's own events, in order. Where Alertmanager's resolved
    # notification falls among them is a race: it may even come between the
    # restart and its record (the target is up as soon as it starts), and then
    # remedy verifies at once. Either way it comes after the restart began.
    steps = [e["event"] for e in events if e["alert"]["status"] == "firing"]
    assert steps == ["received", "matched", "started", "succeeded", "verified"], await diagnose()
    order = [(e["event"], e["alert"]["status"]) for e in events]
    resolved = order.index(("received", "resolved"))
    assert order.index(("started", "firing")) < resolved < order.index(("verified", "firing"))
    assert order.count(("received", "resolved")) == 1, await diagnose()
    assert {e["alert"]["source"] for e in events} == {"alertmanager"}
    assert {e["alert"]["labels"]["compose_project"] for e in events} == {project}
    (succeeded,) = [e for e in events if e["event"] == "succeeded"]
    assert succeeded["target"] == f"container:{container}"
    assert [c["after"]["name"] for c in succeeded["result"]["containers"]] == [container]

    # Both notifications came from Alertmanager itself, with its bearer token: it
    # counts none failed, and the same post without the token is refused.
    assert (
        await alertmanager.counter("alertmanager_notifications_total", integration="webhook") >= 2
    )
    assert (
        await alertmanager.counter("alertmanager_notifications_failed_total", integration="webhook")
        == 0
    ), monitoring.tails()
    status, _ = await server.post_alerts({"version": "4", "alerts": []})
    assert status == 401

    status, body = await server.get_json("/api/v1/audit/verify", headers=VIEWER)
    assert status == 200
    assert body["ok"] is True, body


async def _equals(value: Awaitable[float | None], expected: float) -> bool:
    return await value == expected

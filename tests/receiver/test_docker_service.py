"""docker.restart through the whole service: an Alertmanager webhook in, the audit record out."""

from __future__ import annotations

import uuid

from tests.conftest import StartRemedy, am_alert, am_payload
from tests.support.podman import Podman

RULE = """
rules:
  - name: restart-down-service
    match: {alertname: ServiceDown}
    target: 'docker:{{ labels.container }}'
    actions:
      - action: docker.restart
        params: {container: '{{ labels.container }}', timeout: 1s}
"""


async def test_service_down_restarts_the_container(
    remedy: StartRemedy, podman_engine: Podman
) -> None:
    name = podman_engine.run(name=f"prod-{uuid.uuid4().hex[:8]}")
    before = podman_engine.inspect(name)["StartedAt"]
    server = await remedy(
        RULE, dry_run=False, docker_url=podman_engine.url, allow={"docker": ("^prod-",)}
    )
    status, _ = await server.post_alerts(am_payload(am_alert(labels={"container": name})))
    assert status == 200
    await server.settle()
    assert podman_engine.inspect(name)["StartedAt"] != before
    (succeeded,) = await server.events(outcome="succeeded")
    (changed,) = succeeded["result"]["containers"]
    assert changed["before"]["started_at"] != changed["after"]["started_at"]
    assert changed["after"]["status"] == "running"
    assert succeeded["target"] == f"docker:{name}"


async def test_a_name_outside_the_allow_list_never_reaches_the_engine(
    remedy: StartRemedy, podman_engine: Podman
) -> None:
    name = podman_engine.run(name=f"dev-{uuid.uuid4().hex[:8]}")
    before = podman_engine.inspect(name)["StartedAt"]
    server = await remedy(
        RULE, dry_run=False, docker_url=podman_engine.url, allow={"docker": ("^prod-",)}
    )
    await server.post_alerts(am_payload(am_alert(labels={"container": name})))
    await server.settle()
    (denied,) = await server.events(outcome="denied")
    assert denied["error"] == f"docker.restart: {name} is outside backends.docker.allow"
    assert podman_engine.inspect(name)["StartedAt"] == before


async def test_a_missing_container_fails_with_the_engines_reason(
    remedy: StartRemedy, podman_engine: Podman
) -> None:
    server = await remedy(RULE, dry_run=False, docker_url=podman_engine.url)
    await server.post_alerts(am_payload(am_alert(labels={"container": "prod-gone"})))
    await server.settle()
    (failed,) = await server.events(outcome="failed")
    assert failed["error"].startswith("container prod-gone: ")
    assert "404" in failed["error"]


COMPOSE = """
rules:
  - name: restart-compose-service
    match: {alertname: ServiceDown}
    target: 'compose:{{ labels.project }}/{{ labels.service }}'
    actions:
      - action: docker.restart
        params: {service: '{{ labels.service }}', project: '{{ labels.project }}', timeout: 1s}
"""


async def test_service_down_restarts_a_compose_service(
    remedy: StartRemedy, podman_engine: Podman
) -> None:
    project = f"shop{uuid.uuid4().hex[:8]}"
    compose = {"com.docker.compose.project": project, "com.docker.compose.service": "web"}
    name = podman_engine.run(labels=compose)
    before = podman_engine.inspect(name)["StartedAt"]
    server = await remedy(COMPOSE, dry_run=False, docker_url=podman_engine.url)
    alert = am_alert(labels={"project": project, "service": "web"})
    await server.post_alerts(am_payload(alert))
    await server.settle()
    (succeeded,) = await server.events(outcome="succeeded")
    assert [c["after"]["name"] for c in succeeded["result"]["containers"]] == [name]
    assert podman_engine.inspect(name)["StartedAt"] != before


async def test_a_label_selection_is_checked_against_the_allow_list_when_found(
    remedy: StartRemedy, podman_engine: Podman
) -> None:
    project = f"shop{uuid.uuid4().hex[:8]}"
    compose = {"com.docker.compose.project": project, "com.docker.compose.service": "web"}
    podman_engine.run(name=f"prod-{uuid.uuid4().hex[:8]}", labels=compose)
    server = await remedy(
        COMPOSE, dry_run=False, docker_url=podman_engine.url, allow={"docker": ("^prod-",)}
    )
    await server.post_alerts(am_payload(am_alert(labels={"project": project, "service": "web"})))
    await server.settle()
    assert len(await server.events(outcome="succeeded")) == 1
    stray = podman_engine.run(name=f"dev-{uuid.uuid4().hex[:8]}", labels=compose)
    before = podman_engine.inspect(stray)["StartedAt"]
    again = am_alert(
        labels={"project": project, "service": "web"}, starts_at="2026-11-24T06:00:00Z"
    )
    await server.post_alerts(am_payload(again))
    await server.settle()
    (failed,) = await server.events(outcome="failed")
    assert f"container {stray} is outside backends.docker.allow" in failed["error"]
    assert podman_engine.inspect(stray)["StartedAt"] == before

"""The Docker actions against a real engine: podman serving the Docker API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiodocker
import aiohttp
import pytest

from remediations import ActionContext, ParamError, PermanentError
from remediations.docker.restart import DockerRestart
from remediations.docker.start import DockerStart
from remediations.docker.stop import DockerStop
from tests.support.podman import Podman


@pytest.fixture
async def ctx(podman_engine: Podman) -> AsyncIterator[ActionContext]:
    async with aiohttp.ClientSession() as session:
        docker = aiodocker.Docker(url=podman_engine.url)
        try:
            yield ActionContext(http=session, docker=docker)
        finally:
            await docker.close()


async def test_restart_really_restarts(podman_engine: Podman, ctx: ActionContext) -> None:
    name = podman_engine.run()
    before = podman_engine.inspect(name)["StartedAt"]
    action = DockerRestart()
    result = await action.run(action.parse({"container": name, "timeout": "1s"}), ctx)
    (changed,) = result["containers"]
    assert changed["before"]["name"] == changed["after"]["name"] == name
    assert changed["after"]["status"] == "running"
    assert changed["after"]["started_at"] != changed["before"]["started_at"]
    after = podman_engine.inspect(name)
    assert after["Status"] == "running"
    assert after["StartedAt"] != before


async def test_restart_by_compose_service(podman_engine: Podman, ctx: ActionContext) -> None:
    project = f"shop{uuid.uuid4().hex[:8]}"
    labels = {"com.docker.compose.project": project, "com.docker.compose.service": "web"}
    service = {**labels, "com.docker.compose.oneoff": "False"}  # as compose labels them
    web = [podman_engine.run(labels=service), podman_engine.run(labels=labels)]
    other = podman_engine.run(labels={**labels, "com.docker.compose.service": "db"})
    # `docker compose run web ./migrate`: a one-off container of the same service
    migration = podman_engine.run(labels={**labels, "com.docker.compose.oneoff": "True"})
    podman_engine.stop(migration)
    before = {name: podman_engine.inspect(name)["StartedAt"] for name in [*web, other]}
    action = DockerRestart()
    params = action.parse({"service": "web", "project": project, "timeout": "1s"})
    result = await action.run(params, ctx)
    assert sorted(c["after"]["name"] for c in result["containers"]) == sorted(web)
    for name in web:
        assert podman_engine.inspect(name)["StartedAt"] != before[name]
    assert podman_engine.inspect(other)["StartedAt"] == before[other]
    assert podman_engine.inspect(migration)["Status"] == "exited"  # not started again


async def test_a_missing_container_is_a_permanent_failure(ctx: ActionContext) -> None:
    action = DockerRestart()
    with pytest.raises(PermanentError, match=r"container no-such-box: .*404"):
        await action.run(action.parse({"container": "no-such-box"}), ctx)
    with pytest.raises(PermanentError, match="no container is labelled"):
        await action.run(action.parse({"service": "no-such-service"}), ctx)


async def test_stop_then_start(podman_engine: Podman, ctx: ActionContext) -> None:
    name = podman_engine.run()
    stop, start = DockerStop(), DockerStart()
    await stop.run(stop.parse({"container": name, "timeout": "1s"}), ctx)
    assert podman_engine.inspect(name)["Status"] == "exited"
    result = await start.run(start.parse({"container": name}), ctx)
    assert result["containers"][0]["after"]["status"] == "running"
    assert podman_engine.inspect(name)["Status"] == "running"


async def test_containers_found_by_label_obey_the_allow_list(
    podman_engine: Podman, ctx: ActionContext
) -> None:
    name = podman_engine.run(labels={"team": "payments"})
    before = podman_engine.inspect(name)["StartedAt"]
    guarded = ActionContext(
        http=ctx.http, docker=ctx.docker, allowed=lambda subject: subject.startswith("prod-")
    )
    action = DockerRestart()
    with pytest.raises(PermanentError, match=r"outside backends\.docker\.allow"):
        await action.run(action.parse({"labels": {"team": "payments"}}), guarded)
    assert podman_engine.inspect(name)["StartedAt"] == before


async def test_without_a_configured_engine_it_fails_clearly() -> None:
    async with aiohttp.ClientSession() as session:
        action = DockerRestart()
        with pytest.raises(PermanentError, match=r"backends\.docker is not configured"):
            await action.run(action.parse({"container": "x"}), ActionContext(http=session))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "container"),
        ({"container": "a", "service": "b"}, "container"),
        ({"project": "p"}, "project"),
        ({"labels": {"a": 1}}, "labels.a"),
        ({"container": "a", "timeout": "soon"}, "timeout"),
        ({"container": "a", "signal": "KILL"}, "signal"),
    ],
)
def test_bad_params_name_the_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(ParamError) as caught:
        DockerRestart().parse(params)
    assert caught.value.field == field

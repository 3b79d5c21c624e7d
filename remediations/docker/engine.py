"""What the Docker actions share: finding containers, reading their state, and errors.

aiodocker's ``DockerError`` is translated here, once, into the two error
kinds the executor understands: a missing container or a refused request is
permanent, an engine in trouble (5xx, a dropped connection) is temporary.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, TypeVar

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer
from aiodocker.exceptions import DockerError

from remediations.base import ActionContext, ParamError, PermanentError, TemporaryError
from remediations.params import Fields

T = TypeVar("T")

COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"  # "True" on `docker compose run` containers
PARAMS = ("container", "labels", "service", "project", "timeout")


@dataclasses.dataclass(frozen=True, slots=True)
class Selection:
    """Which containers an action acts on: one by name or id, or all with given labels."""

    container: str | None
    labels: Mapping[str, str]
    timeout: int

    def describe(self) -> str:
        """The selection as messages and allow-lists see it."""
        if self.container is not None:
            return self.container
        return ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))


def parse_selection(params: Mapping[str, Any]) -> Selection:
    """``container`` (name or id), or ``labels`` / ``service`` + ``project`` (compose).

    ``timeout`` is the stop timeout given to the engine, in seconds (default 10s).
    """
    fields = Fields(params, PARAMS)
    container = fields.string("container") if fields.has("container") else None
    labels: dict[str, str] = {}
    if fields.has("labels"):
        for key, value in fields.mapping("labels").items():
            if not isinstance(value, str) or not value:
                raise ParamError(f"labels.{key}", f"expected a non-empty string, got {value!r}")
            labels[key] = value
    if fields.has("service"):
        labels[COMPOSE_SERVICE] = fields.string("service")
    if fields.has("project"):
        if COMPOSE_SERVICE not in labels:
            raise ParamError("project", "goes with service (a compose service in a project)")
        labels[COMPOSE_PROJECT] = fields.string("project")
    if (container is None) == (not labels):
        raise ParamError("container", "give exactly one of container, or labels / service")
    timeout = fields.duration("timeout", "10s")
    return Selection(container, labels, max(0, round(timeout)))


def engine(ctx: ActionContext) -> aiodocker.Docker:
    """The service's Docker client; a permanent error when none is configured."""
    if ctx.docker is None:
        raise PermanentError("backends.docker is not configured in remedy.yaml")
    return ctx.docker


async def call(what: str, operation: Callable[[], Awaitable[T]]) -> T:
    """Run one engine call, translating its errors into permanent or temporary ones."""
    try:
        return await operation()
    except DockerError as exc:
        message = f"{what}: {exc.message} (engine answered {exc.status})"
        if exc.status == 404:
            raise PermanentError(message) from None
        if exc.status >= 500 or exc.status == 409:
            raise TemporaryError(message) from None
        raise PermanentError(message) from None
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise TemporaryError(
            f"{what}: cannot reach the Docker engine ({type(exc).__name__})"
        ) from None


async def containers(ctx: ActionContext, selection: Selection) -> list[DockerContainer]:
    """The selected containers; none at all is a permanent error naming the selection."""
    docker = engine(ctx)
    if selection.container is not None:
        name = selection.container
        found = [await call(f"container {name}", lambda: docker.containers.get(name))]
    else:
        filters = {"label": [f"{k}={v}" for k, v in sorted(selection.labels.items())]}
        listed = await call(
            f"containers labelled {selection.describe()}",
            lambda: docker.containers.list(all=True, filters=filters),
        )
        # A compose service is its long-running containers: a one-off `docker
        # compose run` (a migration, a shell) is never restarted or started again.
        found = [c for c in listed if (c["Labels"] or {}).get(COMPOSE_ONEOFF) != "True"]
        if not found:
            raise PermanentError(f"no container is labelled {selection.describe()}")
    for container in found:
        name = (await state(container))["name"]
        if not ctx.allowed(name):
            raise PermanentError(f"container {name} is outside backends.docker.allow")
    return found


async def state(container: DockerContainer) -> dict[str, Any]:
    """Id, name, status and StartedAt: what the audit log shows before and after."""
    info = await call(f"container {container.id[:12]}", container.show)
    current = info.get("State", {})
    return {
        "id": info.get("Id", container.id)[:12],
        "name": str(info.get("Name", "")).lstrip("/"),
        "status": current.get("Status"),
        "started_at": current.get("StartedAt"),
    }


class ContainerAction:
    """The shape every container action shares; a subclass names the engine operation."""

    name: ClassVar[str]
    verb: ClassVar[str]

    def parse(self, params: Mapping[str, Any]) -> Selection:
        """``container``, or ``labels`` / ``service`` + ``project``, and ``timeout``."""
        return parse_selection(params)

    def subject(self, params: Selection) -> str | None:
        """The container name ``backends.docker.allow`` must admit.

        ``None`` for a label selection: the names are known only when the
        engine answers, and each found container is checked then, before it
        is touched.
        """
        return params.container

    async def operate(self, container: DockerContainer, selection: Selection) -> None:
        """The engine call on one container."""
        raise NotImplementedError

    async def run(self, params: Selection, ctx: ActionContext) -> Mapping[str, Any]:
        """Act on each selected container; report its state before and after."""
        changed = []
        for container in await containers(ctx, params):
            before = await state(container)
            operation = functools.partial(self.operate, container, params)
            await call(f"{self.verb} {before['name']}", operation)
            changed.append({"before": before, "after": await state(container)})
        return {"containers": changed}

"""``docker.restart``: restart a container, or every container of a compose service.

The runbook's ``docker-compose restart SERVICE``, through the engine API.

Params:
    container: name or id, or
    service (+ project): the compose service's containers (not one-off ``run`` ones), or
    labels: a mapping of labels every selected container carries
    timeout: how long the engine waits for a clean stop before killing (default 10s)

Permissions: the Docker Engine API on ``backends.docker.url``: container list,
inspect and restart (``POST /containers/{id}/restart``).

Example::

    - action: docker.restart
      params: {service: '{{ labels.service }}', project: shop, timeout: 20s}
"""

from __future__ import annotations

from typing import ClassVar

from aiodocker.containers import DockerContainer

from remediations.docker.engine import ContainerAction, Selection


class DockerRestart(ContainerAction):
    """Restart the selected containers; the result shows StartedAt before and after."""

    name: ClassVar[str] = "docker.restart"
    verb: ClassVar[str] = "restart"

    async def operate(self, container: DockerContainer, selection: Selection) -> None:
        """``POST /containers/{id}/restart?t=timeout``."""
        await container.restart(t=selection.timeout)

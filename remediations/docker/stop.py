"""``docker.stop``: stop a container (or a compose service's containers).

Params: as ``docker.restart``; ``timeout`` is the grace before the engine kills.

Permissions: the Docker Engine API: container list, inspect and stop
(``POST /containers/{id}/stop``).

Example::

    - action: docker.stop
      params: {container: '{{ labels.container }}', timeout: 30s}
"""

from __future__ import annotations

from typing import ClassVar

from aiodocker.containers import DockerContainer

from remediations.docker.engine import ContainerAction, Selection


class DockerStop(ContainerAction):
    """Stop the selected containers."""

    name: ClassVar[str] = "docker.stop"
    verb: ClassVar[str] = "stop"

    async def operate(self, container: DockerContainer, selection: Selection) -> None:
        """``POST /containers/{id}/stop?t=timeout``."""
        await container.stop(t=selection.timeout)

"""``docker.start``: start a stopped container (or a compose service's containers).

Params: as ``docker.restart`` (``timeout`` is accepted and unused).

Permissions: the Docker Engine API: container list, inspect and start
(``POST /containers/{id}/start``).

Example::

    - action: docker.start
      params: {container: '{{ labels.container }}'}
"""

from __future__ import annotations

from typing import ClassVar

from aiodocker.containers import DockerContainer

from remediations.docker.engine import ContainerAction, Selection


class DockerStart(ContainerAction):
    """Start the selected containers."""

    name: ClassVar[str] = "docker.start"
    verb: ClassVar[str] = "start"

    async def operate(self, container: DockerContainer, selection: Selection) -> None:
        """``POST /containers/{id}/start``."""
        del selection
        await container.start()

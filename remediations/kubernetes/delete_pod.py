"""``kubernetes.delete_pod``: delete a pod by name, or the pods a selector finds, up to ``max``.

Its controller recreates a deleted pod: the ``kubectl delete pod`` restart.
A selector that finds more pods than ``max`` deletes none and fails, rather
than take down more than the rule allows. A deletion ignores the
PodDisruptionBudgets that protect the pods; ``kubernetes.evict_pod`` honours them
and is the one to use for pods that serve.

Params:
    namespace: the pods' namespace
    name: one pod, or
    selector: a label selector (``app=web,tier=front``)
    max: how many pods it may delete (default 1)

Permissions (RBAC): core ``pods``: get, list, delete.

Example::

    - action: kubernetes.delete_pod
      params: {namespace: shop, name: '{{ labels.pod }}'}
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from kubernetes_asyncio import client

from remediations.base import ActionContext
from remediations.kubernetes.cluster import call
from remediations.kubernetes.pods import PodAction


class DeletePod(PodAction):
    """Delete pods so their controller starts fresh ones."""

    name: ClassVar[str] = "kubernetes.delete_pod"
    done: ClassVar[str] = "deleted"
    doing: ClassVar[str] = "deleting"

    async def act(
        self,
        core: client.CoreV1Api,
        namespace: str,
        name: str,
        ctx: ActionContext,
        result: dict[str, Any],
    ) -> bool:
        """Delete one pod (a pod that is not there is an error, as for kubectl delete)."""
        del ctx, result
        await call(
            f"pod {name} in {namespace}",
            functools.partial(core.delete_namespaced_pod, name, namespace),
        )
        return True

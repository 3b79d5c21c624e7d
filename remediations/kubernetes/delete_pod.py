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
from collections.abc import Mapping
from typing import Any, ClassVar

from kubernetes_asyncio import client

from remediations.base import ActionContext, TemporaryError
from remediations.kubernetes.cluster import api, call
from remediations.kubernetes.pods import PodsParams, partial_run


class DeletePod:
    """Delete pods so their controller starts fresh ones."""

    name: ClassVar[str] = "kubernetes.delete_pod"

    def parse(self, params: Mapping[str, Any]) -> PodsParams:
        """See the module docstring."""
        return PodsParams.parse(params)

    def subject(self, params: PodsParams) -> str:
        """The namespace ``backends.kubernetes.namespaces`` must list."""
        return params.namespace

    async def run(self, params: PodsParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Delete the pods; report their names."""
        core = client.CoreV1Api(api(ctx))
        deleted: list[str] = []
        for name in await params.names(core, "deleted"):
            delete = functools.partial(core.delete_namespaced_pod, name, params.namespace)
            try:
                await call(f"pod {name} in {params.namespace}", delete)
            except TemporaryError as exc:
                if not deleted:
                    raise
                raise partial_run(exc, "deleting", deleted) from None
            deleted.append(name)
        return {"namespace": params.namespace, "deleted": deleted}

"""``kubernetes.delete_pod``: delete a pod by name, or the pods a selector finds, up to ``max``.

Its controller recreates a deleted pod: the ``kubectl delete pod`` restart.
A selector that finds more pods than ``max`` deletes none and fails, rather
than take down more than the rule allows.

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

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, ClassVar

from kubernetes_asyncio import client

from remediations.base import ActionContext, ParamError, PermanentError, TemporaryError
from remediations.kubernetes.cluster import api, call
from remediations.params import Fields


@dataclasses.dataclass(frozen=True, slots=True)
class DeletePodParams:
    """A validated ``kubernetes.delete_pod``."""

    namespace: str
    name: str | None
    selector: str | None
    maximum: int


class DeletePod:
    """Delete pods so their controller starts fresh ones."""

    name: ClassVar[str] = "kubernetes.delete_pod"

    def parse(self, params: Mapping[str, Any]) -> DeletePodParams:
        """See the module docstring."""
        fields = Fields(params, ("namespace", "name", "selector", "max"))
        if fields.has("name") == fields.has("selector"):
            raise ParamError("name", "give exactly one of name or selector")
        return DeletePodParams(
            fields.string("namespace"),
            fields.string("name") if fields.has("name") else None,
            fields.string("selector") if fields.has("selector") else None,
            fields.integer("max", 1, minimum=1),
        )

    def subject(self, params: DeletePodParams) -> str:
        """The namespace ``backends.kubernetes.namespaces`` must list."""
        return params.namespace

    async def run(self, params: DeletePodParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Delete the pods; report their names."""
        core = client.CoreV1Api(api(ctx))
        where = f"pods in {params.namespace}"
        if params.name is not None:
            names = [params.name]
        else:
            selector = params.selector or ""
            listed = await call(
                where, lambda: core.list_namespaced_pod(params.namespace, label_selector=selector)
            )
            names = [pod.metadata.name for pod in listed.items]
            if not names:
                raise PermanentError(f"no pod in {params.namespace} matches {selector}")
            if len(names) > params.maximum:
                raise PermanentError(
                    f"{len(names)} pods in {params.namespace} match {selector}, more than "
                    f"max {params.maximum}: none deleted"
                )
        deleted: list[str] = []
        for name in names:
            delete = functools.partial(core.delete_namespaced_pod, name, params.namespace)
            try:
                await call(f"pod {name} in {params.namespace}", delete)
            except TemporaryError as exc:
                if not deleted:
                    raise
                # A retry would list the pods again, replacements included, and could
                # delete up to max once more: a partial run is final.
                raise PermanentError(f"{exc} (after deleting {', '.join(deleted)})") from None
            deleted.append(name)
        return {"namespace": params.namespace, "deleted": deleted}

"""``kubernetes.scale``: what ``kubectl scale --replicas`` does, within a required bound.

Through the ``scale`` subresource: read the replicas, set the new count.

Params:
    namespace, name: the workload
    kind: Deployment (default) or StatefulSet
    replicas: the count to set, or
    delta: how many to add (negative to remove)
    max: the upper bound, required: a storm of alerts never scales past it
    min: the lower bound (default 1)

Permissions (RBAC): apps ``deployments/scale`` or ``statefulsets/scale``: get, patch.

Example::

    - action: kubernetes.scale
      params: {namespace: shop, name: web, delta: 2, max: 10}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from kubernetes_asyncio import client

from remediations.base import ActionContext
from remediations.kubernetes.cluster import Workload, api, call, parse_workload
from remediations.params import BoundedChange, Fields

SCALABLE = ("Deployment", "StatefulSet")


@dataclasses.dataclass(frozen=True, slots=True)
class ScaleParams:
    """A validated ``kubernetes.scale``: the workload and its bounded change."""

    workload: Workload
    change: BoundedChange

    @property
    def minimum(self) -> int:
        """The lower bound."""
        return self.change.minimum

    @property
    def maximum(self) -> int:
        """The upper bound."""
        return self.change.maximum

    def target(self, current: int) -> int:
        """The replicas to set from the current count (see :class:`BoundedChange`)."""
        return self.change.target(current)


class Scale:
    """Set a workload's replicas through the scale subresource, never past ``max``."""

    name: ClassVar[str] = "kubernetes.scale"

    def parse(self, params: Mapping[str, Any]) -> ScaleParams:
        """See the module docstring."""
        fields = Fields(params, ("namespace", "name", "kind", "replicas", "delta", "min", "max"))
        workload = parse_workload(fields, SCALABLE)
        return ScaleParams(workload, BoundedChange.parse(fields, "replicas"))

    def subject(self, params: ScaleParams) -> str:
        """The namespace ``backends.kubernetes.namespaces`` must list."""
        return params.workload.namespace

    async def run(self, params: ScaleParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Read the scale, patch the clamped count; report replicas before and after."""
        apps = client.AppsV1Api(api(ctx))
        workload = params.workload
        what = f"scale {workload.describe()}"
        read = getattr(apps, f"read_namespaced_{workload.method}_scale")
        patch = getattr(apps, f"patch_namespaced_{workload.method}_scale")
        scale = await call(what, lambda: read(workload.name, workload.namespace))
        before = int(scale.spec.replicas or 0)
        target = params.target(before)
        result: dict[str, Any] = {
            "kind": workload.kind,
            "namespace": workload.namespace,
            "name": workload.name,
            "replicas": {"before": before, "after": before},
        }
        if target == before:
            result["unchanged"] = f"already at {before} (bounds {params.minimum}..{params.maximum})"
            return result
        body = {"spec": {"replicas": target}}
        updated = await call(what, lambda: patch(workload.name, workload.namespace, body))
        result["replicas"]["after"] = int(updated.spec.replicas or 0)
        return result

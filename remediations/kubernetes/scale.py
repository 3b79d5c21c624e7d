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

from remediations.base import ActionContext, ParamError
from remediations.kubernetes.cluster import Workload, api, call, parse_workload
from remediations.params import Fields

SCALABLE = ("Deployment", "StatefulSet")


@dataclasses.dataclass(frozen=True, slots=True)
class ScaleParams:
    """A validated ``kubernetes.scale``."""

    workload: Workload
    replicas: int | None
    delta: int | None
    minimum: int
    maximum: int

    def target(self, current: int) -> int:
        """The replicas to set from the current count, clamped to [min, max].

        A delta never moves against its own direction: scaling up a workload
        already above ``max`` (or down one below ``min``) leaves it as it is.
        """
        if self.replicas is not None:
            return max(self.minimum, min(self.maximum, self.replicas))
        delta = self.delta or 0
        wanted = max(self.minimum, min(self.maximum, current + delta))
        if (delta > 0 and wanted < current) or (delta < 0 and wanted > current):
            return current
        return wanted


class Scale:
    """Set a workload's replicas through the scale subresource, never past ``max``."""

    name: ClassVar[str] = "kubernetes.scale"

    def parse(self, params: Mapping[str, Any]) -> ScaleParams:
        """See the module docstring."""
        fields = Fields(params, ("namespace", "name", "kind", "replicas", "delta", "min", "max"))
        workload = parse_workload(fields, SCALABLE)
        if fields.has("replicas") == fields.has("delta"):
            raise ParamError("replicas", "give exactly one of replicas or delta")
        maximum = fields.integer("max", minimum=0)
        minimum = fields.integer("min", 1, minimum=0)
        if minimum > maximum:
            raise ParamError("min", f"min ({minimum}) is above max ({maximum})")
        replicas = fields.integer("replicas", minimum=0) if fields.has("replicas") else None
        if replicas is not None and not minimum <= replicas <= maximum:
            raise ParamError("replicas", f"{replicas} is outside [{minimum}, {maximum}]")
        delta = fields.integer("delta") if fields.has("delta") else None
        if delta == 0:
            raise ParamError("delta", "must not be 0")
        return ScaleParams(workload, replicas, delta, minimum, maximum)

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

"""``kubernetes.scale``: what ``kubectl scale --replicas`` does, within a required bound.

Through the ``scale`` subresource: read the replicas, set the new count.
A HorizontalPodAutoscaler (autoscaling/v2) that targets the workload would
undo that within seconds, so remedy goes further than kubectl here: it
refuses (a permanent failure naming the HPA), unless the step says
``hpa: raise_min`` — then it raises the HPA's ``minReplicas`` to the new
count instead, within the same bounds and never past the HPA's
``maxReplicas``, and the HPA scales the workload.

Params:
    namespace, name: the workload
    kind: Deployment (default) or StatefulSet
    replicas: the count to set, or
    delta: how many to add (negative to remove)
    max: the upper bound, required: a storm of alerts never scales past it
    min: the lower bound (default 1)
    hpa: refuse (default) or raise_min, when an HPA scales the workload

Permissions (RBAC): apps ``deployments/scale`` or ``statefulsets/scale``: get, patch;
autoscaling ``horizontalpodautoscalers``: list, patch.

Example::

    - action: kubernetes.scale
      params: {namespace: shop, name: web, delta: 2, max: 10}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from kubernetes_asyncio import client

from remediations.base import ActionContext, ParamError, PermanentError
from remediations.kubernetes.cluster import Workload, api, call, parse_workload
from remediations.params import BoundedChange, Fields

SCALABLE = ("Deployment", "StatefulSet")
HPA_MODES = ("refuse", "raise_min")


@dataclasses.dataclass(frozen=True, slots=True)
class ScaleParams:
    """A validated ``kubernetes.scale``: the workload and its bounded change."""

    workload: Workload
    change: BoundedChange
    hpa: str = "refuse"

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
        fields = Fields(
            params, ("namespace", "name", "kind", "replicas", "delta", "min", "max", "hpa")
        )
        workload = parse_workload(fields, SCALABLE)
        hpa = fields.string("hpa", "refuse")
        if hpa not in HPA_MODES:
            raise ParamError("hpa", f"expected one of {', '.join(HPA_MODES)}, got {hpa!r}")
        return ScaleParams(workload, BoundedChange.parse(fields, "replicas"), hpa)

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
        if (hpa := await _autoscaler(ctx, workload, what)) is not None:
            return await _through_hpa(ctx, params, hpa, target=target, result=result, what=what)
        if target == before:
            result["unchanged"] = f"already at {before} (bounds {params.minimum}..{params.maximum})"
            return result
        body = {"spec": {"replicas": target}}
        updated = await call(what, lambda: patch(workload.name, workload.namespace, body))
        result["replicas"]["after"] = int(updated.spec.replicas or 0)
        return result


async def _autoscaler(ctx: ActionContext, workload: Workload, what: str) -> Any | None:
    """The HorizontalPodAutoscaler whose scaleTargetRef is the workload, if any."""
    autoscaling = client.AutoscalingV2Api(api(ctx))
    listed = await call(
        what, lambda: autoscaling.list_namespaced_horizontal_pod_autoscaler(workload.namespace)
    )
    for hpa in listed.items:
        ref = hpa.spec.scale_target_ref
        if ref.kind == workload.kind and ref.name == workload.name:
            return hpa
    return None


async def _through_hpa(
    ctx: ActionContext,
    params: ScaleParams,
    hpa: Any,
    *,
    target: int,
    result: dict[str, Any],
    what: str,
) -> dict[str, Any]:
    """Refuse, or raise the HPA's minReplicas to ``target`` (never past its maxReplicas)."""
    name, minimum, maximum = hpa.metadata.name, hpa.spec.min_replicas or 1, hpa.spec.max_replicas
    where = f"HorizontalPodAutoscaler {params.workload.namespace}/{name}"
    if params.hpa != "raise_min":
        raise PermanentError(
            f"{what}: {where} scales it (min {minimum}, max {maximum}) and would undo this;"
            " set hpa: raise_min to raise its minimum instead"
        )
    result["hpa"] = name
    result["min_replicas"] = {"before": minimum, "after": minimum}
    if target > maximum:
        raise PermanentError(f"{what}: {target} replicas is past {where}'s maxReplicas {maximum}")
    if target <= minimum:
        result["unchanged"] = f"{where} already keeps at least {minimum}"
        return result
    autoscaling = client.AutoscalingV2Api(api(ctx))
    body = {"spec": {"minReplicas": target}}
    updated = await call(
        what,
        lambda: autoscaling.patch_namespaced_horizontal_pod_autoscaler(
            name, params.workload.namespace, body
        ),
    )
    result["min_replicas"]["after"] = int(updated.spec.min_replicas)
    return result

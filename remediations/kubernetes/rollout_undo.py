"""``kubernetes.rollout_undo``: what ``kubectl rollout undo deployment/NAME`` does.

It finds the Deployment's ReplicaSets, takes the pod template of the previous
revision (or ``to_revision``), drops its ``pod-template-hash`` label and
puts it back as the Deployment's template; the controller then rolls out
that template as the next revision. As kubectl does, the Deployment's
annotations become that ReplicaSet's (so the bad release's
``kubernetes.io/change-cause`` goes with it), except the ones kubectl keeps
from the Deployment (revision, revision history, desired and max replicas,
last-applied-configuration). Its refusals are kubectl's, in kubectl's order:
no earlier revision (``no rollout history found``), a ``to_revision`` that no
ReplicaSet has, then a paused Deployment (a permanent failure naming the
pause; nothing is patched). A revision whose template the Deployment already
has is not an error: nothing is patched and the result says ``unchanged``, as
kubectl says ``skipped rollback``.

Params:
    namespace, name: the Deployment
    kind: Deployment (the default, and the only kind it rolls back)
    to_revision: the revision to go back to (default: the one before the current)

Permissions (RBAC): apps ``deployments``: get, patch; apps ``replicasets``: list.

Example::

    - action: kubernetes.rollout_undo
      params: {namespace: shop, name: '{{ labels.deployment }}'}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from kubernetes_asyncio import client

from remediations.base import ActionContext, PermanentError
from remediations.kubernetes.cluster import REVISION, Workload, api, call, parse_workload, plain
from remediations.params import Fields

TEMPLATE_HASH = "pod-template-hash"
# What kubectl's rollback keeps from the Deployment instead of taking the ReplicaSet's.
KEPT_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
)


@dataclasses.dataclass(frozen=True, slots=True)
class UndoParams:
    """A validated ``kubernetes.rollout_undo``."""

    workload: Workload
    to_revision: int | None


class RolloutUndo:
    """Roll a Deployment back to an earlier revision's pod template."""

    name: ClassVar[str] = "kubernetes.rollout_undo"

    def parse(self, params: Mapping[str, Any]) -> UndoParams:
        """See the module docstring."""
        fields = Fields(params, ("namespace", "name", "kind", "to_revision"))
        workload = parse_workload(fields, ("Deployment",))
        revision = fields.integer("to_revision", minimum=1) if fields.has("to_revision") else None
        return UndoParams(workload, revision)

    def subject(self, params: UndoParams) -> str:
        """The namespace ``backends.kubernetes.namespaces`` must list."""
        return params.workload.namespace

    async def run(self, params: UndoParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Restore the chosen revision's template; report revisions and images."""
        api_client = api(ctx)
        apps = client.AppsV1Api(api_client)
        workload = params.workload
        what = f"rollout undo {workload.describe()}"
        deployment = plain(
            api_client,
            await call(
                what, lambda: apps.read_namespaced_deployment(workload.name, workload.namespace)
            ),
        )
        current = int(deployment["metadata"].get("annotations", {}).get(REVISION, 0))
        selector = ",".join(
            f"{k}={v}" for k, v in deployment["spec"]["selector"].get("matchLabels", {}).items()
        )
        listed = plain(
            api_client,
            await call(
                what,
                lambda: apps.list_namespaced_replica_set(
                    workload.namespace, label_selector=selector
                ),
            ),
        )
        uid = deployment["metadata"]["uid"]
        revisions: dict[int, Mapping[str, Any]] = {}
        for rs in listed.get("items", []):
            owners = rs["metadata"].get("ownerReferences") or []
            if any(o.get("uid") == uid and o.get("controller") for o in owners):
                number = int(rs["metadata"].get("annotations", {}).get(REVISION, 0))
                revisions[number] = rs
        # kubectl's order: the revision is looked up first, then the pause refuses.
        wanted = params.to_revision
        if wanted is None:
            if len(revisions) < 2:
                raise PermanentError(
                    f'{what}: no rollout history found for deployment "{workload.name}"'
                )
            wanted = sorted(revisions)[-2]  # the one before the latest
        if wanted not in revisions:
            known = ", ".join(str(n) for n in sorted(revisions)) or "none"
            raise PermanentError(
                f"{what}: unable to find specified revision {wanted} in history "
                f"(revisions: {known})"
            )
        if deployment["spec"].get("paused"):
            raise PermanentError(
                f"{what}: you cannot rollback a paused deployment; resume it first with "
                "'kubectl rollout resume' and try again"
            )
        template = dict(revisions[wanted]["spec"]["template"])
        metadata = dict(template.get("metadata") or {})
        labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != TEMPLATE_HASH}
        template["metadata"] = {**metadata, "labels": labels}
        if template == deployment["spec"]["template"]:
            return {
                "namespace": workload.namespace,
                "name": workload.name,
                "revision": {"before": current, "restored": wanted, "after": current},
                "images": {"before": _images(deployment), "after": _images(deployment)},
                "unchanged": f"current template already matches revision {wanted}",
            }
        kept = deployment["metadata"].get("annotations") or {}
        taken = revisions[wanted]["metadata"].get("annotations") or {}
        annotations = {k: v for k, v in kept.items() if k in KEPT_ANNOTATIONS} | {
            k: v for k, v in taken.items() if k not in KEPT_ANNOTATIONS
        }
        patch = [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]
        updated = plain(
            api_client,
            await call(
                what,
                lambda: apps.patch_namespaced_deployment(workload.name, workload.namespace, patch),
            ),
        )
        return {
            "namespace": workload.namespace,
            "name": workload.name,
            "revision": {"before": current, "restored": wanted, "after": _revision(updated)},
            "images": {"before": _images(deployment), "after": _images(updated)},
        }


def _revision(obj: Mapping[str, Any]) -> int | None:
    value = (obj.get("metadata") or {}).get("annotations", {}).get(REVISION)
    return int(value) if value else None


def _images(obj: Mapping[str, Any]) -> list[str]:
    containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    return [str(c.get("image")) for c in containers]

"""``kubernetes.rollout_restart``: what ``kubectl rollout restart`` does.

It sets the pod template annotation ``kubectl.kubernetes.io/restartedAt`` to
the current time with a strategic merge patch, so the controller rolls every
pod out again, one revision further. Like kubectl, it refuses a paused
Deployment (someone is in the middle of a rollout): a permanent failure that
names the pause, and nothing is patched.

Params:
    namespace, name: the workload
    kind: Deployment (default), StatefulSet or DaemonSet

Permissions (RBAC): apps ``deployments``/``statefulsets``/``daemonsets``: get, patch.

Example::

    - action: kubernetes.rollout_restart
      params: {namespace: shop, name: '{{ labels.deployment }}'}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from kubernetes_asyncio import client

from remediations.base import ActionContext, PermanentError
from remediations.kubernetes.cluster import (
    RESTARTED_AT,
    REVISION,
    Workload,
    api,
    call,
    parse_workload,
    plain,
)
from remediations.params import Fields


class RolloutRestart:
    """Restart a workload's pods by changing its pod template, as kubectl does."""

    name: ClassVar[str] = "kubernetes.rollout_restart"

    def parse(self, params: Mapping[str, Any]) -> Workload:
        """See the module docstring."""
        return parse_workload(Fields(params, ("namespace", "name", "kind")))

    def subject(self, params: Workload) -> str:
        """The namespace ``backends.kubernetes.namespaces`` must list."""
        return params.namespace

    async def run(self, params: Workload, ctx: ActionContext) -> Mapping[str, Any]:
        """Patch the restartedAt annotation; report it and the revision before and after."""
        api_client = api(ctx)
        apps = client.AppsV1Api(api_client)
        what = f"rollout restart {params.describe()}"
        read = getattr(apps, f"read_namespaced_{params.method}")
        patch = getattr(apps, f"patch_namespaced_{params.method}")
        before = plain(api_client, await call(what, lambda: read(params.name, params.namespace)))
        if params.kind == "Deployment" and (before.get("spec") or {}).get("paused"):
            raise PermanentError(
                f'{what}: deployments.apps "{params.name}" can\'t restart paused deployment '
                "(run rollout resume first)"
            )
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}
        after = plain(
            api_client, await call(what, lambda: patch(params.name, params.namespace, body))
        )
        return {
            "kind": params.kind,
            "namespace": params.namespace,
            "name": params.name,
            "restarted_at": {"before": _restarted_at(before), "after": _restarted_at(after)},
            "revision": {"before": _revision(before), "after": _revision(after)},
        }


def _restarted_at(obj: Mapping[str, Any]) -> str | None:
    template = obj.get("spec", {}).get("template", {})
    value = (template.get("metadata") or {}).get("annotations", {}).get(RESTARTED_AT)
    return str(value) if value else None


def _revision(obj: Mapping[str, Any]) -> str | None:
    value = (obj.get("metadata") or {}).get("annotations", {}).get(REVISION)
    return str(value) if value else None

"""``kubernetes.evict_pod``: evict a pod by name, or the pods a selector finds, up to ``max``.

The Eviction API (``pods/eviction``), which is how ``kubectl drain`` takes pods
away: unlike a deletion, it honours the PodDisruptionBudget that selects the
pod. While the budget allows no disruption the API answers 429; the eviction
is asked again (after 0.5 s, then up to every 5 s, as ``kubectl drain`` retries)
until the step's ``timeout`` is nearly spent, and then fails with the budget's
own words: ``The disruption budget web needs 2 healthy pods and has 2 currently``.
Like ``delete_pod``, a selector that finds more pods than ``max`` evicts none,
and once one pod has gone a later failure is final (no retry evicts more).

Params:
    namespace: the pods' namespace
    name: one pod, or
    selector: a label selector (``app=web,tier=front``)
    max: how many pods it may evict (default 1)

Result: ``namespace``, ``evicted`` (the pods' names), and ``budget_waits`` (how
many times a budget made it wait) when one did.

Permissions (RBAC): core ``pods``: list; core ``pods/eviction``: create.

Example::

    - action: kubernetes.evict_pod
      params: {namespace: shop, name: '{{ labels.pod }}'}
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

from kubernetes_asyncio import client

from remediations.base import ActionContext, TemporaryError
from remediations.kubernetes.cluster import api, call
from remediations.kubernetes.pods import PodsParams, partial_run

FIRST_WAIT = 0.5
LONGEST_WAIT = 5.0
MARGIN = 0.25
"""Seconds kept between the last ask and the step's deadline, to fail with the reason."""


class EvictPod:
    """Evict pods through the Eviction API, within their disruption budgets."""

    name: ClassVar[str] = "kubernetes.evict_pod"

    def parse(self, params: Mapping[str, Any]) -> PodsParams:
        """See the module docstring."""
        return PodsParams.parse(params)

    def subject(self, params: PodsParams) -> str:
        """The namespace ``backends.kubernetes.namespaces`` must list."""
        return params.namespace

    async def run(self, params: PodsParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Evict the pods one by one; report their names and the waits."""
        core = client.CoreV1Api(api(ctx))
        evicted: list[str] = []
        waits = 0
        for name in await params.names(core, "evicted"):
            try:
                waits += await _evict(core, params.namespace, name, ctx.deadline)
            except TemporaryError as exc:
                if not evicted:
                    raise
                raise partial_run(exc, "evicting", evicted) from None
            evicted.append(name)
        result: dict[str, Any] = {"namespace": params.namespace, "evicted": evicted}
        if waits:
            result["budget_waits"] = waits
        return result


async def _evict(core: client.CoreV1Api, namespace: str, name: str, deadline: float | None) -> int:
    """Evict one pod, asking again while the answer is temporary; how often it waited."""
    body = client.V1Eviction(
        api_version="policy/v1",
        kind="Eviction",
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
    )
    loop = asyncio.get_running_loop()
    wait, waits = FIRST_WAIT, 0
    while True:
        try:
            await call(
                f"pod {name} in {namespace}",
                lambda: core.create_namespaced_pod_eviction(name, namespace, body),
            )
        except TemporaryError:
            if deadline is None or deadline - loop.time() < wait + MARGIN:
                raise
            await asyncio.sleep(wait)
            wait, waits = min(wait * 2, LONGEST_WAIT), waits + 1
            continue
        return waits

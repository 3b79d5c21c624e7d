"""``kubernetes.evict_pod``: evict a pod by name, or the pods a selector finds, up to ``max``.

The Eviction API (``pods/eviction``), which is how ``kubectl drain`` takes pods
away: unlike a deletion, it honours the PodDisruptionBudget that selects the
pod. While the budget allows no disruption the API answers 429, and the
eviction is asked again (after 0.5 s, 1 s, 2 s, then every 5 s, where
``kubectl drain`` asks every 5 s) for as long as the step's ``timeout`` leaves
room for one more answer; then the step fails with the budget's own words
(``The disruption budget web needs 2 healthy pods and has 2 currently``). Any
other error is not waited on: a pod two budgets select is a permanent failure
(the API refuses it whatever the budgets allow), and 5xx and lost connections
are left to the step's ``retries``. A pod that is already gone counts as done,
as it does for ``kubectl drain``, and is listed under ``already_gone``. Like
``delete_pod``, a selector that finds more pods than ``max`` evicts none, and
once one pod has gone a later failure is final (no retry evicts more).

Params:
    namespace: the pods' namespace
    name: one pod, or
    selector: a label selector (``app=web,tier=front``)
    max: how many pods it may evict (default 1)

Result: ``namespace``, ``evicted`` (the pods' names), ``budget_waits`` (how many
times a budget made it wait), and ``already_gone`` when a pod was.

Permissions (RBAC): core ``pods``: list; core ``pods/eviction``: create.

Example::

    - action: kubernetes.evict_pod
      params: {namespace: shop, name: '{{ labels.pod }}'}
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, ClassVar

from kubernetes_asyncio import client

from remediations.base import ActionContext, PermanentError, TemporaryError
from remediations.kubernetes.cluster import Refused, Unavailable, call
from remediations.kubernetes.pods import PodAction

WAITS = (0.5, 1.0, 2.0, 5.0)
"""Seconds between asks while a budget refuses; the last one repeats."""
ROOM = 1.0
"""Seconds an ask is given at least (more if asks have been slower): no ask starts later."""
CUTOFF = 0.05
"""Seconds before the step's deadline at which an unanswered ask gives up."""
TWO_BUDGETS = "more than one PodDisruptionBudget"


class EvictPod(PodAction):
    """Evict pods through the Eviction API, within their disruption budgets."""

    name: ClassVar[str] = "kubernetes.evict_pod"
    done: ClassVar[str] = "evicted"
    doing: ClassVar[str] = "evicting"

    async def act(
        self,
        core: client.CoreV1Api,
        namespace: str,
        name: str,
        ctx: ActionContext,
        result: dict[str, Any],
    ) -> bool:
        """Evict one pod, asking again while its budget refuses and time is left."""
        what = f"pod {name} in {namespace}"
        body = client.V1Eviction(
            api_version="policy/v1",
            kind="Eviction",
            metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        )
        loop = asyncio.get_running_loop()
        deadline = ctx.deadline
        result.setdefault("budget_waits", 0)
        # The ask's own time ends just before the step's, to fail with a reason.
        cutoff = None if deadline is None else deadline - CUTOFF
        refusal: str | None = None  # what the budget said last
        slowest = 0.0
        for attempt in itertools.count():
            started = loop.time()
            try:
                async with asyncio.timeout_at(cutoff):
                    await call(
                        what, lambda: core.create_namespaced_pod_eviction(name, namespace, body)
                    )
            except TimeoutError:
                said = f"; the budget said: {refusal}" if refusal else ""
                raise TemporaryError(
                    f"{what}: the eviction had no answer within the step's timeout{said}"
                ) from None
            except Refused as exc:
                if exc.status == 404:
                    return False
                raise
            except Unavailable as exc:
                if exc.status == 500 and TWO_BUDGETS in str(exc):
                    raise PermanentError(str(exc)) from None
                if exc.status != 429:
                    raise
                refusal = str(exc)
                slowest = max(slowest, loop.time() - started)
                wait = WAITS[min(attempt, len(WAITS) - 1)]
                if deadline is None or deadline - loop.time() < wait + max(ROOM, 2 * slowest):
                    raise
                await asyncio.sleep(wait)
                result["budget_waits"] += 1
                continue
            return True
        raise AssertionError("unreachable: itertools.count() does not end")

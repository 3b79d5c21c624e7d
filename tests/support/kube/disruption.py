"""PodDisruptionBudgets: the disruption controller's status and the eviction subresource.

``POST /api/v1/namespaces/NS/pods/NAME/eviction`` is the voluntary way to delete a
pod (``kubectl drain`` uses it): it checks the one budget that selects the pod and
answers 429 TooManyRequests while that budget allows no disruption, naming the
budget in the Status' cause, as ``pkg/registry/core/pod/storage/eviction.go`` does.
The controller side follows ``pkg/controller/disruption``: ``expectedPods`` is the
number of pods selected (an integer ``minAvailable``) or the sum of their
controllers' replicas (a percentage, or ``maxUnavailable``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from tests.support.kube.errors import ApiError
from tests.support.kube.objects import pod_ready
from tests.support.kube.resources import Obj

TOO_MANY = "Cannot evict pod as it would violate the pod's disruption budget."


def _scaled(value: Any, total: int, *, round_up: bool) -> int:
    """An IntOrString against ``total``, as intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def budget_status(
    pdb: Obj, pods: Iterable[Obj], controller_of: Callable[[Obj], tuple[str, int] | None], now: str
) -> Obj:
    """The status the disruption controller writes for ``pdb`` over the pods it selects.

    ``controller_of`` gives a pod's scalable controller (the Deployment above a
    ReplicaSet) as its uid and replicas, or ``None`` when it has none the
    controller can size (a bare pod, a DaemonSet's): a budget that needs the
    controllers' sizes then allows no disruption at all (``SyncFailed``).
    """
    spec, old = pdb["spec"], pdb.get("status") or {}
    selected = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    healthy = sum(1 for p in selected if pod_ready(p))
    minimum, unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    failed = False
    if unavailable is None and isinstance(minimum, int):
        expected, desired = len(selected), minimum
    else:
        sizes: dict[str, int] = {}
        for pod in selected:
            found = controller_of(pod)
            if found is None:
                failed = True
                break
            sizes[found[0]] = found[1]
        expected = sum(sizes.values())
        if unavailable is not None:
            desired = max(0, expected - _scaled(unavailable, expected, round_up=True))
        else:
            desired = _scaled(minimum or 0, expected, round_up=True)
    if failed:
        expected = desired = 0
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    if failed:
        allowed = 0
    generation = pdb["metadata"].get("generation", 1)
    ok = allowed > 0
    reason = "SyncFailed" if failed else "SufficientPods" if ok else "InsufficientPods"
    condition = {
        "type": "DisruptionAllowed",
        "status": "True" if ok else "False",
        "reason": reason,
        "message": "",
        "observedGeneration": generation,
        "lastTransitionTime": now,
    }
    for previous in old.get("conditions") or []:
        if (previous.get("type"), previous.get("status")) == (
            "DisruptionAllowed",
            condition["status"],
        ):
            condition["lastTransitionTime"] = previous.get("lastTransitionTime", now)
    return {
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [condition],
    }


def admit_eviction(pod: Obj, budgets: list[Obj]) -> Obj | None:
    """Whether the budgets let ``pod`` go; the budget to charge, or ``None`` to charge none.

    Raises the API server's errors: 500 for a pod that two budgets select, 429 while
    the budget allows no disruption (or has not been processed yet).
    """
    phase = pod.get("status", {}).get("phase")
    if phase in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp"):
        return None
    if not budgets:
        return None
    if len(budgets) > 1:
        raise ApiError(  # a bare Status with the code, as eviction.go writes it: no reason
            500,
            "",
            "This pod has more than one PodDisruptionBudget, which the eviction subresource "
            "does not support.",
        )
    pdb = budgets[0]
    name, status = pdb["metadata"]["name"], pdb.get("status") or {}
    current, desired = status.get("currentHealthy", 0), status.get("desiredHealthy", 0)
    if not pod_ready(pod):
        policy = pdb["spec"].get("unhealthyPodEvictionPolicy", "IfHealthyBudget")
        if policy == "AlwaysAllow" or (current >= desired > 0):
            return None
    if status.get("observedGeneration", 0) < pdb["metadata"].get("generation", 1):
        raise _too_many(f"The disruption budget {name} is still being processed by the server.")
    allowed = status.get("disruptionsAllowed", 0)
    if allowed < 0:
        raise ApiError(403, "Forbidden", "pdb disruptions allowed is negative")
    if allowed == 0:
        raise _too_many(
            f"The disruption budget {name} needs {desired} healthy pods and has {current} currently"
        )
    return pdb


def _too_many(cause: str) -> ApiError:
    details = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    return ApiError(429, "TooManyRequests", TOO_MANY, details)


def evicted() -> Obj:
    """What a granted eviction answers: a bare Success (201 Created)."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}

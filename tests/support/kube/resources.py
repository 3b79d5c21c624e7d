"""The resources the fake API server serves, and the names and annotations they share."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

Obj = dict[str, Any]
"""A Kubernetes object, or any part of one, as decoded JSON."""

Key = tuple[str, str, str]
"""Where an object is kept: its resource's plural, its namespace and its name."""

DEFAULT_USER = "system:serviceaccount:remedy:remedy"
"""The identity Forbidden messages name: remedy's service account."""

DEFAULT_TOKEN = "remedy-test-token"
"""The bearer token the generated kubeconfig carries and the server demands."""

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
POD_TEMPLATE_HASH = "pod-template-hash"
CONTROLLER_REVISION_HASH = "controller-revision-hash"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_MERGE_PATCH)
"""The patch media types a real server accepts, in the order its 415 message lists them."""

# Annotations the Deployment controller keeps off ReplicaSets (and kubectl keeps from
# the Deployment on rollback), as in the controller's skipCopyAnnotation.
NOT_COPIED = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    }
)
REVISION_HISTORY_LIMIT_CHARS = 2000
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery rand.SafeEncodeString
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclasses.dataclass(frozen=True, slots=True)
class Resource:
    """An API resource the fake serves, named as the real API names it."""

    group: str
    version: str
    plural: str
    kind: str
    scalable: bool = False

    @property
    def api_version(self) -> str:
        """``apps/v1`` or ``v1``: the ``apiVersion`` of its objects."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` or ``pods``: how NotFound, Conflict and Forbidden name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Deployment.apps`` or ``Pod``: how Invalid names it."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment", scalable=True)
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet", scalable=True)
DAEMONSETS = Resource("apps", "v1", "daemonsets", "DaemonSet")
REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet", scalable=True)
PODS = Resource("", "v1", "pods", "Pod")
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
PDBS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
RESOURCES = (DEPLOYMENTS, STATEFULSETS, DAEMONSETS, REPLICASETS, PODS, HPAS, PDBS)
"""Everything the fake serves."""

BY_PLURAL = {res.plural: res for res in RESOURCES}
SCALE = Resource("autoscaling", "v1", "scale", "Scale")
EVICTION = Resource("policy", "v1", "eviction", "Eviction")


def resource_for(kind: str) -> Resource:
    """The resource a test means by ``Deployment``, ``deployments`` or ``deployments.apps``."""
    wanted = kind.lower().split(".", 1)[0]
    for res in RESOURCES:
        if wanted in (res.kind.lower(), res.plural):
            return res
    raise KeyError(f"the fake API server does not serve {kind!r}")

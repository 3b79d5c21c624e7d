"""A fake Kubernetes API server for tests: real HTTP, the real API's semantics, no cluster.

remedy's Kubernetes actions talk to a cluster through kubernetes-asyncio, and no API
server can run where the tests run (SPEC §9). This module serves the part of the API
those actions touch -- apps/v1 Deployments, StatefulSets, DaemonSets and ReplicaSets,
core/v1 Pods with the ``eviction`` subresource, the ``scale`` subresource,
autoscaling/v2 HorizontalPodAutoscalers and policy/v1 PodDisruptionBudgets -- on a
loopback port, and answers as a real API server does: ``resourceVersion`` and
``generation``, optimistic concurrency (409), ``Status`` bodies for NotFound,
Forbidden, Conflict, Invalid and TooManyRequests, strategic-merge, merge and JSON
patches, defaulting, a Deployment controller that makes ReplicaSets with revisions the
way ``kubectl rollout restart`` and ``kubectl rollout undo`` rely on, and a disruption
controller that keeps each budget's status.
Tests reach it through a generated kubeconfig, so the real client code runs unchanged,
and every request is recorded for assertions.

It speaks HTTPS with a certificate made for the run (so the real kubectl sends its
token), serves the discovery documents and watches, and the real kubectl is the judge
of it: tests/kube/test_kubectl_parity.py runs kubectl on one fake and remedy's action
on a twin and compares what they did.

Simplifications, each one a place where a real cluster would only be slower: the
controllers and the kubelet act synchronously after every write (rollouts finish at
once and pods are Running and Ready at once unless a test holds readiness back),
deletion is immediate (no graceful termination, no finalizers), namespaces exist when
something is in them, and there is no server-side apply, no aggregated discovery, no
OpenAPI document and no ``status`` subresource.

The package follows the server's own seams: ``resources`` (what is served), ``errors``
(Status bodies), ``selectors``, ``patches``, ``objects`` (defaulting and validation),
``store`` (the in-memory etcd), ``controllers`` (and the kubelet) and ``server`` (HTTP).

Load the ``fake_kube`` fixture with ``pytest_plugins = ["tests.support.kube"]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.kube.objects import normalize, pod_ready, revision_of, template_hash
from tests.support.kube.patches import json_patch, merge_patch, strategic_merge_patch
from tests.support.kube.resources import (
    CONTROLLER_REVISION_HASH,
    DEFAULT_TOKEN,
    DEFAULT_USER,
    JSON_PATCH,
    MERGE_PATCH,
    POD_TEMPLATE_HASH,
    RESTARTED_AT,
    REVISION,
    REVISION_HISTORY,
    STRATEGIC_MERGE_PATCH,
    Obj,
)
from tests.support.kube.selectors import format_selector, parse_label_selector
from tests.support.kube.server import FakeKube, RecordedRequest

__all__ = [
    "CONTROLLER_REVISION_HASH",
    "DEFAULT_TOKEN",
    "DEFAULT_USER",
    "JSON_PATCH",
    "MERGE_PATCH",
    "POD_TEMPLATE_HASH",
    "RESTARTED_AT",
    "REVISION",
    "REVISION_HISTORY",
    "STRATEGIC_MERGE_PATCH",
    "FakeKube",
    "Obj",
    "RecordedRequest",
    "format_selector",
    "json_patch",
    "merge_patch",
    "normalize",
    "parse_label_selector",
    "pod_ready",
    "revision_of",
    "strategic_merge_patch",
    "template_hash",
]


@pytest.fixture(name="fake_kube")
async def fake_kube_fixture(tmp_path: Path) -> AsyncIterator[FakeKube]:
    """``fake_kube``: a started fake API server and a kubeconfig for it in ``tmp_path``."""
    kube = FakeKube()
    await kube.start(tmp_path / "kubeconfig")
    try:
        yield kube
    finally:
        await kube.close()

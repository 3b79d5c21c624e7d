"""remedy's Kubernetes actions against the real kubectl: the same objects, the same refusals.

Two fakes are seeded alike; kubectl acts on one and remedy's action on the other,
and then their Deployments, ReplicaSets, pods and budgets are compared, less what
differs between any two clusters (uids, resourceVersions, timestamps) and the
pod-template-hash, which hashes a ``restartedAt`` time and so differs by a second
between the two runs (it is named after the revision it belongs to instead).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, config

from remediations import ActionContext, ActionError
from remediations.builtin import builtin_registry
from tests.support.kube import POD_TEMPLATE_HASH, RESTARTED_AT, REVISION, FakeKube, Obj
from tests.support.kubectl import Kubectl, Ran

VOLATILE = frozenset(
    {
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "lastTransitionTime",
        "lastUpdateTime",
        "startTime",
        "startedAt",
        "containerID",
    }
)
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")

Seed = Callable[[FakeKube], None]


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[FakeKube]:
    """A second fake API server, for remedy's side of each comparison."""
    kube = FakeKube()
    await kube.start(tmp_path / "twin-kubeconfig")
    try:
        yield kube
    finally:
        await kube.close()


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in VOLATILE:
                continue
            if key == RESTARTED_AT:
                assert isinstance(item, str) and RFC3339.match(item), item
                out[key] = "<restartedAt>"
                continue
            out[key] = _scrub(item)
        return out
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


def snapshot(kube: FakeKube, namespace: str = "shop") -> Obj:
    """What kubectl and remedy must agree on, in a form two clusters can share."""
    replicasets = kube.objects("ReplicaSet", namespace)
    state = {
        "deployments": kube.objects("Deployment", namespace),
        "replicasets": replicasets,
        "pods": kube.pods(namespace),
        "budgets": kube.objects("PodDisruptionBudget", namespace),
    }
    text = json.dumps(_scrub(state), sort_keys=True)
    for rs in replicasets:
        digest = rs["metadata"]["labels"][POD_TEMPLATE_HASH]
        revision = rs["metadata"]["annotations"][REVISION]
        text = text.replace(digest, f"hash-of-revision-{revision}")
    found: Obj = json.loads(text)
    return found


async def remedy_run(kube: FakeKube, action: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Run one of remedy's actions against ``kube``, as the executor would."""
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(kube.kubeconfig), client_configuration=configuration
    )
    registry = builtin_registry()
    chosen = registry.get(action)
    async with (
        aiohttp.ClientSession() as session,
        client.ApiClient(configuration=configuration) as api,
    ):
        ctx = ActionContext(http=session, kubernetes=api)
        return await chosen.run(chosen.parse(params), ctx)


async def both(seed: Seed, kube: FakeKube, twin: FakeKube) -> tuple[FakeKube, FakeKube]:
    """Seed the two fakes alike and check that they start equal."""
    seed(kube)
    seed(twin)
    assert snapshot(kube) == snapshot(twin)
    return kube, twin


# -- seeds ---------------------------------------------------------------------------------


def two_replicas(kube: FakeKube) -> None:
    kube.add_deployment(
        "shop", "web", replicas=2, annotations={"kubernetes.io/change-cause": "release 1"}
    )


def a_bad_release(kube: FakeKube) -> None:
    """Revision 1 good, revision 2 bad (its own change-cause), revision 3 bad too."""
    two_replicas(kube)
    for image, cause in (("shop/web:2.0-bad", "release 2"), ("shop/web:3.0-bad", "release 3")):
        deployment = kube.deployment("shop", "web")
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = image
        deployment["metadata"]["annotations"]["kubernetes.io/change-cause"] = cause
        kube.update(deployment)


def paused_after_a_release(kube: FakeKube) -> None:
    a_bad_release(kube)
    deployment = kube.deployment("shop", "web")
    deployment["spec"]["paused"] = True
    kube.update(deployment)


def a_budget_of_one(kube: FakeKube) -> None:
    kube.add_deployment("shop", "web", replicas=3)
    kube.add_pdb("shop", "web", {"app": "web"}, max_unavailable=1)


def a_budget_of_none(kube: FakeKube) -> None:
    kube.add_deployment("shop", "web", replicas=2)
    kube.add_pdb("shop", "web", {"app": "web"}, min_available=2)


def first_pod(kube: FakeKube) -> str:
    name: str = kube.pods("shop")[0]["metadata"]["name"]
    return name


def eviction(pod: str) -> str:
    return json.dumps(
        {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod, "namespace": "shop"},
        }
    )


# -- the same effect -------------------------------------------------------------------------


async def test_rollout_restart(kubectl: Kubectl, fake_kube: FakeKube, twin: FakeKube) -> None:
    theirs, ours = await both(two_replicas, fake_kube, twin)
    ran = await kubectl(theirs, "-n", "shop", "rollout", "restart", "deployment/web")
    assert (ran.code, ran.out) == (0, "deployment.apps/web restarted\n"), ran.err
    await remedy_run(ours, "kubernetes.rollout_restart", {"namespace": "shop", "name": "web"})
    assert snapshot(ours) == snapshot(theirs)
    assert len(theirs.replicasets("shop", "web")) == 2


async def test_rollout_undo(kubectl: Kubectl, fake_kube: FakeKube, twin: FakeKube) -> None:
    theirs, ours = await both(a_bad_release, fake_kube, twin)
    ran = await kubectl(theirs, "-n", "shop", "rollout", "undo", "deployment/web")
    assert (ran.code, ran.out) == (0, "deployment.apps/web rolled back\n"), ran.err
    await remedy_run(ours, "kubernetes.rollout_undo", {"namespace": "shop", "name": "web"})
    assert snapshot(ours) == snapshot(theirs)
    annotations = theirs.deployment("shop", "web")["metadata"]["annotations"]
    assert annotations["kubernetes.io/change-cause"] == "release 2"


async def test_rollout_undo_to_a_revision(
    kubectl: Kubectl, fake_kube: FakeKube, twin: FakeKube
) -> None:
    theirs, ours = await both(a_bad_release, fake_kube, twin)
    ran = await kubectl(
        theirs, "-n", "shop", "rollout", "undo", "deployment/web", "--to-revision=1"
    )
    assert ran.code == 0, ran.err
    await remedy_run(
        ours, "kubernetes.rollout_undo", {"namespace": "shop", "name": "web", "to_revision": 1}
    )
    assert snapshot(ours) == snapshot(theirs)
    assert theirs.deployment("shop", "web")["metadata"]["annotations"][REVISION] == "4"


async def test_scale(kubectl: Kubectl, fake_kube: FakeKube, twin: FakeKube) -> None:
    theirs, ours = await both(two_replicas, fake_kube, twin)
    ran = await kubectl(theirs, "-n", "shop", "scale", "deployment/web", "--replicas=4")
    assert (ran.code, ran.out) == (0, "deployment.apps/web scaled\n"), ran.err
    await remedy_run(
        ours, "kubernetes.scale", {"namespace": "shop", "name": "web", "replicas": 4, "max": 10}
    )
    assert snapshot(ours) == snapshot(theirs)
    assert len(theirs.pods("shop")) == 4


async def test_delete_pod(kubectl: Kubectl, fake_kube: FakeKube, twin: FakeKube) -> None:
    theirs, ours = await both(two_replicas, fake_kube, twin)
    pod = first_pod(theirs)
    ran = await kubectl(theirs, "-n", "shop", "delete", "pod", pod)
    assert (ran.code, ran.out) == (0, f'pod "{pod}" deleted\n'), ran.err
    await remedy_run(ours, "kubernetes.delete_pod", {"namespace": "shop", "name": pod})
    assert snapshot(ours) == snapshot(theirs)
    assert pod not in {p["metadata"]["name"] for p in theirs.pods("shop")}


async def test_evict_pod_as_kubectl_posts_an_eviction(
    kubectl: Kubectl, fake_kube: FakeKube, twin: FakeKube
) -> None:
    """kubectl has no verb that evicts one pod (drain needs nodes, which the fake does not
    serve); its ``create --raw`` posts the Eviction that drain would, through the same API.
    """
    theirs, ours = await both(a_budget_of_one, fake_kube, twin)
    pod = first_pod(theirs)
    path = f"/api/v1/namespaces/shop/pods/{pod}/eviction"
    ran = await kubectl(theirs, "create", "--raw", path, "-f", "-", stdin=eviction(pod))
    assert ran.code == 0, ran.err
    await remedy_run(ours, "kubernetes.evict_pod", {"namespace": "shop", "name": pod})
    assert snapshot(ours) == snapshot(theirs)
    assert pod not in {p["metadata"]["name"] for p in theirs.pods("shop")}


# -- the same refusals -----------------------------------------------------------------------


async def refused_alike(
    kubectl_ran: Ran, ours: FakeKube, action: str, params: Mapping[str, Any]
) -> str:
    """kubectl failed; remedy's action fails too, and its error holds kubectl's words."""
    assert kubectl_ran.code == 1, kubectl_ran.out
    words = kubectl_ran.err.strip().removeprefix("error: ")
    before = snapshot(ours)
    with pytest.raises(ActionError) as refused:
        await remedy_run(ours, action, params)
    assert snapshot(ours) == before
    assert words in str(refused.value), (words, str(refused.value))
    return words


async def test_restart_of_a_paused_deployment(
    kubectl: Kubectl, fake_kube: FakeKube, twin: FakeKube
) -> None:
    theirs, ours = await both(paused_after_a_release, fake_kube, twin)
    before = snapshot(theirs)
    ran = await kubectl(theirs, "-n", "shop", "rollout", "restart", "deployment/web")
    words = await refused_alike(
        ran, ours, "kubernetes.rollout_restart", {"namespace": "shop", "name": "web"}
    )
    assert "can't restart paused deployment (run rollout resume first)" in words
    assert snapshot(theirs) == before == snapshot(ours)


async def test_undo_of_a_paused_deployment(
    kubectl: Kubectl, fake_kube: FakeKube, twin: FakeKube
) -> None:
    theirs, ours = await both(paused_after_a_release, fake_kube, twin)
    ran = await kubectl(theirs, "-n", "shop", "rollout", "undo", "deployment/web")
    words = await refused_alike(
        ran, ours, "kubernetes.rollout_undo", {"namespace": "shop", "name": "web"}
    )
    assert words.startswith("you cannot rollback a paused deployment")
    assert snapshot(theirs) == snapshot(ours)


async def test_undo_without_history(kubectl: Kubectl, fake_kube: FakeKube, twin: FakeKube) -> None:
    theirs, ours = await both(two_replicas, fake_kube, twin)
    ran = await kubectl(theirs, "-n", "shop", "rollout", "undo", "deployment/web")
    words = await refused_alike(
        ran, ours, "kubernetes.rollout_undo", {"namespace": "shop", "name": "web"}
    )
    assert words == 'no rollout history found for deployment "web"'


async def test_undo_to_a_revision_that_does_not_exist(
    kubectl: Kubectl, fake_kube: FakeKube, twin: FakeKube
) -> None:
    theirs, ours = await both(a_bad_release, fake_kube, twin)
    ran = await kubectl(
        theirs, "-n", "shop", "rollout", "undo", "deployment/web", "--to-revision=7"
    )
    words = await refused_alike(
        ran, ours, "kubernetes.rollout_undo", {"namespace": "shop", "name": "web", "to_revision": 7}
    )
    assert words == "unable to find specified revision 7 in history"


async def test_undo_to_the_current_template_is_skipped(
    kubectl: Kubectl, fake_kube: FakeKube, twin: FakeKube
) -> None:
    theirs, ours = await both(a_bad_release, fake_kube, twin)
    ran = await kubectl(
        theirs, "-n", "shop", "rollout", "undo", "deployment/web", "--to-revision=3"
    )
    assert ran.code == 0, ran.err
    assert "skipped rollback (current template already matches revision 3)" in ran.out
    result = await remedy_run(
        ours, "kubernetes.rollout_undo", {"namespace": "shop", "name": "web", "to_revision": 3}
    )
    assert result["unchanged"] == "current template already matches revision 3"
    assert snapshot(ours) == snapshot(theirs)


async def test_an_eviction_kubectl_posts_that_a_budget_forbids(
    kubectl: Kubectl, fake_kube: FakeKube, twin: FakeKube
) -> None:
    theirs, ours = await both(a_budget_of_none, fake_kube, twin)
    pod = first_pod(theirs)
    path = f"/api/v1/namespaces/shop/pods/{pod}/eviction"
    ran = await kubectl(theirs, "create", "--raw", path, "-f", "-", stdin=eviction(pod))
    assert ran.code == 1
    assert "Cannot evict pod as it would violate the pod's disruption budget." in ran.err
    before = snapshot(ours)
    with pytest.raises(ActionError) as refused:
        await remedy_run(ours, "kubernetes.evict_pod", {"namespace": "shop", "name": pod})
    assert "Cannot evict pod as it would violate the pod's disruption budget." in str(refused.value)
    assert "The disruption budget web needs 2 healthy pods and has 2 currently" in str(
        refused.value
    )
    assert snapshot(ours) == before == snapshot(theirs)


def test_snapshots_tell_a_difference_apart(fake_kube: FakeKube) -> None:
    """The comparison is not blind: a different replica count or image shows."""
    two_replicas(fake_kube)
    before = snapshot(fake_kube)
    changed = copy.deepcopy(before)
    changed["deployments"][0]["spec"]["replicas"] = 3
    assert changed != before
    deployment = fake_kube.deployment("shop", "web")
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    fake_kube.update(deployment)
    assert snapshot(fake_kube) != before

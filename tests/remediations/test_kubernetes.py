"""The Kubernetes actions through the real kubernetes-asyncio client, against the fake API."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import pytest
from kubernetes_asyncio import client, config

from remediations import ActionContext, ParamError, PermanentError, TemporaryError
from remediations.kubernetes.cluster import RESTARTED_AT, REVISION
from remediations.kubernetes.delete_pod import DeletePod
from remediations.kubernetes.evict_pod import EvictPod
from remediations.kubernetes.rollout_restart import RolloutRestart
from remediations.kubernetes.rollout_undo import RolloutUndo
from remediations.kubernetes.scale import Scale
from tests.support.kube import FakeKube


@pytest.fixture
async def ctx(fake_kube: FakeKube) -> AsyncIterator[ActionContext]:
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(fake_kube.kubeconfig), client_configuration=configuration
    )
    async with (
        aiohttp.ClientSession() as session,
        client.ApiClient(configuration=configuration) as api,
    ):
        yield ActionContext(http=session, kubernetes=api)


async def test_rollout_restart_rolls_out_a_new_revision(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=2)
    action = RolloutRestart()
    result = await action.run(action.parse({"namespace": "shop", "name": "web"}), ctx)
    stored = fake_kube.deployment("shop", "web")
    annotation = stored["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert result["restarted_at"] == {"before": None, "after": annotation}
    assert [
        rs["metadata"]["annotations"][REVISION] for rs in fake_kube.replicasets("shop", "web")
    ] == ["1", "2"]
    (patch,) = fake_kube.writes
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert patch.body == {
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: annotation}}}}
    }


async def test_rollout_restart_of_a_statefulset(fake_kube: FakeKube, ctx: ActionContext) -> None:
    fake_kube.add_statefulset("shop", "db", replicas=1)
    action = RolloutRestart()
    await action.run(action.parse({"namespace": "shop", "name": "db", "kind": "StatefulSet"}), ctx)
    template = fake_kube.statefulset("shop", "db")["spec"]["template"]
    assert RESTARTED_AT in template["metadata"]["annotations"]


async def test_scale_by_delta_is_clamped_by_max(fake_kube: FakeKube, ctx: ActionContext) -> None:
    fake_kube.add_deployment("shop", "web", replicas=3)
    action = Scale()
    params = action.parse({"namespace": "shop", "name": "web", "delta": 5, "max": 6})
    result = await action.run(params, ctx)
    assert result["replicas"] == {"before": 3, "after": 6}
    assert fake_kube.deployment("shop", "web")["spec"]["replicas"] == 6
    assert fake_kube.writes[0].path.endswith("/deployments/web/scale")
    again = await action.run(params, ctx)  # already at max: nothing written
    assert again["replicas"] == {"before": 6, "after": 6}
    assert len(fake_kube.writes) == 1


async def test_scale_of_a_missing_deployment_fails_with_the_apis_message(
    ctx: ActionContext,
) -> None:
    action = Scale()
    params = action.parse({"namespace": "shop", "name": "nope", "replicas": 2, "max": 4})
    with pytest.raises(PermanentError) as caught:
        await action.run(params, ctx)
    assert 'deployments.apps "nope" not found' in str(caught.value)
    assert "404" in str(caught.value)


async def test_rollout_undo_restores_the_previous_template(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web", image="shop/web:1.0")
    apps = client.AppsV1Api(ctx.kubernetes)
    new_image = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "web", "image": "shop/web:2.0-bad"}]}}
        }
    }
    await apps.patch_namespaced_deployment("web", "shop", new_image)
    assert _images(fake_kube.deployment("shop", "web")) == ["shop/web:2.0-bad"]
    action = RolloutUndo()
    result = await action.run(action.parse({"namespace": "shop", "name": "web"}), ctx)
    assert result["revision"]["before"] == 2
    assert result["revision"]["restored"] == 1
    assert result["images"] == {"before": ["shop/web:2.0-bad"], "after": ["shop/web:1.0"]}
    assert _images(fake_kube.deployment("shop", "web")) == ["shop/web:1.0"]
    # as with kubectl, the old ReplicaSet is reused as the next revision
    revisions = {
        rs["metadata"]["annotations"][REVISION]: _images(rs)
        for rs in fake_kube.replicasets("shop", "web")
    }
    assert revisions == {"2": ["shop/web:2.0-bad"], "3": ["shop/web:1.0"]}


async def test_rollout_undo_without_history_fails(fake_kube: FakeKube, ctx: ActionContext) -> None:
    fake_kube.add_deployment("shop", "web")
    action = RolloutUndo()
    with pytest.raises(PermanentError, match='no rollout history found for deployment "web"'):
        await action.run(action.parse({"namespace": "shop", "name": "web"}), ctx)


async def test_conflicts_are_retried_then_temporary(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web")
    action = RolloutRestart()
    params = action.parse({"namespace": "shop", "name": "web"})
    fake_kube.inject_conflicts("Deployment", "shop", "web", count=2)
    await action.run(params, ctx)  # two 409s, then it goes through
    assert [w.status for w in fake_kube.writes] == [409, 409, 200]
    fake_kube.inject_conflicts("Deployment", "shop", "web", count=10)
    with pytest.raises(TemporaryError, match="conflict"):
        await action.run(params, ctx)


async def test_a_forbidden_namespace_is_permanent(fake_kube: FakeKube, ctx: ActionContext) -> None:
    fake_kube.add_deployment("other", "web")
    fake_kube.allowed_namespaces = {"shop"}
    action = RolloutRestart()
    with pytest.raises(PermanentError) as caught:
        await action.run(action.parse({"namespace": "other", "name": "web"}), ctx)
    assert "is forbidden" in str(caught.value)
    assert "403" in str(caught.value)


async def test_delete_pods_by_selector_within_max(fake_kube: FakeKube, ctx: ActionContext) -> None:
    fake_kube.add_deployment("shop", "web", replicas=3, labels={"app": "web"})
    before = {p["metadata"]["name"] for p in fake_kube.pods("shop", "app=web")}
    action = DeletePod()
    with pytest.raises(PermanentError, match="3 pods in shop match app=web, more than max 2"):
        await action.run(action.parse({"namespace": "shop", "selector": "app=web", "max": 2}), ctx)
    assert {p["metadata"]["name"] for p in fake_kube.pods("shop", "app=web")} == before
    (one,) = sorted(before)[:1]
    result = await action.run(action.parse({"namespace": "shop", "name": one}), ctx)
    assert result["deleted"] == [one]
    assert one not in {p["metadata"]["name"] for p in fake_kube.pods("shop", "app=web")}


def _images(obj: dict[str, object]) -> list[str]:
    spec = obj["spec"]["template"]["spec"]  # type: ignore[index]
    return [c["image"] for c in spec["containers"]]


async def test_a_paused_deployment_is_not_restarted_as_kubectl_refuses(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=2, paused=True)
    action = RolloutRestart()
    with pytest.raises(PermanentError) as failure:
        await action.run(action.parse({"namespace": "shop", "name": "web"}), ctx)
    assert str(failure.value) == (
        'rollout restart deployment/web in shop: deployments.apps "web" can\'t restart paused '
        "deployment (run rollout resume first)"
    )
    assert fake_kube.writes == []  # nothing patched


async def test_a_paused_deployment_is_not_rolled_back(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web", image="shop/web:1.0")
    apps = client.AppsV1Api(ctx.kubernetes)
    bad = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "shop/web:2"}]}}}}
    await apps.patch_namespaced_deployment("web", "shop", bad)
    await apps.patch_namespaced_deployment("web", "shop", {"spec": {"paused": True}})
    writes = len(fake_kube.writes)
    action = RolloutUndo()
    with pytest.raises(PermanentError, match="you cannot rollback a paused deployment; resume it"):
        await action.run(action.parse({"namespace": "shop", "name": "web"}), ctx)
    assert len(fake_kube.writes) == writes
    assert _images(fake_kube.deployment("shop", "web")) == ["shop/web:2"]


async def test_rollout_undo_takes_the_revisions_annotations_as_kubectl_does(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    cause = "kubernetes.io/change-cause"
    fake_kube.add_deployment("shop", "web", image="shop/web:1.0", annotations={cause: "release 1"})
    apps = client.AppsV1Api(ctx.kubernetes)
    bad = {
        "metadata": {"annotations": {cause: "release 2 (bad)", "team": "checkout"}},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "shop/web:2"}]}}},
    }
    await apps.patch_namespaced_deployment("web", "shop", bad)
    action = RolloutUndo()
    await action.run(action.parse({"namespace": "shop", "name": "web"}), ctx)
    annotations = fake_kube.deployment("shop", "web")["metadata"]["annotations"]
    assert annotations[cause] == "release 1"  # the bad release's cause went with it
    assert "team" not in annotations  # revision 1's ReplicaSet never had it
    assert annotations[REVISION] == "3"  # kept from the Deployment, moved on by the controller
    patch = fake_kube.writes[-1]
    assert patch.content_type == "application/json-patch+json"
    assert [op["path"] for op in patch.body] == ["/spec/template", "/metadata/annotations"]


async def test_scale_of_a_workload_an_hpa_scales_is_refused_naming_it(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=2)
    fake_kube.add_hpa("shop", "web-cpu", "web", minimum=2, maximum=8)
    action = Scale()
    with pytest.raises(PermanentError) as failure:
        await action.run(
            action.parse({"namespace": "shop", "name": "web", "delta": 2, "max": 6}), ctx
        )
    assert "HorizontalPodAutoscaler shop/web-cpu scales it (min 2, max 8)" in str(failure.value)
    assert "hpa: raise_min" in str(failure.value)
    assert fake_kube.deployment("shop", "web")["spec"]["replicas"] == 2
    assert fake_kube.writes == []


async def test_scale_with_raise_min_raises_the_hpas_minimum_within_bounds(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=2)
    fake_kube.add_hpa("shop", "web-cpu", "web", minimum=2, maximum=8)
    action = Scale()
    params = {"namespace": "shop", "name": "web", "delta": 5, "max": 6, "hpa": "raise_min"}
    result = await action.run(action.parse(params), ctx)
    assert result["hpa"] == "web-cpu"
    assert result["min_replicas"] == {"before": 2, "after": 6}  # 2 + 5, clamped to max 6
    assert fake_kube.hpa("shop", "web-cpu")["spec"]["minReplicas"] == 6
    assert fake_kube.deployment("shop", "web")["spec"]["replicas"] == 2  # the HPA scales it
    with pytest.raises(ParamError, match="expected one of refuse, raise_min"):
        action.parse({**params, "hpa": "ignore"})


# -- evict_pod: the Eviction API and PodDisruptionBudgets ------------------------------------


def _pod_names(kube: FakeKube, selector: str = "app=web") -> set[str]:
    return {p["metadata"]["name"] for p in kube.pods("shop", selector)}


def _within(ctx: ActionContext, seconds: float) -> ActionContext:
    """The context an attempt gets from a step whose timeout is ``seconds``."""
    return dataclasses.replace(ctx, deadline=asyncio.get_running_loop().time() + seconds)


async def test_evict_pod_without_a_budget_evicts_and_the_controller_replaces_it(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=2)
    before = _pod_names(fake_kube)
    victim = sorted(before)[0]
    action = EvictPod()
    result = await action.run(action.parse({"namespace": "shop", "name": victim}), ctx)
    assert result == {"namespace": "shop", "evicted": [victim], "budget_waits": 0}
    after = _pod_names(fake_kube)
    assert victim not in after and len(after) == 2
    (post,) = fake_kube.writes
    assert (post.method, post.path) == ("POST", f"/api/v1/namespaces/shop/pods/{victim}/eviction")
    assert post.body["kind"] == "Eviction" and post.body["metadata"]["name"] == victim


async def test_a_budget_that_allows_no_disruption_blocks_the_eviction_and_is_named(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=2)
    fake_kube.add_pdb("shop", "web-pdb", {"app": "web"}, min_available=2)
    before = _pod_names(fake_kube)
    action = EvictPod()
    params = action.parse({"namespace": "shop", "name": sorted(before)[0]})
    limited = _within(ctx, 2.5)
    assert limited.deadline is not None
    with pytest.raises(TemporaryError) as blocked:
        async with asyncio.timeout_at(limited.deadline):  # the step's timeout, as the executor
            await action.run(params, limited)
    assert str(blocked.value) == (
        f"pod {sorted(before)[0]} in shop: Cannot evict pod as it would violate the pod's "
        "disruption budget. (The disruption budget web-pdb needs 2 healthy pods and has 2 "
        "currently) (API answered 429)"
    )
    assert _pod_names(fake_kube) == before  # nothing evicted
    evictions = [r for r in fake_kube.writes if r.path.endswith("/eviction")]
    assert len(evictions) >= 2  # asked again within the step's time, then gave up


async def test_the_eviction_goes_through_once_a_new_replica_is_ready(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=2)
    fake_kube.add_pdb("shop", "web-pdb", {"app": "web"}, min_available=2)
    running = _pod_names(fake_kube)
    victim = sorted(running)[0]
    fake_kube.pods_start_ready = False
    scaled = fake_kube.deployment("shop", "web")
    scaled["spec"]["replicas"] = 3
    fake_kube.update(scaled)
    (fresh,) = _pod_names(fake_kube) - running
    assert fake_kube.pdb("shop", "web-pdb")["status"]["disruptionsAllowed"] == 0

    action = EvictPod()
    params = action.parse({"namespace": "shop", "name": victim})
    eviction = asyncio.create_task(action.run(params, _within(ctx, 30)))
    await asyncio.sleep(0.7)
    assert not eviction.done() and victim in _pod_names(fake_kube)
    fake_kube.set_pod_ready("shop", fresh)
    result = await asyncio.wait_for(eviction, 10)
    assert result["evicted"] == [victim] and result["budget_waits"] >= 1
    assert victim not in _pod_names(fake_kube)


async def test_a_pod_already_gone_counts_as_evicted_as_for_kubectl_drain(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=1)
    action = EvictPod()
    result = await action.run(action.parse({"namespace": "shop", "name": "web-gone"}), ctx)
    assert result == {
        "namespace": "shop",
        "evicted": [],
        "budget_waits": 0,
        "already_gone": ["web-gone"],
    }


async def test_a_pod_two_budgets_select_fails_at_once_and_permanently(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=2)
    fake_kube.add_pdb("shop", "one", {"app": "web"}, max_unavailable=1)
    fake_kube.add_pdb("shop", "two", {"app": "web"}, max_unavailable=1)
    victim = sorted(_pod_names(fake_kube))[0]
    action = EvictPod()
    with pytest.raises(PermanentError, match="more than one PodDisruptionBudget"):
        await action.run(action.parse({"namespace": "shop", "name": victim}), _within(ctx, 30))
    assert len([r for r in fake_kube.writes if r.path.endswith("/eviction")]) == 1


async def test_evict_pod_by_selector_stops_at_max_before_evicting_any(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=3)
    before = _pod_names(fake_kube)
    action = EvictPod()
    with pytest.raises(PermanentError, match="3 pods in shop match app=web, more than max 2"):
        await action.run(action.parse({"namespace": "shop", "selector": "app=web", "max": 2}), ctx)
    assert _pod_names(fake_kube) == before and fake_kube.writes == []


async def test_evict_pod_needs_the_eviction_permission(
    fake_kube: FakeKube, ctx: ActionContext
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=1)
    (victim,) = _pod_names(fake_kube)
    fake_kube.deny("create", "pods/eviction")
    action = EvictPod()
    with pytest.raises(PermanentError) as denied:
        await action.run(action.parse({"namespace": "shop", "name": victim}), ctx)
    assert str(denied.value) == (
        f'pod {victim} in shop: pods "{victim}" is forbidden: User '
        '"system:serviceaccount:remedy:remedy" cannot create resource "pods/eviction" in API '
        'group "" in the namespace "shop" (API answered 403)'
    )

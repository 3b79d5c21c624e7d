"""Kubernetes actions through the whole service: an Alertmanager webhook in, the audit out."""

from __future__ import annotations

from kubernetes_asyncio import client, config

from receiver.config import KubernetesConfig
from tests.conftest import StartRemedy, am_alert, am_payload
from tests.support.kube import FakeKube
from tests.support.recorder import Recorder

RULES = """
rules:
  - name: restart-crashing
    match: {alertname: ServiceDown}
    target: 'deployment:{{ labels.namespace }}/{{ labels.deployment }}'
    actions:
      - action: kubernetes.rollout_restart
        params: {namespace: '{{ labels.namespace }}', name: '{{ labels.deployment }}'}
  - name: scale-out
    match: {alertname: SlowResponseTime}
    target: 'deployment:{{ labels.namespace }}/{{ labels.deployment }}'
    guards: {cooldown: 10m}
    actions:
      - action: kubernetes.scale
        params: {namespace: '{{ labels.namespace }}', name: '{{ labels.deployment }}',
                 delta: 2, max: 5}
"""


def labels(namespace: str = "shop", deployment: str = "web") -> dict[str, str]:
    return {"namespace": namespace, "deployment": deployment}


async def test_service_down_rolls_the_deployment_out_again(
    remedy: StartRemedy, fake_kube: FakeKube
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=2)
    server = await remedy(
        RULES,
        dry_run=False,
        kubernetes=KubernetesConfig(kubeconfig=str(fake_kube.kubeconfig)),
        allow={"kubernetes": ("^shop$",)},
    )
    status, _ = await server.post_alerts(am_payload(am_alert(labels=labels())))
    assert status == 200
    await server.settle()
    (succeeded,) = await server.events(outcome="succeeded")
    result = succeeded["result"]
    assert result["restarted_at"]["before"] is None
    assert result["restarted_at"]["after"] is not None
    assert len(fake_kube.replicasets("shop", "web")) == 2


async def test_scale_out_with_before_and_after_and_a_cooldown(
    remedy: StartRemedy, fake_kube: FakeKube
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=2)
    server = await remedy(
        RULES, dry_run=False, kubernetes=KubernetesConfig(kubeconfig=str(fake_kube.kubeconfig))
    )
    first = am_alert("SlowResponseTime", labels=labels(), starts_at="2026-11-24T05:00:00Z")
    second = am_alert("SlowResponseTime", labels=labels(), starts_at="2026-11-24T05:05:00Z")
    for alert in (first, second):
        await server.post_alerts(am_payload(alert))
        await server.settle()
    (succeeded,) = await server.events(outcome="succeeded")
    assert succeeded["result"]["replicas"] == {"before": 2, "after": 4}
    assert (await server.events(outcome="cooldown"))[0]["event"] == "skipped"
    assert fake_kube.deployment("shop", "web")["spec"]["replicas"] == 4


async def test_a_namespace_outside_the_allow_list_is_denied_before_any_request(
    remedy: StartRemedy, fake_kube: FakeKube
) -> None:
    fake_kube.add_deployment("payments", "web")
    server = await remedy(
        RULES,
        dry_run=False,
        kubernetes=KubernetesConfig(kubeconfig=str(fake_kube.kubeconfig)),
        allow={"kubernetes": ("^shop$",)},
    )
    await server.post_alerts(am_payload(am_alert(labels=labels("payments"))))
    await server.settle()
    (denied,) = await server.events(outcome="denied")
    assert "payments is outside backends.kubernetes.namespaces" in denied["error"]
    assert fake_kube.requests == []


async def test_a_missing_deployment_fails_with_the_apis_message(
    remedy: StartRemedy, fake_kube: FakeKube
) -> None:
    server = await remedy(
        RULES, dry_run=False, kubernetes=KubernetesConfig(kubeconfig=str(fake_kube.kubeconfig))
    )
    await server.post_alerts(am_payload(am_alert(labels=labels(deployment="gone"))))
    await server.settle()
    (failed,) = await server.events(outcome="failed")
    assert 'deployments.apps "gone" not found' in failed["error"]


UNDO = """
rules:
  - name: roll-back-bad-deploy
    match: {alertname: HighErrorRate}
    target: 'deployment:{{ labels.namespace }}/{{ labels.deployment }}'
    actions:
      - action: kubernetes.rollout_undo
        params: {namespace: '{{ labels.namespace }}', name: '{{ labels.deployment }}'}
        retries: 0
"""


async def set_image(fake_kube: FakeKube, namespace: str, name: str, image: str) -> None:
    """``kubectl set image``, through the real client: the deployment's next revision."""
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(fake_kube.kubeconfig), client_configuration=configuration
    )
    async with client.ApiClient(configuration=configuration) as api:
        body = {"spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}}
        await client.AppsV1Api(api).patch_namespaced_deployment(name, namespace, body)


async def test_high_error_rate_rolls_back_through_conflicts(
    remedy: StartRemedy, fake_kube: FakeKube
) -> None:
    fake_kube.add_deployment("shop", "web", image="shop/web:1.0")
    await set_image(fake_kube, "shop", "web", "shop/web:2.0-bad")
    fake_kube.inject_conflicts("Deployment", "shop", "web", count=2)
    server = await remedy(
        UNDO, dry_run=False, kubernetes=KubernetesConfig(kubeconfig=str(fake_kube.kubeconfig))
    )
    await server.post_alerts(am_payload(am_alert("HighErrorRate", labels=labels())))
    await server.settle()
    (succeeded,) = await server.events(outcome="succeeded")
    assert succeeded["result"]["images"] == {
        "before": ["shop/web:2.0-bad"],
        "after": ["shop/web:1.0"],
    }
    assert succeeded["result"]["revision"]["restored"] == 1
    containers = fake_kube.deployment("shop", "web")["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == ["shop/web:1.0"]
    assert [w.status for w in fake_kube.writes if w.method == "PATCH"][-3:] == [409, 409, 200]


async def test_a_paused_deployment_fails_with_the_pause_named_and_on_failure_runs(
    remedy: StartRemedy, fake_kube: FakeKube, recorder: Recorder
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=2, paused=True)
    rules = RULES.replace(
        "  - name: scale-out",
        "    on_failure:\n"
        f"      - {{action: http.request, params: {{url: '{recorder.url('/page')}'}}}}\n"
        "  - name: scale-out",
        1,
    )
    server = await remedy(
        rules,
        dry_run=False,
        kubernetes=KubernetesConfig(kubeconfig=str(fake_kube.kubeconfig)),
        allow={"kubernetes": ("^shop$",)},
    )
    status, _ = await server.post_alerts(am_payload(am_alert(labels=labels())))
    assert status == 200
    await server.settle()
    (failed,) = [e for e in await server.events(outcome="failed") if e["reason"] is None]
    assert "can't restart paused deployment (run rollout resume first)" in failed["error"]
    assert [r.path for r in recorder.received] == ["/page"]
    assert fake_kube.writes == []  # nothing patched


async def test_a_memory_rule_evicts_within_the_pods_budget(
    remedy: StartRemedy, fake_kube: FakeKube
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=3)
    fake_kube.add_pdb("shop", "web", {"app": "web"}, min_available=3)
    first, second, _ = sorted(p["metadata"]["name"] for p in fake_kube.pods("shop"))
    rules = """
rules:
  - name: high-memory-evict-pod
    match: {alertname: HighMemoryUsage}
    target: 'pod:{{ labels.namespace }}/{{ labels.pod }}'
    actions:
      - action: kubernetes.evict_pod
        params: {namespace: '{{ labels.namespace }}', name: '{{ labels.pod }}'}
        timeout: 2s
"""
    server = await remedy(
        rules,
        dry_run=False,
        kubernetes=KubernetesConfig(kubeconfig=str(fake_kube.kubeconfig)),
        allow={"kubernetes": ("^shop$",)},
    )
    memory = {"alertname": "HighMemoryUsage", "namespace": "shop"}
    status, _ = await server.post_alerts(am_payload(am_alert(labels={**memory, "pod": first})))
    assert status == 200
    await server.settle()
    (failed,) = await server.events(outcome="failed")
    assert failed["error"] == (
        f"pod {first} in shop: Cannot evict pod as it would violate the pod's disruption "
        "budget. (The disruption budget web needs 3 healthy pods and has 3 currently) "
        "(API answered 429)"
    )
    assert first in {p["metadata"]["name"] for p in fake_kube.pods("shop")}  # still serving

    budget = fake_kube.pdb("shop", "web")
    budget["spec"]["minAvailable"] = 2
    fake_kube.update(budget)
    status, _ = await server.post_alerts(am_payload(am_alert(labels={**memory, "pod": second})))
    assert status == 200
    await server.settle()
    (succeeded,) = await server.events(outcome="succeeded")
    assert succeeded["result"] == {"namespace": "shop", "evicted": [second], "budget_waits": 0}
    names = {p["metadata"]["name"] for p in fake_kube.pods("shop")}
    assert second not in names and len(names) == 3

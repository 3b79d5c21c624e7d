"""The fake Kubernetes API server answers the real kubernetes-asyncio client as a cluster would.

The Kubernetes actions are tested against this fake, so it has to be right first:
these tests drive it through the real client and a generated kubeconfig, and check
the API semantics the actions depend on: ReplicaSet revisions, the scale subresource,
404/403/409 Status bodies, the three patch types, selectors and pod deletion.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import ApiException

from tests.support.kube import (
    CONTROLLER_REVISION_HASH,
    JSON_PATCH,
    MERGE_PATCH,
    POD_TEMPLATE_HASH,
    RESTARTED_AT,
    REVISION,
    REVISION_HISTORY,
    STRATEGIC_MERGE_PATCH,
    FakeKube,
    format_selector,
    json_patch,
    parse_label_selector,
    pod_ready,
    strategic_merge_patch,
)

RESTART = {
    "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2025-01-02T03:04:05Z"}}}}
}
"""The patch ``kubectl rollout restart`` sends, as a strategic merge patch."""

CONFLICT = (
    'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; '
    "please apply your changes to the latest version and try again"
)


@pytest.fixture
async def api(fake_kube: FakeKube) -> AsyncIterator[client.ApiClient]:
    """A real kubernetes-asyncio client configured from the fake's kubeconfig."""
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(fake_kube.kubeconfig), client_configuration=configuration
    )
    async with client.ApiClient(configuration=configuration) as api_client:
        yield api_client


@pytest.fixture
def default_configuration() -> Iterator[None]:
    """Forget the process-wide default configuration ``load_kube_config`` sets."""
    yield
    client.Configuration.set_default(None)


def status_of(error: ApiException) -> dict[str, Any]:
    """The ``Status`` object an API error carried."""
    assert error.body is not None
    body: dict[str, Any] = json.loads(error.body)
    return body


def names(objects: list[dict[str, Any]]) -> list[str]:
    """The names of objects, as listed."""
    return [o["metadata"]["name"] for o in objects]


# --- reading and rolling out ---------------------------------------------------------------


async def test_default_client_configuration_reaches_the_fake(
    fake_kube: FakeKube, default_configuration: None
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=3)

    await config.load_kube_config(config_file=str(fake_kube.kubeconfig))
    async with client.ApiClient() as api:
        deployment = await client.AppsV1Api(api).read_namespaced_deployment("web", "prod")

    assert deployment.spec.replicas == 3
    assert deployment.metadata.generation == 1
    assert deployment.metadata.annotations[REVISION] == "1"
    assert deployment.status.ready_replicas == 3
    assert deployment.status.observed_generation == 1
    stored = fake_kube.deployment("prod", "web")
    assert deployment.metadata.resource_version == stored["metadata"]["resourceVersion"]
    [request] = fake_kube.requests
    assert (request.method, request.path) == (
        "GET",
        "/apis/apps/v1/namespaces/prod/deployments/web",
    )
    assert request.headers["Authorization"] == f"Bearer {fake_kube.token}"
    assert request.status == 200
    assert fake_kube.url.startswith("https://127.0.0.1:")


async def test_rollout_restart_makes_a_new_replicaset_revision(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=2)
    [first] = fake_kube.replicasets("prod", "web")
    apps = client.AppsV1Api(api)

    patched = await apps.patch_namespaced_deployment("web", "prod", RESTART)

    assert patched.metadata.generation == 2
    assert patched.spec.template.metadata.annotations == {RESTARTED_AT: "2025-01-02T03:04:05Z"}
    old, new = fake_kube.replicasets("prod", "web")
    assert old["metadata"]["name"] == first["metadata"]["name"]
    assert old["spec"]["replicas"] == 0
    assert new["metadata"]["annotations"][REVISION] == "2"
    pod_hash = new["metadata"]["labels"][POD_TEMPLATE_HASH]
    assert new["metadata"]["name"] == f"web-{pod_hash}" != old["metadata"]["name"]
    assert new["spec"]["selector"]["matchLabels"] == {"app": "web", POD_TEMPLATE_HASH: pod_hash}
    [owner] = new["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Deployment", "web", True)
    assert owner["uid"] == fake_kube.deployment("prod", "web")["metadata"]["uid"]
    pods = fake_kube.pods("prod", "app=web")
    assert len(pods) == 2
    assert {p["metadata"]["labels"][POD_TEMPLATE_HASH] for p in pods} == {pod_hash}

    deployment = await apps.read_namespaced_deployment("web", "prod")
    assert deployment.metadata.annotations[REVISION] == "2"
    assert deployment.status.observed_generation == 2
    assert deployment.status.updated_replicas == deployment.status.available_replicas == 2
    listed = await apps.list_namespaced_replica_set("prod", label_selector="app=web")
    assert len(listed.items) == 2
    [write] = fake_kube.writes
    assert write.path == "/apis/apps/v1/namespaces/prod/deployments/web"
    assert write.content_type == STRATEGIC_MERGE_PATCH
    assert write.body == RESTART


async def test_rollout_undo_reuses_the_previous_replicaset_with_the_next_revision(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web", image="nginx:1.26")
    apps = client.AppsV1Api(api)
    new_image = {"name": "web", "image": "nginx:1.27"}
    await apps.patch_namespaced_deployment(
        "web", "prod", {"spec": {"template": {"spec": {"containers": [new_image]}}}}
    )

    # What `kubectl rollout undo` does: find the previous revision's ReplicaSet and put
    # its template, without the hash label, back with a JSON patch.
    deployment = await apps.read_namespaced_deployment("web", "prod")
    selector = format_selector({"matchLabels": deployment.spec.selector.match_labels})
    listed = await apps.list_namespaced_replica_set("prod", label_selector=selector)
    owned = [
        rs
        for rs in listed.items
        if any(
            ref.controller and ref.uid == deployment.metadata.uid
            for ref in rs.metadata.owner_references or []
        )
    ]
    previous = sorted(owned, key=lambda rs: int(rs.metadata.annotations[REVISION]))[-2]
    template = api.sanitize_for_serialization(previous.spec.template)
    del template["metadata"]["labels"][POD_TEMPLATE_HASH]
    annotations = {REVISION: deployment.metadata.annotations[REVISION]}
    await apps.patch_namespaced_deployment(
        "web",
        "prod",
        [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ],
    )

    left_behind, reused = fake_kube.replicasets("prod", "web")
    assert reused["metadata"]["name"] == previous.metadata.name
    assert reused["metadata"]["annotations"][REVISION] == "3"
    assert reused["metadata"]["annotations"][REVISION_HISTORY] == "1"
    assert reused["spec"]["replicas"] == 1
    assert left_behind["metadata"]["annotations"][REVISION] == "2"
    assert left_behind["spec"]["replicas"] == 0
    after = fake_kube.deployment("prod", "web")
    assert after["metadata"]["annotations"][REVISION] == "3"
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    [pod] = fake_kube.pods("prod", "app=web")
    assert pod["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert fake_kube.writes[-1].content_type == JSON_PATCH


async def test_a_paused_deployment_takes_an_old_template_without_starting_pods(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    """As the real controller's sync: the old ReplicaSet gets the next revision at 0
    replicas, the active one keeps its pods, and nothing new starts while paused."""
    fake_kube.add_deployment("prod", "web", replicas=2, image="nginx:1.26")
    apps = client.AppsV1Api(api)
    new_image = {"name": "web", "image": "nginx:1.27"}
    await apps.patch_namespaced_deployment(
        "web", "prod", {"spec": {"template": {"spec": {"containers": [new_image]}}}}
    )
    await apps.patch_namespaced_deployment("web", "prod", {"spec": {"paused": True}})
    first, second = fake_kube.replicasets("prod", "web")
    template = copy.deepcopy(first["spec"]["template"])
    del template["metadata"]["labels"][POD_TEMPLATE_HASH]
    await apps.patch_namespaced_deployment(
        "web", "prod", [{"op": "replace", "path": "/spec/template", "value": template}]
    )

    by_name = {rs["metadata"]["name"]: rs for rs in fake_kube.replicasets("prod", "web")}
    old, active = by_name[first["metadata"]["name"]], by_name[second["metadata"]["name"]]
    assert old["metadata"]["annotations"][REVISION] == "3"
    assert old["spec"]["replicas"] == 0
    assert active["spec"]["replicas"] == 2
    pods = fake_kube.pods("prod", "app=web")
    assert [p["spec"]["containers"][0]["image"] for p in pods] == ["nginx:1.27", "nginx:1.27"]
    assert fake_kube.deployment("prod", "web")["metadata"]["annotations"][REVISION] == "3"


async def test_statefulset_and_daemonset_restarts_replace_their_pods(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_statefulset("prod", "db", replicas=2)
    fake_kube.add_daemonset("prod", "agent")
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in fake_kube.pods("prod")}
    old_revision = fake_kube.statefulset("prod", "db")["status"]["updateRevision"]
    apps = client.AppsV1Api(api)

    await apps.patch_namespaced_stateful_set("db", "prod", RESTART)
    await apps.patch_namespaced_daemon_set("agent", "prod", RESTART)

    sts = await apps.read_namespaced_stateful_set("db", "prod")
    assert sts.metadata.generation == 2
    assert sts.status.update_revision != old_revision
    assert sts.status.current_revision == sts.status.update_revision
    db_pods = fake_kube.pods("prod", "app=db")
    assert names(db_pods) == ["db-0", "db-1"]
    for pod in db_pods:
        assert pod["metadata"]["uid"] != before[pod["metadata"]["name"]]
        assert sts.status.update_revision == pod["metadata"]["labels"][CONTROLLER_REVISION_HASH]
    ds = await apps.read_namespaced_daemon_set("agent", "prod")
    assert ds.status.observed_generation == 2
    assert ds.status.updated_number_scheduled == ds.status.desired_number_scheduled == 1
    [agent] = fake_kube.pods("prod", "app=agent")
    assert agent["metadata"]["name"] not in before
    assert agent["metadata"]["annotations"] == {RESTARTED_AT: "2025-01-02T03:04:05Z"}


async def test_create_makes_revision_one_and_refuses_a_second_time(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    apps = client.AppsV1Api(api)
    manifest = client.V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="web", image="nginx:1.27")]
                ),
            ),
        ),
    )

    created = await apps.create_namespaced_deployment("prod", manifest)
    with pytest.raises(ApiException) as caught:
        await apps.create_namespaced_deployment("prod", manifest)

    assert created.metadata.generation == 1
    assert created.metadata.uid
    assert created.spec.strategy.rolling_update.max_surge == "25%"
    [rs] = fake_kube.replicasets("prod", "web")
    assert rs["metadata"]["annotations"][REVISION] == "1"
    assert len(fake_kube.pods("prod", "app=web")) == 2
    assert caught.value.status == 409
    status = status_of(caught.value)
    assert (status["reason"], status["message"]) == (
        "AlreadyExists",
        'deployments.apps "web" already exists',
    )
    assert fake_kube.requests[0].status == 201


# --- the scale subresource -------------------------------------------------------------------


async def test_scale_subresource_sets_the_deployment_replicas(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=2)
    apps = client.AppsV1Api(api)

    scale = await apps.read_namespaced_deployment_scale("web", "prod")
    patched = await apps.patch_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": 5}})

    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert scale.spec.replicas == scale.status.replicas == 2
    assert scale.status.selector == "app=web"
    assert patched.spec.replicas == 5
    assert int(patched.metadata.resource_version) > int(scale.metadata.resource_version)
    deployment = fake_kube.deployment("prod", "web")
    assert deployment["spec"]["replicas"] == 5
    assert deployment["metadata"]["generation"] == 2
    assert deployment["metadata"]["annotations"][REVISION] == "1"
    assert len(fake_kube.replicasets("prod", "web")) == 1
    assert len(fake_kube.pods("prod", "app=web")) == 5
    [write] = fake_kube.writes
    assert (write.method, write.path) == (
        "PATCH",
        "/apis/apps/v1/namespaces/prod/deployments/web/scale",
    )


async def test_replacing_a_stale_scale_conflicts(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=2)
    apps = client.AppsV1Api(api)
    scale = await apps.read_namespaced_deployment_scale("web", "prod")
    await apps.patch_namespaced_deployment("web", "prod", RESTART)

    scale.spec.replicas = 4
    with pytest.raises(ApiException) as caught:
        await apps.replace_namespaced_deployment_scale("web", "prod", scale)
    fresh = await apps.read_namespaced_deployment_scale("web", "prod")
    fresh.spec.replicas = 4
    replaced = await apps.replace_namespaced_deployment_scale("web", "prod", fresh)

    assert caught.value.status == 409
    assert status_of(caught.value)["message"] == CONFLICT
    assert replaced.spec.replicas == 4
    assert fake_kube.deployment("prod", "web")["spec"]["replicas"] == 4


async def test_statefulset_scale_adds_ordinal_pods(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_statefulset("prod", "db", replicas=1)

    await client.AppsV1Api(api).patch_namespaced_stateful_set_scale(
        "db", "prod", {"spec": {"replicas": 3}}
    )

    assert names(fake_kube.pods("prod", "app=db")) == ["db-0", "db-1", "db-2"]
    assert fake_kube.statefulset("prod", "db")["status"]["readyReplicas"] == 3


async def test_scaling_to_the_same_count_is_not_a_write(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=2)
    before = fake_kube.deployment("prod", "web")["metadata"]

    scale = await client.AppsV1Api(api).patch_namespaced_deployment_scale(
        "web", "prod", {"spec": {"replicas": 2}}
    )

    assert scale.metadata.resource_version == before["resourceVersion"]
    assert fake_kube.deployment("prod", "web")["metadata"] == before


async def test_negative_scale_is_invalid(fake_kube: FakeKube, api: client.ApiClient) -> None:
    fake_kube.add_deployment("prod", "web")

    with pytest.raises(ApiException) as caught:
        await client.AppsV1Api(api).patch_namespaced_deployment_scale(
            "web", "prod", {"spec": {"replicas": -1}}
        )

    assert caught.value.status == 422
    status = status_of(caught.value)
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: '
        "must be greater than or equal to 0"
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": "Invalid value: -1: must be greater than or equal to 0",
            "field": "spec.replicas",
        }
    ]


# --- errors --------------------------------------------------------------------------------


async def test_missing_objects_are_not_found(fake_kube: FakeKube, api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as deployment:
        await client.AppsV1Api(api).read_namespaced_deployment("web", "prod")
    with pytest.raises(ApiException) as pod:
        await client.CoreV1Api(api).delete_namespaced_pod("web-1", "prod")

    assert deployment.value.status == 404
    assert status_of(deployment.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "web" not found',
        "reason": "NotFound",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 404,
    }
    assert pod.value.status == 404
    assert status_of(pod.value)["message"] == 'pods "web-1" not found'
    assert status_of(pod.value)["details"] == {"name": "web-1", "kind": "pods"}


async def test_namespaces_outside_the_allow_list_are_forbidden(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.allowed_namespaces = {"prod"}
    fake_kube.add_deployment("prod", "web")
    fake_kube.add_deployment("other", "web")
    apps = client.AppsV1Api(api)

    with pytest.raises(ApiException) as caught:
        await apps.patch_namespaced_deployment("web", "other", RESTART)
    with pytest.raises(ApiException) as listing:
        await client.CoreV1Api(api).list_namespaced_pod("other")
    allowed = await apps.read_namespaced_deployment("web", "prod")

    assert caught.value.status == 403
    status = status_of(caught.value)
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'deployments.apps "web" is forbidden: User "system:serviceaccount:remedy:remedy" '
        'cannot patch resource "deployments" in API group "apps" in the namespace "other"'
    )
    assert status_of(listing.value)["message"] == (
        'pods is forbidden: User "system:serviceaccount:remedy:remedy" cannot list resource '
        '"pods" in API group "" in the namespace "other"'
    )
    assert fake_kube.deployment("other", "web")["metadata"]["generation"] == 1
    assert allowed.metadata.name == "web"


async def test_a_withdrawn_permission_is_forbidden(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web")
    fake_kube.deny("patch", "deployments/scale")

    with pytest.raises(ApiException) as caught:
        await client.AppsV1Api(api).patch_namespaced_deployment_scale(
            "web", "prod", {"spec": {"replicas": 3}}
        )

    assert caught.value.status == 403
    assert status_of(caught.value)["message"] == (
        'deployments.apps "web" is forbidden: User "system:serviceaccount:remedy:remedy" '
        'cannot patch resource "deployments/scale" in API group "apps" in the namespace "prod"'
    )


async def test_replacing_with_a_stale_resource_version_conflicts(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=2)
    apps = client.AppsV1Api(api)
    stale = await apps.read_namespaced_deployment("web", "prod")
    await apps.patch_namespaced_deployment("web", "prod", RESTART)

    stale.spec.replicas = 3
    with pytest.raises(ApiException) as caught:
        await apps.replace_namespaced_deployment("web", "prod", stale)
    fresh = await apps.read_namespaced_deployment("web", "prod")
    fresh.spec.replicas = 3
    replaced = await apps.replace_namespaced_deployment("web", "prod", fresh)

    assert caught.value.status == 409
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": CONFLICT,
        "reason": "Conflict",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 409,
    }
    assert replaced.spec.replicas == 3
    assert replaced.metadata.generation == 3
    # A round trip through the client's models does not change the template.
    assert len(fake_kube.replicasets("prod", "web")) == 2


async def test_a_patch_that_sets_a_stale_resource_version_conflicts(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web")
    apps = client.AppsV1Api(api)
    stale = (await apps.read_namespaced_deployment("web", "prod")).metadata.resource_version
    await apps.patch_namespaced_deployment("web", "prod", RESTART)

    with pytest.raises(ApiException) as caught:
        await apps.patch_namespaced_deployment(
            "web", "prod", {"metadata": {"resourceVersion": stale}, "spec": {"replicas": 4}}
        )

    assert caught.value.status == 409
    assert status_of(caught.value)["message"] == CONFLICT
    assert fake_kube.deployment("prod", "web")["spec"]["replicas"] == 1


async def test_injected_conflicts_fail_the_next_writes_then_clear(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web")
    fake_kube.inject_conflicts("Deployment", "prod", "web", 2)
    apps = client.AppsV1Api(api)
    before = fake_kube.deployment("prod", "web")["metadata"]["resourceVersion"]

    statuses = []
    for _ in range(3):
        try:
            await apps.patch_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": 3}})
        except ApiException as error:
            statuses.append(error.status)
            assert status_of(error)["message"] == CONFLICT
        else:
            statuses.append(200)

    assert statuses == [409, 409, 200]
    assert [r.status for r in fake_kube.writes] == [409, 409, 200]
    after = fake_kube.deployment("prod", "web")
    assert after["spec"]["replicas"] == 3
    # Each injected conflict stands for a competing write, so the version moved.
    assert int(after["metadata"]["resourceVersion"]) >= int(before) + 3


async def test_a_retry_that_rereads_after_an_injected_conflict_succeeds(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web")
    apps = client.AppsV1Api(api)
    read = await apps.read_namespaced_deployment("web", "prod")
    read.spec.replicas = 2
    fake_kube.inject_conflicts("deployments", "prod", "web", 1)

    with pytest.raises(ApiException) as injected:
        await apps.replace_namespaced_deployment("web", "prod", read)
    # Retrying the same body fails again: the conflict stood for a competing write.
    with pytest.raises(ApiException) as stale:
        await apps.replace_namespaced_deployment("web", "prod", read)
    fresh = await apps.read_namespaced_deployment("web", "prod")
    fresh.spec.replicas = 2
    await apps.replace_namespaced_deployment("web", "prod", fresh)

    assert injected.value.status == stale.value.status == 409
    assert fake_kube.deployment("prod", "web")["spec"]["replicas"] == 2


async def test_dry_run_answers_without_storing(fake_kube: FakeKube, api: client.ApiClient) -> None:
    fake_kube.add_deployment("prod", "web")
    before = fake_kube.deployment("prod", "web")

    answer = await client.AppsV1Api(api).patch_namespaced_deployment(
        "web", "prod", RESTART, dry_run="All"
    )

    assert answer.spec.template.metadata.annotations == {RESTARTED_AT: "2025-01-02T03:04:05Z"}
    assert fake_kube.deployment("prod", "web") == before
    assert len(fake_kube.replicasets("prod", "web")) == 1


async def test_an_immutable_selector_change_is_invalid(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web")

    with pytest.raises(ApiException) as caught:
        await client.AppsV1Api(api).patch_namespaced_deployment(
            "web", "prod", {"spec": {"selector": {"matchLabels": {"app": "api"}}}}
        )

    assert caught.value.status == 422
    message = status_of(caught.value)["message"]
    assert message.startswith('Deployment.apps "web" is invalid: [')
    assert "spec.selector: Invalid value" in message
    assert "field is immutable" in message


# --- patch types ---------------------------------------------------------------------------


async def test_strategic_merge_merges_containers_by_name(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web")
    sidecar = {"name": "proxy", "image": "envoy:1.30", "env": [{"name": "A", "value": "1"}]}
    apps = client.AppsV1Api(api)

    await apps.patch_namespaced_deployment(
        "web", "prod", {"spec": {"template": {"spec": {"containers": [sidecar]}}}}
    )
    patched = await apps.patch_namespaced_deployment(
        "web",
        "prod",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "proxy", "env": [{"name": "B", "value": "2"}]},
                            {"name": "web", "$patch": "delete"},
                        ]
                    }
                }
            }
        },
    )

    [container] = patched.spec.template.spec.containers
    assert (container.name, container.image) == ("proxy", "envoy:1.30")
    assert [(e.name, e.value) for e in container.env] == [("A", "1"), ("B", "2")]


async def test_merge_patch_replaces_lists_and_null_deletes(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web", annotations={"team": "search", "owner": "ana"})
    sidecar = {"name": "proxy", "image": "envoy:1.30"}

    patched = await client.AppsV1Api(api).patch_namespaced_deployment(
        "web",
        "prod",
        {
            "metadata": {"annotations": {"owner": None}},
            "spec": {"template": {"spec": {"containers": [sidecar]}}},
        },
        _content_type=MERGE_PATCH,  # type: ignore[call-arg]  # the stubs omit it; the client takes it
    )

    assert [c.name for c in patched.spec.template.spec.containers] == ["proxy"]
    assert "owner" not in patched.metadata.annotations
    assert patched.metadata.annotations["team"] == "search"
    assert fake_kube.writes[0].content_type == MERGE_PATCH


async def test_json_patch_applies_operations_and_checks_tests(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web")
    apps = client.AppsV1Api(api)

    patched = await apps.patch_namespaced_deployment(
        "web",
        "prod",
        [
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels", "value": {"tier": "front"}},
        ],
    )
    with pytest.raises(ApiException) as caught:
        await apps.patch_namespaced_deployment(
            "web", "prod", [{"op": "test", "path": "/spec/replicas", "value": 1}]
        )

    assert patched.spec.replicas == 3
    assert patched.metadata.labels == {"tier": "front"}
    assert caught.value.status == 422
    assert fake_kube.writes[0].content_type == JSON_PATCH
    assert fake_kube.deployment("prod", "web")["spec"]["replicas"] == 3


async def test_unsupported_patch_types_and_bad_tokens_are_refused(
    fake_kube: FakeKube,
) -> None:
    fake_kube.add_deployment("prod", "web")
    url = f"{fake_kube.url}/apis/apps/v1/namespaces/prod/deployments/web"
    auth = {"Authorization": f"Bearer {fake_kube.token}"}

    connector = aiohttp.TCPConnector(ssl=fake_kube.client_ssl())
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.patch(
            url, data=b"{}", headers={**auth, "Content-Type": "text/plain"}
        ) as response:
            unsupported = (response.status, await response.json())
        async with session.get(url, headers={"Authorization": "Bearer wrong"}) as response:
            unauthorized = (response.status, await response.json())
        async with session.get(
            f"{fake_kube.url}/apis/apps/v1/namespaces/prod/daemonsets/web/scale", headers=auth
        ) as response:
            no_such_path = response.status

    assert unsupported[0] == 415
    assert unsupported[1]["reason"] == "UnsupportedMediaType"
    assert unauthorized == (
        401,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        },
    )
    assert no_such_path == 404


# --- selectors and pods -----------------------------------------------------------------------


async def test_label_selectors_filter_lists(fake_kube: FakeKube, api: client.ApiClient) -> None:
    fake_kube.add_pod("prod", "a", labels={"app": "web", "tier": "front"})
    fake_kube.add_pod("prod", "b", labels={"app": "api", "tier": "back"})
    fake_kube.add_pod("prod", "c", labels={"app": "db", "tier": "back", "canary": "true"})
    fake_kube.add_pod("staging", "d", labels={"app": "web"})
    core = client.CoreV1Api(api)

    async def listed(selector: str) -> list[str]:
        pods = await core.list_namespaced_pod("prod", label_selector=selector)
        return [p.metadata.name for p in pods.items]

    assert await listed("") == ["a", "b", "c"]
    assert await listed("app=web") == ["a"]
    assert await listed("tier==back,app=api") == ["b"]
    assert await listed("app in (web,api)") == ["a", "b"]
    assert await listed("app notin (web), tier=back") == ["b", "c"]
    assert await listed("tier!=back") == ["a"]
    assert await listed("canary") == ["c"]
    assert await listed("!canary") == ["a", "b"]
    with pytest.raises(ApiException) as caught:
        await listed("app in web")
    assert caught.value.status == 400
    assert fake_kube.requests[1].query == {"labelSelector": "app=web"}


async def test_field_selectors_and_pages(fake_kube: FakeKube, api: client.ApiClient) -> None:
    for name in ("a", "b", "c"):
        fake_kube.add_pod("prod", name)
    core = client.CoreV1Api(api)

    by_name = await core.list_namespaced_pod("prod", field_selector="metadata.name=b")
    first = await core.list_namespaced_pod("prod", limit=2)
    rest = await core.list_namespaced_pod("prod", limit=2, _continue=first.metadata._continue)

    assert [p.metadata.name for p in by_name.items] == ["b"]
    assert [p.metadata.name for p in first.items] == ["a", "b"]
    assert first.metadata.remaining_item_count == 1
    assert [p.metadata.name for p in rest.items] == ["c"]
    assert rest.metadata._continue is None


async def test_deleting_a_replicaset_pod_gets_it_replaced(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=2)
    victim, survivor = names(fake_kube.pods("prod", "app=web"))

    deleted = await client.CoreV1Api(api).delete_namespaced_pod(victim, "prod")

    assert isinstance(deleted, client.V1Pod)
    assert deleted.metadata.name == victim
    assert not fake_kube.exists("Pod", "prod", victim)
    now = names(fake_kube.pods("prod", "app=web"))
    assert len(now) == 2
    assert survivor in now
    assert victim not in now
    [write] = fake_kube.writes
    assert (write.method, write.path) == ("DELETE", f"/api/v1/namespaces/prod/pods/{victim}")


async def test_bare_pods_deleted_by_selector_stay_deleted(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_pod("prod", "worker-1", labels={"app": "worker"})
    fake_kube.add_pod("prod", "worker-2", labels={"app": "worker"})
    fake_kube.add_pod("prod", "web-1", labels={"app": "web"})
    core = client.CoreV1Api(api)

    await core.delete_collection_namespaced_pod("prod", label_selector="app=worker")

    assert names(fake_kube.pods("prod")) == ["web-1"]
    remaining = await core.list_namespaced_pod("prod")
    assert [p.status.phase for p in remaining.items] == ["Running"]


async def test_deleting_a_deployment_removes_its_replicasets_and_pods(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=2)

    status = await client.AppsV1Api(api).delete_namespaced_deployment("web", "prod")

    assert status.status == "Success"
    assert fake_kube.objects("ReplicaSet", "prod") == []
    assert fake_kube.pods("prod") == []


# --- the pure pieces -------------------------------------------------------------------------


def test_strategic_merge_directives() -> None:
    original = {
        "metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
        "spec": {"tolerations": [{"key": "k1"}], "volumes": [{"name": "v", "emptyDir": {}}]},
    }
    patch = {
        "$setElementOrder/finalizers": ["a", "c"],
        "metadata": {
            "finalizers": ["c"],
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "labels": {"y": None},
        },
        "spec": {
            "tolerations": [{"key": "k2"}],
            "volumes": [{"name": "v", "emptyDir": None, "configMap": {"name": "cm"}}],
        },
    }

    assert strategic_merge_patch(original, patch) == {
        "metadata": {"finalizers": ["a", "c"], "labels": {"x": "1"}},
        "spec": {
            "tolerations": [{"key": "k2"}],
            "volumes": [{"name": "v", "configMap": {"name": "cm"}}],
        },
    }
    assert strategic_merge_patch(original, {"metadata": {"$patch": "replace", "name": "n"}}) == {
        **original,
        "metadata": {"name": "n"},
    }


def test_json_patch_operations() -> None:
    doc = {"a": [1, 2], "b": {"c~d/e": 1}}
    ops = [
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "add", "path": "/a/0", "value": 0},
        {"op": "move", "from": "/b/c~0d~1e", "path": "/moved"},
        {"op": "copy", "from": "/a", "path": "/copied"},
        {"op": "remove", "path": "/a/1"},
    ]

    assert json_patch(doc, ops) == {"a": [0, 2, 3], "b": {}, "moved": 1, "copied": [0, 1, 2, 3]}
    assert doc == {"a": [1, 2], "b": {"c~d/e": 1}}


def test_label_selector_round_trip() -> None:
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}],
    }

    text = format_selector(selector)

    assert text == "app=web,tier in (a,b)"
    assert [str(r) for r in parse_label_selector(text)] == ["app=web", "tier in (a,b)"]
    with pytest.raises(ValueError, match="unable to parse requirement"):
        parse_label_selector("app=web,")


# --- PodDisruptionBudgets and evictions ----------------------------------------------------


def _eviction(name: str) -> client.V1Eviction:
    return client.V1Eviction(
        api_version="policy/v1", kind="Eviction", metadata=client.V1ObjectMeta(name=name)
    )


async def test_budget_status_counts_as_the_disruption_controller_does(
    fake_kube: FakeKube,
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=4)
    fixed = fake_kube.add_pdb("prod", "fixed", {"app": "web"}, min_available=3)["status"]
    share = fake_kube.add_pdb("prod", "share", {"app": "web"}, min_available="60%")["status"]
    spare = fake_kube.add_pdb("prod", "spare", {"app": "web"}, max_unavailable="25%")["status"]
    none = fake_kube.add_pdb("prod", "none", {"app": "db"}, max_unavailable=1)["status"]
    counts = ("expectedPods", "currentHealthy", "desiredHealthy", "disruptionsAllowed")
    assert [fixed[c] for c in counts] == [4, 4, 3, 1]
    assert [share[c] for c in counts] == [4, 4, 3, 1]  # 60% of 4 rounds up to 3
    assert [spare[c] for c in counts] == [4, 4, 3, 1]
    assert {c: none.get(c, 0) for c in counts} == dict.fromkeys(counts, 0)
    assert fixed["conditions"][0]["reason"] == "SufficientPods"
    assert none["conditions"][0]["reason"] == "InsufficientPods"


async def test_a_budget_counts_a_deployment_once_mid_rollout_and_cannot_size_a_daemonset(
    fake_kube: FakeKube,
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=3)
    fake_kube.add_pdb("prod", "web", {"app": "web"}, max_unavailable=1)
    fake_kube.add_daemonset("prod", "agent")
    fake_kube.add_pdb("prod", "agent", {"app": "agent"}, max_unavailable=1)
    fake_kube.pods_start_ready = False
    deployment = fake_kube.deployment("prod", "web")
    deployment["spec"]["template"]["metadata"]["annotations"] = {RESTARTED_AT: "now"}
    fake_kube.update(deployment)
    assert len(fake_kube.replicasets("prod", "web")) == 2  # old and new pods side by side
    web = fake_kube.pdb("prod", "web")["status"]
    assert (web["expectedPods"], web["desiredHealthy"]) == (3, 2)
    agent = fake_kube.pdb("prod", "agent")["status"]
    assert (agent["disruptionsAllowed"], agent["conditions"][0]["reason"]) == (0, "SyncFailed")


async def test_an_eviction_a_budget_forbids_answers_429_naming_the_budget(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=2)
    fake_kube.add_pdb("prod", "web", {"app": "web"}, max_unavailable=0)
    victim = names(fake_kube.pods("prod"))[0]
    with pytest.raises(ApiException) as blocked:
        await client.CoreV1Api(api).create_namespaced_pod_eviction(
            victim, "prod", _eviction(victim)
        )
    assert blocked.value.status == 429
    assert status_of(blocked.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "reason": "TooManyRequests",
        "details": {
            "causes": [
                {
                    "reason": "DisruptionBudget",
                    "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
                }
            ]
        },
        "code": 429,
    }
    assert victim in names(fake_kube.pods("prod"))


async def test_a_granted_eviction_charges_the_budget_until_the_replacement_is_ready(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=3)
    fake_kube.add_pdb("prod", "web", {"app": "web"}, min_available=2)
    fake_kube.pods_start_ready = False
    first, second, _ = names(fake_kube.pods("prod"))
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod_eviction(first, "prod", _eviction(first))
    status = fake_kube.pdb("prod", "web")["status"]
    assert (status["currentHealthy"], status["disruptionsAllowed"]) == (2, 0)
    with pytest.raises(ApiException) as blocked:
        await core.create_namespaced_pod_eviction(second, "prod", _eviction(second))
    assert blocked.value.status == 429
    (replacement,) = [p for p in fake_kube.pods("prod") if not pod_ready(p)]
    fake_kube.set_pod_ready("prod", replacement["metadata"]["name"])
    await core.create_namespaced_pod_eviction(second, "prod", _eviction(second))
    assert second not in names(fake_kube.pods("prod"))


async def test_eviction_refusals_shaped_as_the_api_server_shapes_them(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=2)
    fake_kube.add_pdb("prod", "one", {"app": "web"}, max_unavailable=1)
    fake_kube.add_pdb("prod", "two", {"app": "web"}, max_unavailable=1)
    victim = names(fake_kube.pods("prod"))[0]
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as twice:
        await core.create_namespaced_pod_eviction(victim, "prod", _eviction(victim))
    with pytest.raises(ApiException) as renamed:
        await core.create_namespaced_pod_eviction(victim, "prod", _eviction("other"))
    with pytest.raises(ApiException) as missing:
        await core.create_namespaced_pod_eviction("gone", "prod", _eviction("gone"))
    assert (twice.value.status, status_of(twice.value)["message"]) == (
        500,
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does "
        "not support.",
    )
    assert (renamed.value.status, status_of(renamed.value)["message"]) == (
        400,
        "name in URL does not match name in Eviction object",
    )
    assert (missing.value.status, status_of(missing.value)["message"]) == (
        404,
        'pods "gone" not found',
    )


# --- discovery and watches -----------------------------------------------------------------


async def _get(kube: FakeKube, path: str) -> tuple[int, Any]:
    connector = aiohttp.TCPConnector(ssl=kube.client_ssl())
    auth = {"Authorization": f"Bearer {kube.token}"}
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{kube.url}{path}", headers=auth) as response,
    ):
        return response.status, await response.json()


async def test_discovery_names_what_is_served_and_where_scale_and_eviction_live(
    fake_kube: FakeKube,
) -> None:
    status, groups = await _get(fake_kube, "/apis")
    assert status == 200 and groups["kind"] == "APIGroupList"
    assert {g["name"]: g["preferredVersion"]["groupVersion"] for g in groups["groups"]} == {
        "apps": "apps/v1",
        "autoscaling": "autoscaling/v2",
        "policy": "policy/v1",
    }
    _, apps = await _get(fake_kube, "/apis/apps/v1")
    scale = next(r for r in apps["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    _, core = await _get(fake_kube, "/api/v1")
    eviction = next(r for r in core["resources"] if r["name"] == "pods/eviction")
    assert (eviction["group"], eviction["kind"], eviction["verbs"]) == (
        "policy",
        "Eviction",
        ["create"],
    )
    assert (await _get(fake_kube, "/apis/batch/v1"))[0] == 404
    assert (await _get(fake_kube, "/api/v1/namespaces/nowhere"))[1]["message"] == (
        'namespaces "nowhere" not found'
    )


async def test_a_watch_lists_then_follows_changes_until_its_timeout(
    fake_kube: FakeKube, api: client.ApiClient
) -> None:
    fake_kube.add_deployment("prod", "web", replicas=1)
    apps = client.AppsV1Api(api)
    connector = aiohttp.TCPConnector(ssl=fake_kube.client_ssl())
    url = f"{fake_kube.url}/apis/apps/v1/namespaces/prod/deployments"
    query = {"watch": "true", "fieldSelector": "metadata.name=web", "timeoutSeconds": "2"}
    events = []
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(
            url, params=query, headers={"Authorization": f"Bearer {fake_kube.token}"}
        ) as response,
    ):
        first = json.loads(await response.content.readline())
        await apps.patch_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": 2}})
        async for line in response.content:  # ends when the watch times out
            events.append(json.loads(line))
    assert (first["type"], first["object"]["spec"]["replicas"]) == ("ADDED", 1)
    assert events and {e["type"] for e in events} == {"MODIFIED"}
    assert events[-1]["object"]["spec"]["replicas"] == 2
    since = first["object"]["metadata"]["resourceVersion"]
    replay = f"{url}?watch=1&resourceVersion={since}&timeoutSeconds=1"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=fake_kube.client_ssl())) as s,
        s.get(replay, headers={"Authorization": f"Bearer {fake_kube.token}"}) as response,
    ):
        replayed = [json.loads(line) async for line in response.content]
    assert [e["object"]["metadata"]["resourceVersion"] for e in replayed] == [
        e["object"]["metadata"]["resourceVersion"] for e in events
    ]

"""The controllers and the kubelet of the fake cluster, acting synchronously after writes."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Mapping

from tests.support.kube.disruption import budget_status
from tests.support.kube.objects import (
    annotations_of,
    apply_defaults,
    equal_ignore_hash,
    labels_of,
    metadata_of,
    normalize,
    now_timestamp,
    omit_zero,
    owner_reference,
    pod_ready,
    resolve_surge,
    revision_of,
    template_hash,
)
from tests.support.kube.resources import (
    CONTROLLER_REVISION_HASH,
    DAEMONSETS,
    DEPLOYMENTS,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    NOT_COPIED,
    PDBS,
    POD_TEMPLATE_HASH,
    PODS,
    REPLICASETS,
    REVISION,
    REVISION_HISTORY,
    REVISION_HISTORY_LIMIT_CHARS,
    STATEFULSETS,
    Obj,
    Resource,
    resource_for,
)
from tests.support.kube.selectors import matches_requirements, selector_requirements
from tests.support.kube.store import Store


class Controllers:
    """The Deployment, ReplicaSet, StatefulSet and DaemonSet controllers, and a kubelet.

    They act synchronously: :meth:`reconcile` runs after every write until nothing
    changes, so rollouts finish at once and pods are Running and Ready at once.
    """

    def __init__(self, store: Store, nodes: list[str]) -> None:
        self.store = store
        self.nodes = nodes
        self.start_ready = True
        """Whether the kubelet reports a started pod Ready at once (else when told)."""

    def reconcile(self) -> None:
        """Run the controllers and the kubelet until nothing changes any more."""
        for _ in range(20):
            before = self.store.version
            for res, sync in (
                (DEPLOYMENTS, self._sync_deployment),
                (REPLICASETS, self._sync_replicaset),
                (STATEFULSETS, self._sync_statefulset),
                (DAEMONSETS, self._sync_daemonset),
                (PODS, self._sync_pod),
                (PDBS, self._sync_budget),
            ):
                for obj in self.store.in_(res, None):
                    meta = obj["metadata"]
                    key = (res.plural, meta["namespace"], meta["name"])
                    if key in self.store.objects:
                        sync(copy.deepcopy(self.store.objects[key]))
            if self.store.version == before:
                return
        raise AssertionError("the fake controllers did not settle")  # pragma: no cover

    def write_status(self, res: Resource, obj: Obj) -> Obj:
        """Store a new status for ``obj`` (the status subresource: the generation stays)."""
        return self._controller_write(res, obj, status_only=True)

    def _controller_write(self, res: Resource, obj: Obj, *, status_only: bool = False) -> Obj:
        """A controller's update: like a user's, but trusted and free to set the status."""
        meta = obj["metadata"]
        key = (res.plural, meta["namespace"], meta["name"])
        old = self.store.objects[key]
        new = normalize(obj)
        if not status_only and new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = old["metadata"]["generation"] + 1
        if new == old:
            return copy.deepcopy(old)
        return copy.deepcopy(self.store.commit(res, new))

    def _controller_create(self, res: Resource, obj: Obj) -> Obj:
        meta = obj["metadata"]
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_timestamp(), generation=1)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        apply_defaults(res, obj)
        self.store.created(meta["uid"])
        return copy.deepcopy(self.store.commit(res, normalize(obj)))

    def _sync_deployment(self, deployment: Obj) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        namespace, uid = meta["namespace"], meta["uid"]
        owned = self.store.owned(REPLICASETS, namespace, uid)
        new_rs = next(
            (rs for rs in owned if equal_ignore_hash(rs["spec"]["template"], spec["template"])),
            None,
        )
        old_rss = [
            rs
            for rs in owned
            if new_rs is None or rs["metadata"]["uid"] != new_rs["metadata"]["uid"]
        ]
        next_revision = max((revision_of(rs) for rs in old_rss), default=0) + 1
        collisions = deployment.get("status", {}).get("collisionCount", 0)
        if not spec.get("paused"):
            if new_rs is None:
                new_rs, collisions = self._new_replicaset(deployment, next_revision, collisions)
            else:
                new_rs = self._controller_write(
                    REPLICASETS, self._adopt_revision(deployment, new_rs, next_revision)
                )
            for rs in old_rss:
                if rs["spec"].get("replicas") != 0:
                    rs["spec"]["replicas"] = 0
                    self._controller_write(REPLICASETS, rs)
            self._clean_up_history(deployment, old_rss)
        else:
            new_rs = self._sync_paused(deployment, new_rs, owned, next_revision)
        self._deployment_status(deployment, new_rs, collisions)

    def _sync_paused(
        self, deployment: Obj, new_rs: Obj | None, owned: list[Obj], next_revision: int
    ) -> Obj | None:
        """A paused Deployment, as the controller's ``sync`` treats it: no new ReplicaSet.

        One that already has the template (``rollout undo`` while paused) takes the
        next revision at the replicas it has; only the one active ReplicaSet (or,
        with none active, the new or newest one) is scaled to the Deployment's
        replicas, so no pods start for the paused template.
        """
        if new_rs is not None and revision_of(new_rs) != next_revision:
            new_rs["metadata"]["annotations"] = self._replicaset_annotations(
                deployment, annotations_of(new_rs), next_revision
            )
            new_rs = self._controller_write(REPLICASETS, new_rs)
        active = [rs for rs in owned if rs["spec"].get("replicas")]
        if len(active) > 1:
            return new_rs  # proportional scaling of several: not what remedy's tests reach
        if active:
            chosen: Obj | None = active[0]
        else:
            chosen = new_rs or max(
                owned, key=lambda rs: self.store.rank(rs["metadata"]["uid"]), default=None
            )
        if chosen is not None and chosen["spec"].get("replicas") != deployment["spec"]["replicas"]:
            chosen["spec"]["replicas"] = deployment["spec"]["replicas"]
            written = self._controller_write(REPLICASETS, chosen)
            if new_rs is not None and written["metadata"]["uid"] == new_rs["metadata"]["uid"]:
                new_rs = written
        return new_rs

    def _max_surge(self, deployment: Obj) -> int:
        strategy = deployment["spec"].get("strategy") or {}
        if strategy.get("type") != "RollingUpdate":
            return 0
        surge = (strategy.get("rollingUpdate") or {}).get("maxSurge", 0)
        return resolve_surge(surge, deployment["spec"]["replicas"])

    def _replicaset_annotations(
        self, deployment: Obj, rs_annotations: Mapping[str, str], revision: int
    ) -> dict[str, str]:
        """The annotations ``SetNewReplicaSetAnnotations`` gives the new ReplicaSet."""
        annotations = {k: v for k, v in rs_annotations.items()}
        for key, value in annotations_of(deployment).items():
            if key not in NOT_COPIED:
                annotations[key] = value
        old = rs_annotations.get(REVISION)
        if old is None or int(old) < revision:
            annotations[REVISION] = str(revision)
            if old is not None:
                history = [h for h in rs_annotations.get(REVISION_HISTORY, "").split(",") if h]
                history.append(old)
                while history and len(",".join(history)) > REVISION_HISTORY_LIMIT_CHARS:
                    history.pop(0)
                annotations[REVISION_HISTORY] = ",".join(history)
        replicas = deployment["spec"]["replicas"]
        annotations[DESIRED_REPLICAS] = str(replicas)
        annotations[MAX_REPLICAS] = str(replicas + self._max_surge(deployment))
        return annotations

    def _new_replicaset(self, deployment: Obj, revision: int, collisions: int) -> tuple[Obj, int]:
        meta, spec = deployment["metadata"], deployment["spec"]
        while True:
            pod_hash = template_hash(spec["template"], collisions)
            name = f"{meta['name']}-{pod_hash}"
            if (REPLICASETS.plural, meta["namespace"], name) not in self.store.objects:
                break
            collisions += 1  # a hash collision with a ReplicaSet this template is not
        template = copy.deepcopy(spec["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH] = pod_hash
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = pod_hash
        rs_spec: Obj = {"replicas": spec["replicas"], "selector": selector, "template": template}
        if spec.get("minReadySeconds"):
            rs_spec["minReadySeconds"] = spec["minReadySeconds"]
        rs = {
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": self._replicaset_annotations(deployment, {}, revision),
                "ownerReferences": [owner_reference(DEPLOYMENTS, deployment)],
            },
            "spec": rs_spec,
        }
        return self._controller_create(REPLICASETS, rs), collisions

    def _adopt_revision(self, deployment: Obj, rs: Obj, revision: int) -> Obj:
        """The current template's ReplicaSet, with the revision and replicas it now has.

        When the template went back to an older ReplicaSet's (``rollout undo``), that
        ReplicaSet takes the next revision and remembers its old one in revision-history.
        """
        rs["metadata"]["annotations"] = self._replicaset_annotations(
            deployment, annotations_of(rs), revision
        )
        rs["spec"]["replicas"] = deployment["spec"]["replicas"]
        return rs

    def _clean_up_history(self, deployment: Obj, old_rss: list[Obj]) -> None:
        limit = deployment["spec"].get("revisionHistoryLimit", 10)
        idle = [
            rs
            for rs in old_rss
            if rs["spec"].get("replicas") == 0 and not rs.get("status", {}).get("replicas")
        ]
        for rs in sorted(idle, key=revision_of)[: max(0, len(idle) - limit)]:
            key = (REPLICASETS.plural, rs["metadata"]["namespace"], rs["metadata"]["name"])
            if key in self.store.objects:
                self.store.remove(key, orphan=False)

    def _deployment_status(self, deployment: Obj, new_rs: Obj | None, collisions: int) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        owned = self.store.owned(REPLICASETS, meta["namespace"], meta["uid"])
        if new_rs is not None:
            new_rs = next(
                (rs for rs in owned if rs["metadata"]["uid"] == new_rs["metadata"]["uid"]), None
            )

        def total(field: str, sets: Iterable[Obj]) -> int:
            return sum(rs.get("status", {}).get(field, 0) for rs in sets)

        replicas = spec["replicas"]
        updated = total("replicas", [new_rs] if new_rs else [])
        available = total("availableReplicas", owned)
        current = total("replicas", owned)
        old = deployment.get("status", {})
        unavailable_allowed = replicas - resolve_surge(
            ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", 0),
            replicas,
        )
        conditions = [
            self._condition(
                old,
                "Available",
                available >= unavailable_allowed,
                "MinimumReplicasAvailable"
                if available >= unavailable_allowed
                else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available >= unavailable_allowed
                else "Deployment does not have minimum availability.",
            )
        ]
        if spec.get("paused"):
            conditions.append(
                self._condition(
                    old, "Progressing", None, "DeploymentPaused", "Deployment is paused"
                )
            )
        elif new_rs is not None:
            rs_name = new_rs["metadata"]["name"]
            done = updated == replicas == current == available
            conditions.append(
                self._condition(
                    old,
                    "Progressing",
                    True,
                    "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                    f'ReplicaSet "{rs_name}" has successfully progressed.'
                    if done
                    else f'ReplicaSet "{rs_name}" is progressing.',
                )
            )
        status: Obj = {
            "observedGeneration": meta["generation"],
            "replicas": current,
            "updatedReplicas": updated,
            "readyReplicas": total("readyReplicas", owned),
            "availableReplicas": available,
            "unavailableReplicas": max(0, replicas - available),
            "conditions": conditions,
            "collisionCount": collisions,
        }
        omit_zero(
            status,
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
            "collisionCount",
        )
        if not collisions:
            status.pop("collisionCount", None)
        deployment["status"] = status
        if new_rs is not None:
            metadata_of(deployment).setdefault("annotations", {})[REVISION] = str(
                revision_of(new_rs)
            )
        # The controller writes the revision annotation through the status subresource,
        # so neither it nor the status moves the generation.
        self._controller_write(DEPLOYMENTS, deployment, status_only=True)

    @staticmethod
    def _condition(old_status: Obj, kind: str, ok: bool | None, reason: str, message: str) -> Obj:
        status = "Unknown" if ok is None else "True" if ok else "False"
        now = now_timestamp()
        for existing in old_status.get("conditions") or []:
            if existing.get("type") != kind:
                continue
            if (existing.get("status"), existing.get("reason"), existing.get("message")) == (
                status,
                reason,
                message,
            ):
                return dict(existing)
            transition = (
                existing.get("lastTransitionTime", now) if existing.get("status") == status else now
            )
            return {
                "type": kind,
                "status": status,
                "lastUpdateTime": now,
                "lastTransitionTime": transition,
                "reason": reason,
                "message": message,
            }
        return {
            "type": kind,
            "status": status,
            "lastUpdateTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }

    def _sync_replicaset(self, rs: Obj) -> None:
        meta = rs["metadata"]
        pods = self.store.owned(PODS, meta["namespace"], meta["uid"])
        want = rs["spec"]["replicas"]
        for pod in pods[want:][::-1]:
            self.store.remove(
                (PODS.plural, meta["namespace"], pod["metadata"]["name"]), orphan=False
            )
        pods = pods[:want]
        while len(pods) < want:
            pods.append(self._new_pod(REPLICASETS, rs, name=None, labels={}))
        ready = sum(1 for pod in pods if pod_ready(pod))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": meta["generation"],
        }
        rs["status"] = omit_zero(
            status, "fullyLabeledReplicas", "readyReplicas", "availableReplicas"
        )
        self._controller_write(REPLICASETS, rs, status_only=True)

    def _new_pod(
        self,
        owner_res: Resource,
        owner: Obj,
        *,
        name: str | None,
        labels: Mapping[str, str],
        node: str | None = None,
    ) -> Obj:
        meta = owner["metadata"]
        template = copy.deepcopy(owner["spec"]["template"])
        template_meta = template.get("metadata") or {}
        pod_meta: Obj = {
            "namespace": meta["namespace"],
            "labels": {**(template_meta.get("labels") or {}), **labels},
            "annotations": template_meta.get("annotations") or {},
            "ownerReferences": [owner_reference(owner_res, owner)],
        }
        if name is None:
            pod_meta["generateName"] = f"{meta['name']}-"
            name = self.store.generate_name(PODS, meta["namespace"], pod_meta["generateName"])
        pod_meta["name"] = name
        spec = template["spec"]
        spec["nodeName"] = node or (self.nodes[0] if self.nodes else "node-1")
        pod = {"metadata": pod_meta, "spec": spec}
        pod["status"] = self._running(pod)
        return self._controller_create(PODS, pod)

    def _running(self, pod: Obj) -> Obj:
        """The status a kubelet reports for a pod whose containers all started."""
        now = now_timestamp()
        number = self.store.serial()
        ready = "True" if self.start_ready else "False"
        return {
            "phase": "Running",
            "conditions": [
                {
                    "type": kind,
                    "status": ready if kind in ("Ready", "ContainersReady") else "True",
                    "lastTransitionTime": now,
                }
                for kind in (
                    "PodReadyToStartContainers",
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                )
            ],
            "hostIP": "10.0.0.1",
            "podIP": f"10.244.{number // 250 % 250}.{number % 250 + 1}",
            "startTime": now,
            "qosClass": "BestEffort",
            "containerStatuses": [
                {
                    "name": container.get("name", ""),
                    "image": container.get("image", ""),
                    "imageID": "",
                    "containerID": f"containerd://{uuid.uuid4().hex}",
                    "ready": self.start_ready,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for container in pod["spec"].get("containers") or []
            ],
        }

    def set_ready(self, pod: Obj, ready: bool) -> None:
        """What the kubelet reports when the pod's readiness probe starts or stops passing."""
        now = now_timestamp()
        for condition in pod.get("status", {}).get("conditions") or []:
            if condition["type"] in ("Ready", "ContainersReady"):
                condition.update(status="True" if ready else "False", lastTransitionTime=now)
        for container in pod.get("status", {}).get("containerStatuses") or []:
            container["ready"] = ready
        self._controller_write(PODS, pod, status_only=True)
        self.reconcile()

    def _sync_budget(self, pdb: Obj) -> None:
        """The disruption controller: count the healthy pods the budget selects."""
        selector = pdb["spec"].get("selector")
        namespace = pdb["metadata"]["namespace"]
        pods = []
        if selector is not None:
            requirements = selector_requirements(selector)
            pods = [
                p for p in self.store.in_(PODS, namespace) if matches_requirements(requirements, p)
            ]
        pdb["status"] = budget_status(pdb, pods, self._controller_of, now_timestamp())
        self._controller_write(PDBS, pdb, status_only=True)

    def _controller_of(self, pod: Obj) -> tuple[str, int] | None:
        """The pod's sizable controller (the Deployment above a ReplicaSet): uid and replicas.

        ``None`` for a pod without one, or a DaemonSet's, which has no scale.
        """
        obj = pod
        for _ in range(2):
            ref = next(
                (r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")),
                None,
            )
            if ref is None:
                break
            key = (resource_for(ref["kind"]).plural, obj["metadata"]["namespace"], ref["name"])
            owner = self.store.objects.get(key)
            if owner is None:
                break
            obj = owner
        if obj is pod or obj["kind"] == "DaemonSet":
            return None
        return obj["metadata"]["uid"], int(obj["spec"].get("replicas", 0))

    def _sync_pod(self, pod: Obj) -> None:
        """The scheduler and kubelet: bind a pending pod to a node and run it."""
        if pod.get("status", {}).get("phase") != "Pending":
            return
        pod["spec"].setdefault("nodeName", self.nodes[0] if self.nodes else "node-1")
        pod["status"] = self._running(pod)
        self._controller_write(PODS, pod, status_only=True)

    def _sync_statefulset(self, sts: Obj) -> None:
        meta, spec = sts["metadata"], sts["spec"]
        namespace = meta["namespace"]
        revision = f"{meta['name']}-{template_hash(spec['template'])}"
        on_delete = (spec.get("updateStrategy") or {}).get("type") == "OnDelete"
        wanted = [f"{meta['name']}-{i}" for i in range(spec["replicas"])]
        pods = {p["metadata"]["name"]: p for p in self.store.owned(PODS, namespace, meta["uid"])}
        for name, pod in sorted(pods.items(), reverse=True):
            outdated = labels_of(pod).get(CONTROLLER_REVISION_HASH) != revision
            if name not in wanted or (outdated and not on_delete):
                self.store.remove((PODS.plural, namespace, name), orphan=False)
                del pods[name]
        for index, name in enumerate(wanted):
            if name not in pods and (PODS.plural, namespace, name) not in self.store.objects:
                pods[name] = self._new_pod(
                    STATEFULSETS,
                    sts,
                    name=name,
                    labels={
                        CONTROLLER_REVISION_HASH: revision,
                        "statefulset.kubernetes.io/pod-name": name,
                        "apps.kubernetes.io/pod-index": str(index),
                    },
                )
        current_pods = list(pods.values())
        updated = sum(
            1 for p in current_pods if labels_of(p).get(CONTROLLER_REVISION_HASH) == revision
        )
        ready = sum(1 for p in current_pods if pod_ready(p))
        old = sts.get("status", {})
        current_revision = (
            revision if updated == len(current_pods) else old.get("currentRevision", revision)
        )
        status = {
            "observedGeneration": meta["generation"],
            "replicas": len(current_pods),
            "readyReplicas": ready,
            "currentReplicas": len(current_pods)
            if current_revision == revision
            else len(current_pods) - updated,
            "updatedReplicas": updated,
            "availableReplicas": ready,
            "currentRevision": current_revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }
        sts["status"] = omit_zero(status, "readyReplicas", "currentReplicas", "updatedReplicas")
        self._controller_write(STATEFULSETS, sts, status_only=True)

    def _sync_daemonset(self, ds: Obj) -> None:
        meta, spec = ds["metadata"], ds["spec"]
        namespace = meta["namespace"]
        revision = template_hash(spec["template"])
        on_delete = (spec.get("updateStrategy") or {}).get("type") == "OnDelete"
        pods = self.store.owned(PODS, namespace, meta["uid"])
        by_node: dict[str, Obj] = {}
        for pod in pods:
            node = pod["spec"].get("nodeName", "")
            outdated = labels_of(pod).get(CONTROLLER_REVISION_HASH) != revision
            if node not in self.nodes or node in by_node or (outdated and not on_delete):
                self.store.remove((PODS.plural, namespace, pod["metadata"]["name"]), orphan=False)
            else:
                by_node[node] = pod
        for node in self.nodes:
            if node not in by_node:
                by_node[node] = self._new_pod(
                    DAEMONSETS,
                    ds,
                    name=None,
                    node=node,
                    labels={
                        CONTROLLER_REVISION_HASH: revision,
                        "pod-template-generation": str(meta["generation"]),
                    },
                )
        running = list(by_node.values())
        ready = sum(1 for p in running if pod_ready(p))
        updated = sum(1 for p in running if labels_of(p).get(CONTROLLER_REVISION_HASH) == revision)
        status = {
            "currentNumberScheduled": len(running),
            "numberMisscheduled": 0,
            "desiredNumberScheduled": len(self.nodes),
            "numberReady": ready,
            "observedGeneration": meta["generation"],
            "updatedNumberScheduled": updated,
            "numberAvailable": ready,
            "numberUnavailable": len(self.nodes) - ready,
        }
        ds["status"] = omit_zero(
            status, "updatedNumberScheduled", "numberAvailable", "numberUnavailable"
        )
        self._controller_write(DAEMONSETS, ds, status_only=True)

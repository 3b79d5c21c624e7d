"""The fake API server: HTTP paths and verbs, authorization, reads and writes, and the test API."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import dataclasses
import json
import re
import ssl
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.kube import discovery
from tests.support.kube.controllers import Controllers
from tests.support.kube.disruption import admit_eviction, evicted
from tests.support.kube.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    method_not_allowed,
    not_found,
    path_not_found,
    status_details,
    unsupported_media_type,
)
from tests.support.kube.objects import (
    annotations_of,
    apply_defaults,
    check_shape,
    metadata_of,
    normalize,
    now_timestamp,
    omit_zero,
    revision_of,
    validate,
)
from tests.support.kube.patches import json_patch, merge_patch, strategic_merge_patch
from tests.support.kube.resources import (
    APPLY_PATCH,
    BY_PLURAL,
    DAEMONSETS,
    DEFAULT_TOKEN,
    DEFAULT_USER,
    DEPLOYMENTS,
    EVICTION,
    HPAS,
    JSON_PATCH,
    MERGE_PATCH,
    PATCH_TYPES,
    PDBS,
    PODS,
    REPLICASETS,
    RESOURCES,
    SCALE,
    STATEFULSETS,
    STRATEGIC_MERGE_PATCH,
    Key,
    Obj,
    Resource,
    resource_for,
)
from tests.support.kube.selectors import (
    field_filter,
    fields_match,
    format_selector,
    matches_requirements,
    parse_label_selector,
    selector_requirements,
)
from tests.support.kube.store import Change, Store, etcd_order
from tests.support.kube.tls import serving_certificate


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake API server received it, and the status it answered."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any
    """The decoded JSON body, or ``None`` when there was none (or it was not JSON)."""
    raw_body: bytes
    headers: dict[str, str]
    status: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Target:
    res: Resource
    namespace: str | None
    name: str | None
    subresource: str | None


_CORE_PATH = re.compile(
    r"^/api/v1(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)
_GROUP_PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces/(?P<name>[^/]+)$")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace")
"""Namespaces are implied by the objects in them: they can be read, not written."""


def _parse_path(path: str) -> _Target:
    found = _CORE_PATH.match(path)
    group, version = "", "v1"
    if found is None:
        found = _GROUP_PATH.match(path)
        if found is None:
            raise path_not_found()
        group, version = found["group"], found["version"]
    res = BY_PLURAL.get(found["plural"])
    if res is None or (res.group, res.version) != (group, version):
        raise path_not_found()
    if found["ns"] is None and found["name"] is not None:
        raise path_not_found()  # every served resource is namespaced
    sub = found["sub"]
    if sub is not None and not (
        (sub == "scale" and res.scalable) or (sub == "eviction" and res is PODS)
    ):
        raise path_not_found()
    return _Target(res, found["ns"], found["name"], sub)


def _verb(method: str, target: _Target, query: Mapping[str, str]) -> str:
    named = target.name is not None
    if target.namespace is None and method != "GET":
        raise method_not_allowed()
    if target.subresource == "eviction":
        if method != "POST":
            raise method_not_allowed()
        return "create"
    if target.subresource is not None and method not in ("GET", "PUT", "PATCH"):
        raise method_not_allowed()
    if method == "GET":
        if not named:
            return "watch" if query.get("watch") in ("true", "1") else "list"
        return "get"
    verbs = {
        ("POST", False): "create",
        ("PUT", True): "update",
        ("PATCH", True): "patch",
        ("DELETE", True): "delete",
        ("DELETE", False): "deletecollection",
    }
    verb = verbs.get((method, named))
    if verb is None:
        raise method_not_allowed()
    return verb


@dataclasses.dataclass(frozen=True, slots=True)
class _Watch:
    """A watch the handler streams: the target and its query, already authorized."""

    target: _Target
    query: Mapping[str, str]


WATCH_LONGEST = 60.0
"""Seconds a watch stays open at most (a real server's default is 30 to 60 minutes)."""


class FakeKube:
    """An in-process Kubernetes API server with a Deployment controller and a fake kubelet.

    Objects live in memory, keyed by resource, namespace and name; every write takes the
    next value of one global ``resourceVersion`` counter. Tests seed objects through
    ``add_*`` (which skip authorization and recording, as ``kubectl apply`` by an admin
    would), drive it over HTTP through the real client, then read state back through the
    getters, ``requests`` and ``writes``.

    ``allowed_namespaces`` plays the part of RBAC RoleBindings: ``None`` allows every
    namespace, a set allows only those; ``denied`` removes single permissions such as
    ``("patch", "deployments/scale")``. Both answer 403 with the real Forbidden message.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        user: str = DEFAULT_USER,
        nodes: Iterable[str] = ("node-1",),
    ) -> None:
        self.token = token
        self.user = user
        self.nodes = list(nodes)
        self.allowed_namespaces: set[str] | None = None
        self.denied: set[tuple[str, str]] = set()
        self.requests: list[RecordedRequest] = []
        self.store = Store()
        self.controllers = Controllers(self.store, self.nodes)
        self._conflicts: dict[Key, int] = {}
        self._watches: set[asyncio.Queue[Change | None]] = set()
        self._server: TestServer | None = None
        self._kubeconfig: Path | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application that answers every path the way the API server does."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self, kubeconfig: Path) -> None:
        """Listen on an ephemeral loopback port and write a kubeconfig that points at it."""
        context = serving_certificate().server_context()
        self._server = TestServer(self.app(), host="127.0.0.1")
        await self._server.start_server(ssl=context)
        await asyncio.to_thread(kubeconfig.write_text, yaml.safe_dump(self.kubeconfig_dict()))
        self._kubeconfig = kubeconfig

    async def close(self) -> None:
        """End the open watches and stop listening."""
        for watch in self._watches:
            watch.put_nowait(None)
        if self._server is not None:
            await self._server.close()

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``: the cluster's server address."""
        assert self._server is not None, "the fake API server is not started"
        return f"https://127.0.0.1:{self._server.port}"

    @staticmethod
    def client_ssl() -> ssl.SSLContext:
        """A TLS context that trusts the fake's certificate, for raw HTTP in tests."""
        return serving_certificate().client_context()

    @property
    def kubeconfig(self) -> Path:
        """The kubeconfig file a client loads to reach this server."""
        assert self._kubeconfig is not None, "the fake API server is not started"
        return self._kubeconfig

    def kubeconfig_dict(self) -> Obj:
        """A kubeconfig with one cluster, one bearer-token user and one current context."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fake",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(
                            serving_certificate().ca_pem
                        ).decode("ascii"),
                    },
                }
            ],
            "users": [{"name": "remedy", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "remedy", "namespace": "default"},
                }
            ],
            "current-context": "fake",
            "preferences": {},
        }

    # -- test-side API ----------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        """The latest ``resourceVersion`` handed out."""
        return str(self.store.version)

    @property
    def writes(self) -> list[RecordedRequest]:
        """The recorded requests that asked to change something (POST, PUT, PATCH, DELETE)."""
        return [r for r in self.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]

    def deny(self, verb: str, resource: str) -> None:
        """Withdraw one RBAC permission, such as ``deny("patch", "deployments/scale")``."""
        self.denied.add((verb, resource))

    def inject_conflicts(self, kind: str, namespace: str, name: str, count: int = 1) -> None:
        """Answer the next ``count`` writes to this object (or its scale) with 409 Conflict.

        Each injected conflict also bumps the object's ``resourceVersion``, as the
        competing write that causes a real conflict would, so a client must re-read
        before its retry can succeed with a precondition.
        """
        key = (resource_for(kind).plural, namespace, name)
        self._conflicts[key] = self._conflicts.get(key, 0) + count

    def create(self, manifest: Mapping[str, Any]) -> Obj:
        """Create any served object from a manifest and let the controllers act on it."""
        api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
        res = next((r for r in RESOURCES if (r.api_version, r.kind) == (api_version, kind)), None)
        if res is None:
            raise KeyError(f"the fake API server does not serve {api_version} {kind}")
        namespace = manifest.get("metadata", {}).get("namespace", "default")
        created = self._create(res, namespace, dict(manifest))
        return self.get(res.kind, namespace, created["metadata"]["name"])

    def update(self, obj: Mapping[str, Any]) -> Obj:
        """Replace a served object as an admin's ``kubectl replace``; the controllers act."""
        res = resource_for(str(obj.get("kind")))
        meta = obj.get("metadata") or {}
        old = self.store.objects[(res.plural, str(meta.get("namespace")), str(meta.get("name")))]
        return self._update(res, old, dict(obj))

    def add_deployment(
        self,
        namespace: str,
        name: str,
        *,
        replicas: int = 1,
        image: str = "nginx:1.27",
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        paused: bool = False,
    ) -> Obj:
        """A Deployment of one container; its controller makes ReplicaSet revision 1."""
        spec = self._workload_spec(name, image, labels)
        spec["replicas"] = replicas
        if paused:
            spec["paused"] = True
        return self.create(self._manifest(DEPLOYMENTS, namespace, name, spec, annotations))

    def add_statefulset(
        self,
        namespace: str,
        name: str,
        *,
        replicas: int = 1,
        image: str = "nginx:1.27",
        labels: Mapping[str, str] | None = None,
    ) -> Obj:
        """A StatefulSet of one container, with pods ``{name}-0`` onwards."""
        spec = self._workload_spec(name, image, labels)
        spec["replicas"] = replicas
        spec["serviceName"] = name
        return self.create(self._manifest(STATEFULSETS, namespace, name, spec))

    def add_daemonset(
        self,
        namespace: str,
        name: str,
        *,
        image: str = "nginx:1.27",
        labels: Mapping[str, str] | None = None,
    ) -> Obj:
        """A DaemonSet of one container, with a pod on each of ``nodes``."""
        spec = self._workload_spec(name, image, labels)
        return self.create(self._manifest(DAEMONSETS, namespace, name, spec))

    def add_pod(
        self,
        namespace: str,
        name: str,
        *,
        image: str = "nginx:1.27",
        labels: Mapping[str, str] | None = None,
    ) -> Obj:
        """A bare Pod (no controller): once deleted it stays deleted."""
        spec = {"containers": [{"name": "main", "image": image}]}
        manifest = self._manifest(PODS, namespace, name, spec)
        manifest["metadata"]["labels"] = dict(labels or {"app": name})
        return self.create(manifest)

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        """A copy of one stored object; ``KeyError`` when there is none."""
        res = resource_for(kind)
        return copy.deepcopy(self.store.objects[(res.plural, namespace, name)])

    def exists(self, kind: str, namespace: str, name: str) -> bool:
        """Whether the object is stored."""
        return (resource_for(kind).plural, namespace, name) in self.store.objects

    def add_hpa(
        self, namespace: str, name: str, target: str, *, minimum: int = 1, maximum: int = 10
    ) -> Obj:
        """An autoscaling/v2 HorizontalPodAutoscaler of the Deployment ``target`` (on CPU)."""
        spec = {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": minimum,
            "maxReplicas": maximum,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }
            ],
        }
        return self.create(self._manifest(HPAS, namespace, name, spec))

    def add_pdb(
        self,
        namespace: str,
        name: str,
        selector: Mapping[str, str],
        *,
        min_available: int | str | None = None,
        max_unavailable: int | str | None = None,
    ) -> Obj:
        """A policy/v1 PodDisruptionBudget over the pods with the ``selector`` labels."""
        spec: Obj = {"selector": {"matchLabels": dict(selector)}}
        if min_available is not None:
            spec["minAvailable"] = min_available
        if max_unavailable is not None:
            spec["maxUnavailable"] = max_unavailable
        return self.create(self._manifest(PDBS, namespace, name, spec))

    def pdb(self, namespace: str, name: str) -> Obj:
        """A copy of a PodDisruptionBudget."""
        return self.get("PodDisruptionBudget", namespace, name)

    @property
    def pods_start_ready(self) -> bool:
        """Whether new pods are Ready at once; ``False`` keeps them unready until told."""
        return self.controllers.start_ready

    @pods_start_ready.setter
    def pods_start_ready(self, ready: bool) -> None:
        self.controllers.start_ready = ready

    def set_pod_ready(self, namespace: str, name: str, ready: bool = True) -> Obj:
        """Make a pod's readiness probe pass (or fail), and let the controllers see it."""
        pod = self.get("Pod", namespace, name)
        self.controllers.set_ready(pod, ready)
        return self.get("Pod", namespace, name)

    def hpa(self, namespace: str, name: str) -> Obj:
        """A copy of a HorizontalPodAutoscaler."""
        return self.get("HorizontalPodAutoscaler", namespace, name)

    def deployment(self, namespace: str, name: str) -> Obj:
        """A copy of a Deployment."""
        return self.get("Deployment", namespace, name)

    def statefulset(self, namespace: str, name: str) -> Obj:
        """A copy of a StatefulSet."""
        return self.get("StatefulSet", namespace, name)

    def daemonset(self, namespace: str, name: str) -> Obj:
        """A copy of a DaemonSet."""
        return self.get("DaemonSet", namespace, name)

    def objects(self, kind: str, namespace: str, selector: str | None = None) -> list[Obj]:
        """Copies of the objects of a kind in a namespace, by name, filtered by a selector."""
        res = resource_for(kind)
        requirements = parse_label_selector(selector or "")
        return [
            copy.deepcopy(o)
            for o in self.store.in_(res, namespace)
            if matches_requirements(requirements, o)
        ]

    def replicasets(self, namespace: str, deployment: str) -> list[Obj]:
        """The ReplicaSets a Deployment controls, oldest revision first."""
        uid = self.store.objects[(DEPLOYMENTS.plural, namespace, deployment)]["metadata"]["uid"]
        owned = self.store.owned(REPLICASETS, namespace, uid)
        return sorted(owned, key=revision_of)

    def pods(self, namespace: str, selector: str | None = None) -> list[Obj]:
        """Copies of the Pods in a namespace, by name, filtered by a label selector."""
        return self.objects("Pod", namespace, selector)

    # -- HTTP -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        query = {key: request.query.getone(key) for key in request.query}
        content_type = request.headers.get("Content-Type")
        media_type = content_type.split(";", 1)[0].strip().lower() if content_type else None
        payload: Obj | _Watch
        try:
            code, payload = self._serve(
                request.method,
                request.path,
                query=query,
                media_type=media_type,
                raw=raw,
                authorization=request.headers.get("Authorization"),
            )
        except ApiError as err:
            code, payload = err.code, err.status()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=query,
                content_type=media_type,
                body=body,
                raw_body=raw,
                headers=dict(request.headers),
                status=code,
            )
        )
        if isinstance(payload, _Watch):
            return await self._watch(request, payload)
        return web.json_response(payload, status=code)

    async def _watch(self, request: web.Request, watch: _Watch) -> web.StreamResponse:
        """Stream watch events, one JSON object a line, until ``timeoutSeconds`` or close.

        With no ``resourceVersion`` (or ``0``) the objects there are now come first
        as ADDED, as a real server's "start at most recent" does; with one, the kept
        changes after it (or an ERROR event with 410 Expired when it is older than
        what is kept). The stream then follows every change until it times out.
        """
        target, query = watch.target, watch.query
        fields = field_filter(target.res, query.get("fieldSelector", ""))
        requirements = parse_label_selector(query.get("labelSelector", ""))

        def wanted(plural: str, obj: Obj) -> bool:
            return (
                plural == target.res.plural
                and target.namespace in (None, obj["metadata"]["namespace"])
                and matches_requirements(requirements, obj)
                and fields_match(fields, obj)
            )

        since = query.get("resourceVersion", "")
        changes: asyncio.Queue[Change | None] = asyncio.Queue()
        stop = self.store.listen(changes.put_nowait)
        self._watches.add(changes)
        try:
            kept = self.store.changes
            if since in ("", "0"):
                first = [("ADDED", copy.deepcopy(o)) for o in self._matching(target, query)]
            elif len(kept) == kept.maxlen and int(since) < kept[0].version - 1:
                oldest = kept[0].version - 1
                gone = ApiError(410, "Expired", f"too old resource version: {since} ({oldest})")
                first = [("ERROR", gone.status())]
            else:
                first = [
                    (c.type, c.obj)
                    for c in self.store.changes
                    if c.version > int(since) and wanted(c.plural, c.obj)
                ]
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            for kind, obj in first:
                await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            asked = float(query.get("timeoutSeconds") or 0)  # 0 is unset, as for a real server
            seconds = min(asked or WATCH_LONGEST, WATCH_LONGEST)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    while (change := await changes.get()) is not None:
                        if wanted(change.plural, change.obj):
                            event = {"type": change.type, "object": change.obj}
                            await response.write(json.dumps(event).encode() + b"\n")
            await response.write_eof()
            return response
        finally:
            stop()
            self._watches.discard(changes)

    def _serve(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str],
        media_type: str | None,
        raw: bytes,
        authorization: str | None,
    ) -> tuple[int, Obj | _Watch]:
        if authorization != f"Bearer {self.token}":
            return 401, ApiError(401, "Unauthorized", "Unauthorized").status()
        if path == "/version" and method == "GET":
            return 200, {
                "major": "1",
                "minor": "31",
                "gitVersion": "v1.31.0-fake",
                "platform": "linux/amd64",
            }
        if method == "GET" and (found := self._discovery(path)) is not None:
            return 200, found
        if method == "GET" and (named := _NAMESPACE_PATH.match(path)) is not None:
            return 200, self._namespace(named["name"])
        target = _parse_path(path)
        verb = _verb(method, target, query)
        self._authorize(verb, target)
        dry_run = query.get("dryRun") == "All"
        if verb == "get":
            return 200, self._read(target)
        if verb == "list":
            return 200, self._list_response(target, query)
        if verb == "watch":
            self._matching(target, query)  # refuses a bad selector before the stream starts
            if not (query.get("resourceVersion") or "0").isdigit():
                raise bad_request(f"invalid resource version: {query['resourceVersion']}")
            return 200, _Watch(target, query)
        if target.subresource == "eviction":
            return 201, self._evict(target, self._json_body(media_type, raw), dry_run)
        if verb == "create":
            body = self._json_body(media_type, raw)
            assert target.namespace is not None
            return 201, self._create(target.res, target.namespace, body, dry_run=dry_run)
        if verb == "update":
            return 200, self._replace(target, self._json_body(media_type, raw), dry_run)
        if verb == "patch":
            return 200, self._patch(target, media_type, raw, dry_run)
        options = self._delete_options(raw, query)
        if verb == "delete":
            return 200, self._delete(target, options, dry_run)
        return 200, self._delete_collection(target, query, options, dry_run)

    def _namespace(self, name: str) -> Obj:
        """A Namespace: every namespace that holds an object (and ``default``) exists."""
        held = {namespace for _, namespace, _ in self.store.objects}
        if name not in held | {"default"}:
            raise not_found(NAMESPACES, name)
        return {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    def _discovery(self, path: str) -> Obj | None:
        """The discovery document at ``path``; ``None`` when the path is not discovery's."""
        parts = path.strip("/").split("/")
        if parts == ["api"]:
            return discovery.core_versions(self.url.removeprefix("https://"))
        if parts == ["apis"]:
            return discovery.groups()
        if parts == ["api", "v1"]:
            found = discovery.resource_list("", "v1")
        elif len(parts) == 2 and parts[0] == "apis":
            found = discovery.group(parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            found = discovery.resource_list(parts[1], parts[2])
        else:
            return None
        if found is None:
            raise path_not_found()
        return found

    def _authorize(self, verb: str, target: _Target) -> None:
        resource = target.res.plural
        if target.subresource:
            resource += "/" + target.subresource
        allowed = self.allowed_namespaces
        in_scope = allowed is None or (target.namespace is not None and target.namespace in allowed)
        if not in_scope or (verb, resource) in self.denied:
            raise forbidden(
                target.res,
                target.name,
                user=self.user,
                verb=verb,
                namespace=target.namespace,
                subresource=target.subresource,
            )

    @staticmethod
    def _json_body(media_type: str | None, raw: bytes) -> Obj:
        if media_type not in ("application/json", None):
            raise unsupported_media_type(
                ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
            )
        try:
            body = json.loads(raw)
        except ValueError as err:
            raise bad_request(f"couldn't get version/kind; json parse error: {err}") from None
        if not isinstance(body, dict):
            raise bad_request("couldn't get version/kind; json parse error: not an object")
        return body

    @staticmethod
    def _delete_options(raw: bytes, query: Mapping[str, str]) -> Obj:
        options: Obj = {}
        if raw.strip():
            try:
                options = json.loads(raw)
            except ValueError as err:
                raise bad_request(f"couldn't get version/kind; json parse error: {err}") from None
            if not isinstance(options, dict):
                raise bad_request("couldn't get version/kind; json parse error: not an object")
        if "propagationPolicy" in query:
            options["propagationPolicy"] = query["propagationPolicy"]
        if query.get("dryRun") == "All":
            options["dryRun"] = ["All"]
        return options

    def _key(self, target: _Target) -> tuple[str, str, str]:
        assert target.namespace is not None and target.name is not None
        return (target.res.plural, target.namespace, target.name)

    def _existing(self, target: _Target) -> Obj:
        obj = self.store.objects.get(self._key(target))
        if obj is None:
            assert target.name is not None
            raise not_found(target.res, target.name)
        return obj

    def _read(self, target: _Target) -> Obj:
        obj = self._existing(target)
        if target.subresource == "scale":
            return _scale_of(obj)
        return copy.deepcopy(obj)

    def _list_response(self, target: _Target, query: Mapping[str, str]) -> Obj:
        res = target.res
        items = self._matching(target, query)
        meta: Obj = {"resourceVersion": self.resource_version}
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        if token:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(token.encode())))
            except (ValueError, binascii.Error):
                raise bad_request("continue key is not valid") from None
            items = [o for o in items if etcd_order(o) > after]
        if limit and len(items) > limit:
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps(list(etcd_order(items[limit - 1]))).encode()
            ).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        listed = []
        for obj in items:
            item = copy.deepcopy(obj)
            # A typed list's items carry no apiVersion/kind on the wire.
            item.pop("apiVersion", None)
            item.pop("kind", None)
            listed.append(item)
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": meta,
            "items": listed,
        }

    def _matching(self, target: _Target, query: Mapping[str, str]) -> list[Obj]:
        try:
            requirements = parse_label_selector(query.get("labelSelector", ""))
        except ValueError as err:
            raise bad_request(str(err)) from None
        fields = field_filter(target.res, query.get("fieldSelector", ""))
        return [
            o
            for o in self.store.in_(target.res, target.namespace)
            if matches_requirements(requirements, o) and fields_match(fields, o)
        ]

    def _replace(self, target: _Target, body: Obj, dry_run: bool) -> Obj:
        assert target.name is not None
        meta = body.get("metadata") or {}
        if meta.get("name", "") != target.name:
            raise bad_request(
                f"the name of the object ({meta.get('name', '')}) does not match the name on "
                f"the URL ({target.name})"
            )
        if meta.get("namespace", target.namespace) != target.namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        old = self._existing(target)
        self._take_injected_conflict(target)
        self._check_preconditions(target.res, old, meta.get("resourceVersion"), meta.get("uid"))
        if target.subresource == "scale":
            return self._write_scale(target.res, old, body, dry_run)
        return self._update(target.res, old, body, dry_run=dry_run)

    def _patch(self, target: _Target, media_type: str | None, raw: bytes, dry_run: bool) -> Obj:
        assert target.name is not None
        if media_type not in (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH):
            if media_type == APPLY_PATCH:
                raise unsupported_media_type(
                    (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)
                )  # server-side apply is beyond this fake
            raise unsupported_media_type(PATCH_TYPES)
        try:
            patch = json.loads(raw)
        except ValueError as err:
            raise bad_request(f"error decoding patch: {err}") from None
        old = self._existing(target)
        self._take_injected_conflict(target)
        scale = target.subresource == "scale"
        current = _scale_of(old) if scale else copy.deepcopy(old)
        if media_type == JSON_PATCH:
            patched = json_patch(current, patch)
        elif not isinstance(patch, dict):
            raise bad_request(
                "json: cannot unmarshal array into Go value of type map[string]interface {}"
            )
        elif media_type == MERGE_PATCH:
            patched = merge_patch(current, patch)
        else:
            patched = strategic_merge_patch(current, patch)
        if not isinstance(patched, dict):
            raise bad_request("the patch does not produce an object")
        patched = normalize(patched)
        meta = patched.get("metadata") or {}
        if meta.get("name", target.name) != target.name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({target.name})"
            )
        self._check_preconditions(target.res, old, meta.get("resourceVersion"), meta.get("uid"))
        if scale:
            return self._write_scale(target.res, old, patched, dry_run)
        return self._update(target.res, old, patched, dry_run=dry_run)

    def _delete(self, target: _Target, options: Obj, dry_run: bool) -> Obj:
        old = self._existing(target)
        self._take_injected_conflict(target)
        preconditions = options.get("preconditions") or {}
        name = old["metadata"]["name"]
        uid, rv = preconditions.get("uid"), preconditions.get("resourceVersion")
        if uid and uid != old["metadata"]["uid"]:
            raise conflict(
                target.res,
                name,
                f"Precondition failed: UID in precondition: {uid}, "
                f"UID in object meta: {old['metadata']['uid']}",
            )
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(
                target.res,
                name,
                f"Precondition failed: ResourceVersion in "
                f"precondition: {rv}, ResourceVersion in object meta: "
                f"{old['metadata']['resourceVersion']}",
            )
        deleted = copy.deepcopy(old)
        if not (dry_run or options.get("dryRun") == ["All"]):
            orphan = options.get("propagationPolicy") == "Orphan" or bool(
                options.get("orphanDependents")
            )
            self.store.remove(self._key(target), orphan=orphan)
            self.controllers.reconcile()
        if target.res is PODS:
            return deleted  # the pod registry returns the deleted object
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                **status_details(target.res.group, target.res.plural, name),
                "uid": old["metadata"]["uid"],
            },
        }

    def _evict(self, target: _Target, body: Obj, dry_run: bool) -> Obj:
        """The eviction subresource: delete the pod if its disruption budget allows it."""
        assert target.namespace is not None and target.name is not None
        self._check_type(EVICTION, body)
        if (body.get("metadata") or {}).get("name") != target.name:
            raise bad_request("name in URL does not match name in Eviction object")
        pod = self._existing(target)
        budgets = [
            pdb
            for pdb in self.store.in_(PDBS, target.namespace)
            if pdb["spec"].get("selector") is not None
            and matches_requirements(selector_requirements(pdb["spec"]["selector"]), pod)
        ]
        charged = admit_eviction(pod, budgets)
        options = body.get("deleteOptions") or {}
        if dry_run or options.get("dryRun") == ["All"]:
            return evicted()
        if charged is not None:
            charged = copy.deepcopy(charged)
            charged["status"]["disruptionsAllowed"] -= 1
            self.controllers.write_status(PDBS, charged)
        self.store.remove(self._key(target), orphan=False)
        self.controllers.reconcile()
        return evicted()

    def _delete_collection(
        self, target: _Target, query: Mapping[str, str], options: Obj, dry_run: bool
    ) -> Obj:
        res = target.res
        chosen = [copy.deepcopy(o) for o in self._matching(target, query)]
        if not (dry_run or options.get("dryRun") == ["All"]):
            orphan = options.get("propagationPolicy") == "Orphan"
            for obj in chosen:
                key = (res.plural, obj["metadata"]["namespace"], obj["metadata"]["name"])
                if key in self.store.objects:
                    self.store.remove(key, orphan=orphan)
            self.controllers.reconcile()
        for obj in chosen:
            obj.pop("apiVersion", None)
            obj.pop("kind", None)
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": {"resourceVersion": self.resource_version},
            "items": chosen,
        }

    def _take_injected_conflict(self, target: _Target) -> None:
        key = self._key(target)
        if self._conflicts.get(key, 0) > 0:
            self._conflicts[key] -= 1
            obj = self.store.objects[key]
            self.store.commit(target.res, copy.deepcopy(obj))
            assert target.name is not None
            raise conflict(target.res, target.name)

    @staticmethod
    def _check_preconditions(res: Resource, current: Obj, resource_version: Any, uid: Any) -> None:
        meta = current["metadata"]
        if uid and uid != meta["uid"]:
            raise conflict(
                res,
                meta["name"],
                f"Precondition failed: UID in precondition: {uid}, "
                f"UID in object meta: {meta['uid']}",
            )
        if resource_version and resource_version != meta["resourceVersion"]:
            raise conflict(res, meta["name"])

    def _check_type(self, res: Resource, body: Obj) -> None:
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version not in (None, res.api_version):
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({res.api_version})"
            )
        if kind not in (None, res.kind):
            raise bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({res.kind})"
            )

    def _create(self, res: Resource, namespace: str, body: Obj, *, dry_run: bool = False) -> Obj:
        obj: Obj = normalize(copy.deepcopy(body))
        check_shape(res, obj)
        self._check_type(res, obj)
        meta = metadata_of(obj)
        if meta.get("namespace", namespace) != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        if meta.get("resourceVersion"):
            raise ApiError(
                500, "InternalError", "resourceVersion should not be set on objects to be created"
            )
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = self.store.generate_name(res, namespace, meta["generateName"])
        if not name:
            raise invalid(
                res, "", [("metadata.name", "Required value: name or generateName is required")]
            )
        if (res.plural, namespace, name) in self.store.objects:
            raise already_exists(res, name)
        meta.update(
            name=name,
            namespace=namespace,
            uid=str(uuid.uuid4()),
            creationTimestamp=now_timestamp(),
            generation=1,
        )
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        obj.pop("status", None)
        if res is PODS:
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        apply_defaults(res, obj)
        validate(res, obj, None)
        if dry_run:
            return obj
        self.store.created(meta["uid"])
        self.store.commit(res, obj)
        written = copy.deepcopy(obj)
        self.controllers.reconcile()
        return written

    def _update(self, res: Resource, old: Obj, body: Obj, *, dry_run: bool = False) -> Obj:
        """Store a user's new version of ``old`` as the registry strategies do.

        Server-owned metadata and the status are kept from ``old``; defaults and
        validation apply; ``generation`` moves when the spec changes (and, for
        Deployments, the annotations); an update that changes nothing is not a write.
        """
        new: Obj = normalize(copy.deepcopy(body))
        check_shape(res, new)
        self._check_type(res, new)
        meta, old_meta = metadata_of(new), old["metadata"]
        for field in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
        ):
            meta[field] = old_meta[field]
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        new.pop("status", None)
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        apply_defaults(res, new)
        validate(res, new, old)
        if new.get("spec") != old.get("spec") or (
            res is DEPLOYMENTS and annotations_of(new) != annotations_of(old)
        ):
            meta["generation"] = old_meta["generation"] + 1
        if new == old or dry_run:
            return copy.deepcopy(new)
        self.store.commit(res, new)
        written = copy.deepcopy(new)
        self.controllers.reconcile()
        return written

    def _write_scale(self, res: Resource, old: Obj, scale: Obj, dry_run: bool) -> Obj:
        name = old["metadata"]["name"]
        self._check_type(SCALE, scale)
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise bad_request(
                f"json: cannot unmarshal {type(replicas).__name__} into Go struct field "
                "ScaleSpec.spec.replicas of type int32"
            )
        if replicas < 0:
            raise invalid(
                SCALE,
                name,
                [
                    (
                        "spec.replicas",
                        f"Invalid value: {replicas}: must be greater than or equal to 0",
                    )
                ],
            )
        new = copy.deepcopy(old)
        new["spec"]["replicas"] = replicas
        return _scale_of(self._update(res, old, new, dry_run=dry_run))

    # -- manifests ------------------------------------------------------------------------

    @staticmethod
    def _workload_spec(name: str, image: str, labels: Mapping[str, str] | None) -> Obj:
        selected = dict(labels or {"app": name})
        return {
            "selector": {"matchLabels": selected},
            "template": {
                "metadata": {"labels": dict(selected)},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        }

    @staticmethod
    def _manifest(
        res: Resource,
        namespace: str,
        name: str,
        spec: Obj,
        annotations: Mapping[str, str] | None = None,
    ) -> Obj:
        metadata: Obj = {"name": name, "namespace": namespace}
        if annotations:
            metadata["annotations"] = dict(annotations)
        return {"apiVersion": res.api_version, "kind": res.kind, "metadata": metadata, "spec": spec}


def _scale_of(obj: Obj) -> Obj:
    """The autoscaling/v1 ``Scale`` view of a scalable object."""
    meta = obj["metadata"]
    spec: Obj = {"replicas": obj["spec"].get("replicas", 0)}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": omit_zero(spec, "replicas"),
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": format_selector(obj["spec"].get("selector") or {}),
        },
    }

"""The discovery documents (``/api``, ``/apis``, ``/apis/GROUP/VERSION``) for what is served.

kubectl maps ``deployment/web`` to a path through these, and finds the group and
kind of a ``scale`` subresource there. Only the legacy (unaggregated) form is
served: kubectl asks for the aggregated one first and falls back to this when the
answer is a plain ``APIGroupList``, as it does against a 1.26 server.
"""

from __future__ import annotations

from tests.support.kube.resources import EVICTION, PODS, RESOURCES, SCALE, Obj, Resource

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_SHORT_NAMES = {
    "deployments": ["deploy"],
    "statefulsets": ["sts"],
    "daemonsets": ["ds"],
    "replicasets": ["rs"],
    "pods": ["po"],
    "horizontalpodautoscalers": ["hpa"],
    "poddisruptionbudgets": ["pdb"],
}
_IN_ALL = frozenset(
    {"deployments", "statefulsets", "daemonsets", "replicasets", "pods", "horizontalpodautoscalers"}
)


def _entry(res: Resource) -> Obj:
    entry: Obj = {
        "name": res.plural,
        "singularName": res.kind.lower(),
        "namespaced": True,
        "kind": res.kind,
        "verbs": _VERBS,
    }
    if res.plural in _SHORT_NAMES:
        entry["shortNames"] = _SHORT_NAMES[res.plural]
    if res.plural in _IN_ALL:
        entry["categories"] = ["all"]
    return entry


def _subresource(res: Resource, sub: Resource, verbs: list[str]) -> Obj:
    return {
        "name": f"{res.plural}/{sub.plural}",
        "singularName": "",
        "namespaced": True,
        "group": sub.group,
        "version": sub.version,
        "kind": sub.kind,
        "verbs": verbs,
    }


def resource_list(group: str, version: str) -> Obj | None:
    """``/api/v1`` or ``/apis/GROUP/VERSION``: an APIResourceList, or ``None`` if not served."""
    resources: list[Obj] = []
    for res in RESOURCES:
        if (res.group, res.version) != (group, version):
            continue
        resources.append(_entry(res))
        if res.scalable:
            resources.append(_subresource(res, SCALE, ["get", "patch", "update"]))
        if res is PODS:
            resources.append(_subresource(res, EVICTION, ["create"]))
    if not resources:
        return None
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def core_versions(address: str) -> Obj:
    """``/api``: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def group(name: str) -> Obj | None:
    """``/apis/GROUP``: one APIGroup, or ``None`` if not served."""
    versions = sorted({res.version for res in RESOURCES if res.group == name})
    if not versions:
        return None
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": listed,
        "preferredVersion": listed[0],
    }


def groups() -> Obj:
    """``/apis``: every served group but the core one."""
    names = sorted({res.group for res in RESOURCES if res.group})
    found = [group(name) for name in names]
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {k: v for k, v in g.items() if k not in ("kind", "apiVersion")} for g in found if g
        ],
    }

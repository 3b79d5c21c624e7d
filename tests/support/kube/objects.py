"""Objects as the registry treats them: normalising, defaulting, validating, hashing."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from typing import Any

from tests.support.kube.errors import bad_request, invalid
from tests.support.kube.resources import (
    DAEMONSETS,
    DEPLOYMENTS,
    DNS_NAME,
    HPAS,
    PDBS,
    POD_TEMPLATE_HASH,
    PODS,
    REVISION,
    SAFE_ALPHABET,
    STATEFULSETS,
    Obj,
    Resource,
)
from tests.support.kube.selectors import selector_requirements

_OMIT_EMPTY_MAPS = frozenset({"labels", "annotations", "matchLabels", "nodeSelector"})
_KEEP_EMPTY_LISTS = frozenset({"containers", "items"})


def normalize(value: Any) -> Any:
    """What decoding into the Go types and encoding again makes of a JSON value.

    ``null`` fields become zero values and vanish, as do empty ``omitempty`` lists and
    label or annotation maps. Both sides of every comparison go through this, so that
    a template a client sends back (with ``creationTimestamp: null``, say) equals the
    one the server stored.
    """
    if isinstance(value, dict):
        out: Obj = {}
        for key, item in value.items():
            if item is None:
                continue
            clean = normalize(item)
            if isinstance(clean, dict) and not clean and key in _OMIT_EMPTY_MAPS:
                continue
            if isinstance(clean, list) and not clean and key not in _KEEP_EMPTY_LISTS:
                continue
            out[key] = clean
        return out
    if isinstance(value, list):
        return [normalize(item) for item in value]
    return value


def now_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fnv32a(data: bytes, start: int = 0x811C9DC5) -> int:
    value = start
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """The ``pod-template-hash`` of a pod template, in the controller's format.

    The controller hashes the Go struct with FNV-32a and spells the decimal number in a
    vowel-free alphabet; this hashes canonical JSON the same way, so values look alike
    (``5d59d67564``) and equal templates hash equally.
    """
    value = fnv32a(json.dumps(normalize(template), sort_keys=True).encode())
    if collision_count:
        value = fnv32a(collision_count.to_bytes(4, "little"), value)
    return safe_encode(str(value))


def metadata_of(obj: Obj) -> Obj:
    meta: Obj = obj.setdefault("metadata", {})
    return meta


def labels_of(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = obj.get("metadata", {}).get("labels") or {}
    return labels


def annotations_of(obj: Obj) -> dict[str, str]:
    annotations: dict[str, str] = obj.get("metadata", {}).get("annotations") or {}
    return annotations


def revision_of(obj: Obj) -> int:
    """The ``deployment.kubernetes.io/revision`` annotation as a number (0 when absent)."""
    try:
        return int(annotations_of(obj).get(REVISION, "0"))
    except ValueError:
        return 0


def controller_uid(obj: Obj) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            uid: str = ref.get("uid", "")
            return uid
    return None


def owner_reference(res: Resource, owner: Obj) -> Obj:
    return {
        "apiVersion": res.api_version,
        "kind": res.kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def equal_ignore_hash(one: Obj, other: Obj) -> bool:
    one, other = copy.deepcopy(one), copy.deepcopy(other)
    for template in (one, other):
        template.get("metadata", {}).get("labels", {}).pop(POD_TEMPLATE_HASH, None)
    return bool(normalize(one) == normalize(other))


def _go_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
        return f"map[string]string{{{inner}}}"
    return json.dumps(value, sort_keys=True)


def _pull_policy(image: Any) -> str:
    if not isinstance(image, str) or "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.rsplit(":", 1)[1] == "latest":
        return "Always"
    return "IfNotPresent"


def _default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            if not isinstance(container, dict):
                continue
            container.setdefault("resources", {})
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("imagePullPolicy", _pull_policy(container.get("image")))
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def apply_defaults(res: Resource, obj: Obj) -> None:
    """Fill the fields the API server defaults on decode (apps/v1 and core/v1 defaulters)."""
    spec = obj.setdefault("spec", {})
    if res is PODS:
        _default_pod_spec(spec)
        return
    if res is HPAS:
        spec.setdefault("minReplicas", 1)
        return
    if res is PDBS:
        return
    if res is not DAEMONSETS:
        spec.setdefault("replicas", 1)
    if res is DEPLOYMENTS:
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    elif res is STATEFULSETS:
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
    elif res is DAEMONSETS:
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        _default_pod_spec(template["spec"])


def check_shape(res: Resource, obj: Obj) -> None:
    """400 for bodies that would not decode into the Go type at all."""
    for part in ("metadata", "spec", "status"):
        if part in obj and not isinstance(obj[part], dict):
            raise bad_request(
                f"json: cannot unmarshal {type(obj[part]).__name__} into Go struct field "
                f"{res.kind}.{part}"
            )
    replicas = obj.get("spec", {}).get("replicas")
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int)):
        raise bad_request(
            f"json: cannot unmarshal {type(replicas).__name__} into Go struct field "
            f"{res.kind}Spec.spec.replicas of type int32"
        )


_STATEFULSET_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)
_POD_MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def _validate_hpa(spec: Obj, errors: list[tuple[str, str]]) -> None:
    """What autoscaling/v2 validation says of the bounds remedy may change."""
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
    if not isinstance(high, int) or high < 1:
        errors.append(("spec.maxReplicas", "Required value"))
    elif not isinstance(low, int) or low < 1:
        errors.append(("spec.minReplicas", f"Invalid value: {low}: must be greater than 0"))
    elif low > high:
        errors.append(
            (
                "spec.maxReplicas",
                f"Invalid value: {high}: must be greater than or equal to `minReplicas`",
            )
        )


def _validate_pdb(spec: Obj, errors: list[tuple[str, str]]) -> None:
    """What policy/v1 validation says of a budget's numbers."""
    if "minAvailable" in spec and "maxUnavailable" in spec:
        errors.append(
            ("spec", "Invalid value: ...: minAvailable and maxUnavailable cannot be both set")
        )
    for field in ("minAvailable", "maxUnavailable"):
        value = spec.get(field)
        if isinstance(value, int) and value < 0:
            errors.append(
                (f"spec.{field}", f"Invalid value: {value}: must be greater than or equal to 0")
            )
        elif isinstance(value, str) and (not value.endswith("%") or not value[:-1].isdigit()):
            errors.append(
                (
                    f"spec.{field}",
                    f"Invalid value: {_go_value(value)}: "
                    "must be an integer or percentage (e.g '5%')",
                )
            )


def validate(res: Resource, obj: Obj, old: Obj | None) -> None:
    """Raise 422 Invalid for what the API's validation would reject and the actions could send."""
    name = obj["metadata"].get("name", "")
    errors: list[tuple[str, str]] = []
    if not DNS_NAME.match(name) or len(name) > 253:
        errors.append(
            (
                "metadata.name",
                f"Invalid value: {_go_value(name)}: a lowercase RFC 1123 subdomain must consist of "
                "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
            )
        )
    spec = obj["spec"]
    if res in (HPAS, PDBS):
        (_validate_hpa if res is HPAS else _validate_pdb)(spec, errors)
        if errors:
            raise invalid(res, name, errors)
        return
    if res is PODS:
        pod_spec, pod_path = spec, "spec"
    else:
        template = spec.get("template")
        if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
            errors.append(("spec.template.spec.containers", "Required value"))
            raise invalid(res, name, errors)
        pod_spec, pod_path = template["spec"], "spec.template.spec"
        replicas = spec.get("replicas", 0)
        if replicas < 0:
            errors.append(
                (
                    "spec.replicas",
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                )
            )
        selector = spec.get("selector")
        if not isinstance(selector, dict) or not (
            selector.get("matchLabels") or selector.get("matchExpressions")
        ):
            errors.append(("spec.selector", "Required value"))
        else:
            labels = template.get("metadata", {}).get("labels") or {}
            if not all(r.matches(labels) for r in selector_requirements(selector)):
                errors.append(
                    (
                        "spec.template.metadata.labels",
                        f"Invalid value: {_go_value(labels)}: `selector` does not match template "
                        "`labels`",
                    )
                )
            if old is not None and selector != old["spec"].get("selector"):
                errors.append(
                    (
                        "spec.selector",
                        f"Invalid value: {_go_value(selector)}: field is immutable",
                    )
                )
        if old is not None and res is STATEFULSETS:
            frozen_new = {k: v for k, v in spec.items() if k not in _STATEFULSET_MUTABLE}
            frozen_old = {k: v for k, v in old["spec"].items() if k not in _STATEFULSET_MUTABLE}
            if frozen_new != frozen_old:
                errors.append(
                    (
                        "spec",
                        "Forbidden: updates to statefulset spec for fields other than "
                        + ", ".join(f"'{f}'" for f in _STATEFULSET_MUTABLE[:-1])
                        + f" and '{_STATEFULSET_MUTABLE[-1]}' are forbidden",
                    )
                )
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        errors.append((f"{pod_path}.containers", "Required value"))
    else:
        seen: set[str] = set()
        for i, container in enumerate(containers):
            where = f"{pod_path}.containers[{i}]"
            if not isinstance(container, dict):
                errors.append((where, "Invalid value: must be an object"))
                continue
            if not container.get("name"):
                errors.append((f"{where}.name", "Required value"))
            elif container["name"] in seen:
                errors.append((f"{where}.name", f"Duplicate value: {_go_value(container['name'])}"))
            else:
                seen.add(container["name"])
            if not container.get("image"):
                errors.append((f"{where}.image", "Required value"))
    if res is PODS and old is not None and _pod_spec_frozen(spec) != _pod_spec_frozen(old["spec"]):
        errors.append(
            (
                "spec",
                "Forbidden: pod updates may not change fields other than "
                "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                "`spec.activeDeadlineSeconds`,`spec.tolerations` "
                "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                "(allow it to be set to 1 if it was previously negative)",
            )
        )
    if errors:
        raise invalid(res, name, errors)


def _pod_spec_frozen(spec: Obj) -> Obj:
    frozen = {k: copy.deepcopy(v) for k, v in spec.items() if k not in _POD_MUTABLE}
    for field in ("containers", "initContainers"):
        for container in frozen.get(field) or []:
            if isinstance(container, dict):
                container.pop("image", None)
    return frozen


def resolve_surge(value: Any, replicas: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(replicas * int(value[:-1]) / 100)
    return int(value or 0)


def omit_zero(status: Obj, *fields: str) -> Obj:
    """Drop ``omitempty`` integer fields that are zero, as the Go encoder does."""
    for field in fields:
        if status.get(field) == 0:
            del status[field]
    return status


def pod_ready(pod: Obj) -> bool:
    """Whether the kubelet reports the pod Ready."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )

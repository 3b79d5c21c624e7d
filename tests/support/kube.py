"""A fake Kubernetes API server for tests: real HTTP, the real API's semantics, no cluster.

remedy's Kubernetes actions talk to a cluster through kubernetes-asyncio, and no API
server can run where the tests run (SPEC §9). This module serves the part of the API
those actions touch -- apps/v1 Deployments, StatefulSets, DaemonSets and ReplicaSets,
core/v1 Pods and the ``scale`` subresource -- on a loopback port, and answers as a real
API server does: ``resourceVersion`` and ``generation``, optimistic concurrency (409),
``Status`` bodies for NotFound, Forbidden, Conflict and Invalid, strategic-merge, merge
and JSON patches, defaulting, and a Deployment controller that makes ReplicaSets with
revisions the way ``kubectl rollout restart`` and ``kubectl rollout undo`` rely on.
Tests reach it through a generated kubeconfig, so the real client code runs unchanged,
and every request is recorded for assertions.

Simplifications, each one a place where a real cluster would only be slower: the
controllers and the kubelet act synchronously after every write (rollouts finish at
once and pods are Running and Ready at once), deletion is immediate (no graceful
termination, no finalizers), and there is no watch, no server-side apply and no
``status`` subresource.

Load the ``fake_kube`` fixture with ``pytest_plugins = ["tests.support.kube"]``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import dataclasses
import itertools
import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

Obj = dict[str, Any]
"""A Kubernetes object, or any part of one, as decoded JSON."""

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
_NOT_COPIED = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    }
)
_REVISION_HISTORY_LIMIT_CHARS = 2000
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery rand.SafeEncodeString
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# --- resources ---------------------------------------------------------------------------


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
RESOURCES = (DEPLOYMENTS, STATEFULSETS, DAEMONSETS, REPLICASETS, PODS, HPAS)
"""Everything the fake serves."""

_BY_PLURAL = {res.plural: res for res in RESOURCES}
_SCALE = Resource("autoscaling", "v1", "scale", "Scale")


def resource_for(kind: str) -> Resource:
    """The resource a test means by ``Deployment``, ``deployments`` or ``deployments.apps``."""
    wanted = kind.lower().split(".", 1)[0]
    for res in RESOURCES:
        if wanted in (res.kind.lower(), res.plural):
            return res
    raise KeyError(f"the fake API server does not serve {kind!r}")


# --- Status errors -----------------------------------------------------------------------


class ApiError(Exception):
    """A failure a real API server reports as a ``Status`` body with an HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        """The ``Status`` object the server answers with."""
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(group: str, kind: str, name: str | None) -> Obj:
    details: Obj = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    return details


def not_found(res: Resource, name: str) -> ApiError:
    """``deployments.apps "web" not found``."""
    return ApiError(
        404,
        "NotFound",
        f'{res.qualified} "{name}" not found',
        _details(res.group, res.plural, name),
    )


def conflict(res: Resource, name: str, why: str | None = None) -> ApiError:
    """``Operation cannot be fulfilled on deployments.apps "web": the object has been ...``."""
    why = why or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.qualified} "{name}": {why}',
        _details(res.group, res.plural, name),
    )


def already_exists(res: Resource, name: str) -> ApiError:
    """``deployments.apps "web" already exists``."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{res.qualified} "{name}" already exists',
        _details(res.group, res.plural, name),
    )


def forbidden(
    res: Resource,
    name: str | None,
    *,
    user: str,
    verb: str,
    namespace: str | None,
    subresource: str | None = None,
) -> ApiError:
    """The RBAC denial, worded as the API server's authorization filter words it."""
    resource = f"{res.plural}/{subresource}" if subresource else res.plural
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    reason = f'User "{user}" cannot {verb} resource "{resource}" in API group "{res.group}" {scope}'
    subject = f'{res.qualified} "{name}"' if name else res.qualified
    return ApiError(
        403,
        "Forbidden",
        f"{subject} is forbidden: {reason}",
        _details(res.group, res.plural, name),
    )


def invalid(res: Resource, name: str, errors: list[tuple[str, str]]) -> ApiError:
    """422 Invalid naming each field error, as ``field.ErrorList`` prints them."""
    printed = [f"{path}: {detail}" for path, detail in errors]
    joined = printed[0] if len(printed) == 1 else "[" + ", ".join(printed) + "]"
    causes = [
        {"reason": _cause_reason(detail), "message": detail, "field": path}
        for path, detail in errors
    ]
    details = _details(res.group, res.kind, name)
    details["causes"] = causes
    return ApiError(422, "Invalid", f'{res.qualified_kind} "{name}" is invalid: {joined}', details)


def _cause_reason(detail: str) -> str:
    for prefix, reason in (
        ("Required value", "FieldValueRequired"),
        ("Forbidden", "FieldValueForbidden"),
        ("Duplicate value", "FieldValueDuplicate"),
    ):
        if detail.startswith(prefix):
            return reason
    return "FieldValueInvalid"


def bad_request(message: str) -> ApiError:
    """400 BadRequest: a request the server could not read."""
    return ApiError(400, "BadRequest", message)


def unprocessable(message: str) -> ApiError:
    """422 for a patch that decodes but does not apply (a failed JSON-patch ``test``)."""
    return ApiError(422, "Invalid", message)


def unsupported_media_type(accepted: Iterable[str]) -> ApiError:
    """415 for a body in a media type the endpoint does not take."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


def _path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def _method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


# --- label and field selectors -----------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a label selector, such as ``app=web`` or ``tier in (api,web)``."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with these labels is selected."""
        value = labels.get(self.key)
        if self.operator in ("=", "in"):
            return value is not None and value in self.values
        if self.operator in ("!=", "notin"):
            return value is None or value not in self.values
        if self.operator == "exists":
            return value is not None
        if self.operator == "!":
            return value is None
        if value is None or not value.lstrip("-").isdigit():
            return False
        bound = int(self.values[0])
        return int(value) > bound if self.operator == ">" else int(value) < bound

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(sorted(self.values))})"
        return f"{self.key}{self.operator}{self.values[0]}"


_SELECTOR_TOKEN = re.compile(r"\s*(?:(==|!=|=|!|\(|\)|,|<|>)|([^\s=!(),<>]+))")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def parse_label_selector(text: str) -> tuple[Requirement, ...]:
    """Parse a ``labelSelector`` query value; raises ``ValueError`` as the API's parser does.

    Takes the whole grammar: ``k``, ``!k``, ``k=v``, ``k==v``, ``k!=v``,
    ``k in (a,b)``, ``k notin (a,b)``, ``k>1`` and ``k<1``, joined by commas.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = _SELECTOR_TOKEN.match(text, pos)
        if found is None:  # pragma: no cover - the pattern matches any non-blank text
            raise ValueError(f"unable to parse requirement: {text!r}")
        op, word = found.groups()
        tokens.append(("op", op) if op else ("word", word))
        pos = found.end()
    requirements: list[Requirement] = []
    i = 0

    def take() -> tuple[str, str] | None:
        nonlocal i
        token = tokens[i] if i < len(tokens) else None
        i += 1
        return token

    def peek() -> tuple[str, str] | None:
        return tokens[i] if i < len(tokens) else None

    def expect_word(what: str) -> str:
        token = take()
        if token is None or token[0] != "word":
            raise ValueError(f"unable to parse requirement: expected {what} in {text!r}")
        return token[1]

    def key_of(value: str) -> str:
        if not _LABEL_KEY.match(value):
            raise ValueError(f"unable to parse requirement: invalid label key {value!r}")
        return value

    def value_of(value: str) -> str:
        if not _LABEL_VALUE.match(value):
            raise ValueError(f"unable to parse requirement: invalid label value {value!r}")
        return value

    while tokens:
        first = take()
        if first is None:
            raise ValueError(f"unable to parse requirement: expected a key in {text!r}")
        if first == ("op", "!"):
            requirements.append(Requirement(key_of(expect_word("a key")), "!"))
        elif first[0] == "word":
            key = key_of(first[1])
            after = peek()
            if after is None or after == ("op", ","):
                requirements.append(Requirement(key, "exists"))
            elif after[1] in ("=", "==", "!="):
                take()
                operator = "!=" if after[1] == "!=" else "="
                nxt = peek()
                value = ""
                if nxt is not None and nxt[0] == "word":
                    value = value_of(expect_word("a value"))
                requirements.append(Requirement(key, operator, (value,)))
            elif after[1] in (">", "<"):
                take()
                bound = expect_word("a number")
                if not bound.lstrip("-").isdigit():
                    raise ValueError(f"unable to parse requirement: {bound!r} is not an integer")
                requirements.append(Requirement(key, after[1], (bound,)))
            elif after in (("word", "in"), ("word", "notin")):
                take()
                if take() != ("op", "("):
                    raise ValueError(f"unable to parse requirement: expected '(' in {text!r}")
                values: list[str] = []
                while True:
                    values.append(value_of(expect_word("a value")))
                    closer = take()
                    if closer == ("op", ")"):
                        break
                    if closer != ("op", ","):
                        raise ValueError(f"unable to parse requirement: expected ')' in {text!r}")
                requirements.append(Requirement(key, after[1], tuple(values)))
            else:
                raise ValueError(f"unable to parse requirement: unexpected {after[1]!r}")
        else:
            raise ValueError(f"unable to parse requirement: unexpected {first[1]!r}")
        if peek() is None:
            break
        if take() != ("op", ","):
            raise ValueError(f"unable to parse requirement: expected ',' in {text!r}")
    return tuple(requirements)


def selector_requirements(selector: Mapping[str, Any]) -> tuple[Requirement, ...]:
    """The requirements of a ``LabelSelector`` object (matchLabels and matchExpressions)."""
    requirements = [
        Requirement(key, "=", (str(value),))
        for key, value in (selector.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in selector.get("matchExpressions") or []:
        operator = operators[expression["operator"]]
        requirements.append(
            Requirement(expression["key"], operator, tuple(expression.get("values") or ()))
        )
    return tuple(sorted(requirements, key=lambda r: r.key))


def format_selector(selector: Mapping[str, Any]) -> str:
    """A ``LabelSelector`` object as the query string form (``metav1.FormatLabelSelector``)."""
    return ",".join(str(r) for r in selector_requirements(selector))


def _selected(requirements: Iterable[Requirement], obj: Obj) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


_FIELDS = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
}
_POD_FIELDS = {
    "spec.nodeName": ("spec", "nodeName"),
    "spec.restartPolicy": ("spec", "restartPolicy"),
    "spec.schedulerName": ("spec", "schedulerName"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
    "status.phase": ("status", "phase"),
    "status.podIP": ("status", "podIP"),
    "status.nominatedNodeName": ("status", "nominatedNodeName"),
}


def _field_filter(res: Resource, text: str) -> list[tuple[tuple[str, str], bool, str]]:
    fields = {**_FIELDS, **(_POD_FIELDS if res is PODS else {})}
    terms = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        found = re.fullmatch(r"([^=!]+)(==|=|!=)(.*)", term)
        if found is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, operator, value = found.groups()
        if field not in fields:
            raise bad_request(
                f'"{field}" is not a known field selector: only "metadata.name", '
                f'"metadata.namespace"'
            )
        terms.append((fields[field], operator != "!=", value))
    return terms


def _fields_match(terms: list[tuple[tuple[str, str], bool, str]], obj: Obj) -> bool:
    for (part, field), equal, value in terms:
        actual = str((obj.get(part) or {}).get(field, ""))
        if (actual == value) != equal:
            return False
    return True


# --- patches -----------------------------------------------------------------------------


# Strategic-merge keys by field name, from the core/v1 and meta/v1 Go struct tags
# (patchMergeKey). Fields not listed are replaced as a whole, as atomic lists are.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "resourceClaims": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "ownerReferences": "uid",
    "conditions": "type",
}
"""Lists a strategic-merge patch merges element by element, and the key that matches them."""

_MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch: maps merge, ``null`` deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(original: Obj, patch: Obj) -> Obj:
    """Apply a Kubernetes strategic-merge patch to an object.

    Maps merge recursively and ``null`` deletes a key; lists named in ``MERGE_KEYS`` merge
    element by element on their merge key; other lists are replaced. The directives
    ``$patch: replace|delete``, ``$deleteFromPrimitiveList/<field>`` and ``$retainKeys`` are
    honoured; ``$setElementOrder/<field>`` is accepted and ignored (order is not checked).
    """
    return _smp_map(original, patch)


def _smp_map(original: Any, patch: Obj) -> Obj:
    directive = patch.get("$patch")
    if directive == "replace":
        return _smp_map(None, {k: v for k, v in patch.items() if k != "$patch"})
    if directive not in (None, "merge", "delete"):
        raise bad_request(f"Unknown patch type: {directive}")
    result: Obj = copy.deepcopy(original) if isinstance(original, dict) else {}
    deletions: list[tuple[str, Any]] = []
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            deletions.append((key.split("/", 1)[1], value))
            continue
        current = result.get(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = _smp_map(current, value)
        elif isinstance(value, list):
            result[key] = _smp_list(key, current if isinstance(current, list) else [], value)
        else:
            result[key] = value
    for key, values in deletions:
        if not isinstance(values, list):
            raise bad_request(f"invalid patch: $deleteFromPrimitiveList/{key} must be a list")
        if isinstance(result.get(key), list):
            result[key] = [item for item in result[key] if item not in values]
    retain = patch.get("$retainKeys")
    if retain is not None:
        if not isinstance(retain, list):
            raise bad_request("invalid patch: $retainKeys must be a list")
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(field: str, original: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [
            _smp_map(None, item) if isinstance(item, dict) else item
            for item in patch
            if not (isinstance(item, dict) and item.get("$patch") == "replace")
        ]
    merge_key = MERGE_KEYS.get(field)
    if merge_key is not None:
        result = copy.deepcopy(original)
        for item in patch:
            if not isinstance(item, dict):
                raise bad_request(f"invalid patch: {field} elements must be objects")
            if merge_key not in item:
                raise bad_request(f"map: {item} does not contain declared merge key: {merge_key}")
            at = next(
                (
                    i
                    for i, old in enumerate(result)
                    if isinstance(old, dict) and old.get(merge_key) == item[merge_key]
                ),
                None,
            )
            if item.get("$patch") == "delete":
                if at is not None:
                    del result[at]
            elif at is None:
                result.append(_smp_map(None, item))
            else:
                result[at] = _smp_map(result[at], item)
        return result
    if field in _MERGED_PRIMITIVE_LISTS:
        return list(original) + [item for item in patch if item not in original]
    return [_smp_map(None, item) if isinstance(item, dict) else item for item in patch]


def json_patch(document: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch (add, remove, replace, move, copy, test).

    Raises ``ApiError``: 400 for a patch that does not decode, 422 for one that does not
    apply (a missing path, a failed ``test``), as the API server answers.
    """
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict) or not isinstance(operation.get("op"), str):
            raise bad_request(f"invalid JSON patch operation: {operation!r}")
        op = operation["op"]
        path = _pointer(operation.get("path"))
        if op in ("add", "replace", "test") and "value" not in operation:
            raise bad_request(f"{op} operation has no value")
        value = copy.deepcopy(operation.get("value"))
        if op == "add":
            doc = _pointer_add(doc, path, value)
        elif op == "remove":
            doc = _pointer_remove(doc, path)
        elif op == "replace":
            doc = _pointer_remove(doc, path) if path else doc
            doc = _pointer_add(doc, path, value, replacing=True)
        elif op in ("move", "copy"):
            source = _pointer(operation.get("from"))
            moved = copy.deepcopy(_pointer_get(doc, source))
            if op == "move":
                doc = _pointer_remove(doc, source)
            doc = _pointer_add(doc, path, moved)
        elif op == "test":
            if _pointer_get(doc, path) != value:
                raise unprocessable(f"testing value {operation.get('path')} failed: test failed")
        else:
            raise bad_request(f"Unexpected kind: {op}")
    return doc


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise bad_request(f"invalid JSON pointer: {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def _pointer_text(tokens: list[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def _pointer_get(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise unprocessable(f"doc is missing path: {_pointer_text(tokens)}: missing value")
    return node


def _pointer_add(doc: Any, tokens: list[str], value: Any, *, replacing: bool = False) -> Any:
    if not tokens:
        return value
    parent = _pointer_get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        index = len(parent) if last == "-" else int(last) if last.isdigit() else -1
        if not 0 <= index <= len(parent):
            raise unprocessable(f"add operation does not apply: {_pointer_text(tokens)}")
        parent.insert(index, value)
    else:
        action = "replace" if replacing else "add"
        raise unprocessable(f"{action} operation does not apply: {_pointer_text(tokens)}")
    return doc


def _pointer_remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise unprocessable("remove operation does not apply: the document root")
    parent = _pointer_get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise unprocessable(f"doc is missing path: {_pointer_text(tokens)}: missing value")
    return doc


# --- object helpers ----------------------------------------------------------------------


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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fnv32a(data: bytes, start: int = 0x811C9DC5) -> int:
    value = start
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def _safe_encode(text: str) -> str:
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in text)


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """The ``pod-template-hash`` of a pod template, in the controller's format.

    The controller hashes the Go struct with FNV-32a and spells the decimal number in a
    vowel-free alphabet; this hashes canonical JSON the same way, so values look alike
    (``5d59d67564``) and equal templates hash equally.
    """
    value = _fnv32a(json.dumps(normalize(template), sort_keys=True).encode())
    if collision_count:
        value = _fnv32a(collision_count.to_bytes(4, "little"), value)
    return _safe_encode(str(value))


def _meta(obj: Obj) -> Obj:
    meta: Obj = obj.setdefault("metadata", {})
    return meta


def _labels(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = obj.get("metadata", {}).get("labels") or {}
    return labels


def _annotations(obj: Obj) -> dict[str, str]:
    annotations: dict[str, str] = obj.get("metadata", {}).get("annotations") or {}
    return annotations


def revision_of(obj: Obj) -> int:
    """The ``deployment.kubernetes.io/revision`` annotation as a number (0 when absent)."""
    try:
        return int(_annotations(obj).get(REVISION, "0"))
    except ValueError:
        return 0


def _controller_uid(obj: Obj) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            uid: str = ref.get("uid", "")
            return uid
    return None


def _owner_reference(res: Resource, owner: Obj) -> Obj:
    return {
        "apiVersion": res.api_version,
        "kind": res.kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _equal_ignore_hash(one: Obj, other: Obj) -> bool:
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


def _check_shape(res: Resource, obj: Obj) -> None:
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


def validate(res: Resource, obj: Obj, old: Obj | None) -> None:
    """Raise 422 Invalid for what the API's validation would reject and the actions could send."""
    name = obj["metadata"].get("name", "")
    errors: list[tuple[str, str]] = []
    if not _NAME.match(name) or len(name) > 253:
        errors.append(
            (
                "metadata.name",
                f"Invalid value: {_go_value(name)}: a lowercase RFC 1123 subdomain must consist of "
                "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
            )
        )
    spec = obj["spec"]
    if res is HPAS:
        _validate_hpa(spec, errors)
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


def _resolve_surge(value: Any, replicas: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(replicas * int(value[:-1]) / 100)
    return int(value or 0)


def _omit_zero(status: Obj, *fields: str) -> Obj:
    """Drop ``omitempty`` integer fields that are zero, as the Go encoder does."""
    for field in fields:
        if status.get(field) == 0:
            del status[field]
    return status


# --- the server --------------------------------------------------------------------------


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


def _parse_path(path: str) -> _Target:
    found = _CORE_PATH.match(path)
    group, version = "", "v1"
    if found is None:
        found = _GROUP_PATH.match(path)
        if found is None:
            raise _path_not_found()
        group, version = found["group"], found["version"]
    res = _BY_PLURAL.get(found["plural"])
    if res is None or (res.group, res.version) != (group, version):
        raise _path_not_found()
    if found["ns"] is None and found["name"] is not None:
        raise _path_not_found()  # every served resource is namespaced
    sub = found["sub"]
    if sub is not None and not (sub == "scale" and res.scalable):
        raise _path_not_found()
    return _Target(res, found["ns"], found["name"], sub)


def _verb(method: str, target: _Target, query: Mapping[str, str]) -> str:
    named = target.name is not None
    if target.namespace is None and method != "GET":
        raise _method_not_allowed()
    if target.subresource is not None and method not in ("GET", "PUT", "PATCH"):
        raise _method_not_allowed()
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
        raise _method_not_allowed()
    return verb


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
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._resource_version = 0
        self._conflicts: dict[tuple[str, str, str], int] = {}
        self._sequence = itertools.count(1)
        self._created: dict[str, int] = {}
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
        self._server = TestServer(self.app(), host="127.0.0.1")
        await self._server.start_server()
        await asyncio.to_thread(kubeconfig.write_text, yaml.safe_dump(self.kubeconfig_dict()))
        self._kubeconfig = kubeconfig

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            await self._server.close()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the cluster's server address."""
        assert self._server is not None, "the fake API server is not started"
        return f"http://127.0.0.1:{self._server.port}"

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
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
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
        return str(self._resource_version)

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
        return copy.deepcopy(self._objects[(res.plural, namespace, name)])

    def exists(self, kind: str, namespace: str, name: str) -> bool:
        """Whether the object is stored."""
        return (resource_for(kind).plural, namespace, name) in self._objects

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
        return [copy.deepcopy(o) for o in self._in(res, namespace) if _selected(requirements, o)]

    def replicasets(self, namespace: str, deployment: str) -> list[Obj]:
        """The ReplicaSets a Deployment controls, oldest revision first."""
        uid = self._objects[(DEPLOYMENTS.plural, namespace, deployment)]["metadata"]["uid"]
        owned = self._owned(REPLICASETS, namespace, uid)
        return sorted(owned, key=revision_of)

    def pods(self, namespace: str, selector: str | None = None) -> list[Obj]:
        """Copies of the Pods in a namespace, by name, filtered by a label selector."""
        return self.objects("Pod", namespace, selector)

    # -- HTTP -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        query = {key: request.query.getone(key) for key in request.query}
        content_type = request.headers.get("Content-Type")
        media_type = content_type.split(";", 1)[0].strip().lower() if content_type else None
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
        return web.json_response(payload, status=code)

    def _serve(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str],
        media_type: str | None,
        raw: bytes,
        authorization: str | None,
    ) -> tuple[int, Obj]:
        if authorization != f"Bearer {self.token}":
            return 401, ApiError(401, "Unauthorized", "Unauthorized").status()
        if path == "/version" and method == "GET":
            return 200, {
                "major": "1",
                "minor": "31",
                "gitVersion": "v1.31.0-fake",
                "platform": "linux/amd64",
            }
        target = _parse_path(path)
        verb = _verb(method, target, query)
        self._authorize(verb, target)
        dry_run = query.get("dryRun") == "All"
        if verb == "get":
            return 200, self._read(target)
        if verb == "list":
            return 200, self._list_response(target, query)
        if verb == "watch":
            raise bad_request("the fake API server does not serve watches")
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
        obj = self._objects.get(self._key(target))
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
            items = [o for o in items if _sort_key(o) > after]
        if limit and len(items) > limit:
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps(list(_sort_key(items[limit - 1]))).encode()
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
        fields = _field_filter(target.res, query.get("fieldSelector", ""))
        return [
            o
            for o in self._in(target.res, target.namespace)
            if _selected(requirements, o) and _fields_match(fields, o)
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
            self._remove(self._key(target), orphan=orphan)
            self._reconcile()
        if target.res is PODS:
            return deleted  # the pod registry returns the deleted object
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                **_details(target.res.group, target.res.plural, name),
                "uid": old["metadata"]["uid"],
            },
        }

    def _delete_collection(
        self, target: _Target, query: Mapping[str, str], options: Obj, dry_run: bool
    ) -> Obj:
        res = target.res
        chosen = [copy.deepcopy(o) for o in self._matching(target, query)]
        if not (dry_run or options.get("dryRun") == ["All"]):
            orphan = options.get("propagationPolicy") == "Orphan"
            for obj in chosen:
                key = (res.plural, obj["metadata"]["namespace"], obj["metadata"]["name"])
                if key in self._objects:
                    self._remove(key, orphan=orphan)
            self._reconcile()
        for obj in chosen:
            obj.pop("apiVersion", None)
            obj.pop("kind", None)
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": {"resourceVersion": self.resource_version},
            "items": chosen,
        }

    # -- storage --------------------------------------------------------------------------

    def _in(self, res: Resource, namespace: str | None) -> list[Obj]:
        """Stored objects of a resource (in one namespace, or all), in etcd key order."""
        found = [
            obj
            for (plural, ns, _), obj in self._objects.items()
            if plural == res.plural and namespace in (None, ns)
        ]
        return sorted(found, key=_sort_key)

    def _owned(self, res: Resource, namespace: str, uid: str) -> list[Obj]:
        """Copies of the objects a controller owns, oldest first."""
        owned = [o for o in self._in(res, namespace) if _controller_uid(o) == uid]
        owned.sort(key=lambda o: self._created.get(o["metadata"]["uid"], 0))
        return [copy.deepcopy(o) for o in owned]

    def _commit(self, res: Resource, obj: Obj) -> Obj:
        self._resource_version += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = self.resource_version
        self._objects[(res.plural, meta["namespace"], meta["name"])] = obj
        return obj

    def _take_injected_conflict(self, target: _Target) -> None:
        key = self._key(target)
        if self._conflicts.get(key, 0) > 0:
            self._conflicts[key] -= 1
            obj = self._objects[key]
            self._commit(target.res, copy.deepcopy(obj))
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
        _check_shape(res, obj)
        self._check_type(res, obj)
        meta = _meta(obj)
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
            name = self._generate_name(res, namespace, meta["generateName"])
        if not name:
            raise invalid(
                res, "", [("metadata.name", "Required value: name or generateName is required")]
            )
        if (res.plural, namespace, name) in self._objects:
            raise already_exists(res, name)
        meta.update(
            name=name,
            namespace=namespace,
            uid=str(uuid.uuid4()),
            creationTimestamp=_now(),
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
        self._created[meta["uid"]] = next(self._sequence)
        self._commit(res, obj)
        written = copy.deepcopy(obj)
        self._reconcile()
        return written

    def _update(self, res: Resource, old: Obj, body: Obj, *, dry_run: bool = False) -> Obj:
        """Store a user's new version of ``old`` as the registry strategies do.

        Server-owned metadata and the status are kept from ``old``; defaults and
        validation apply; ``generation`` moves when the spec changes (and, for
        Deployments, the annotations); an update that changes nothing is not a write.
        """
        new: Obj = normalize(copy.deepcopy(body))
        _check_shape(res, new)
        self._check_type(res, new)
        meta, old_meta = _meta(new), old["metadata"]
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
            res is DEPLOYMENTS and _annotations(new) != _annotations(old)
        ):
            meta["generation"] = old_meta["generation"] + 1
        if new == old or dry_run:
            return copy.deepcopy(new)
        self._commit(res, new)
        written = copy.deepcopy(new)
        self._reconcile()
        return written

    def _write_scale(self, res: Resource, old: Obj, scale: Obj, dry_run: bool) -> Obj:
        name = old["metadata"]["name"]
        self._check_type(_SCALE, scale)
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise bad_request(
                f"json: cannot unmarshal {type(replicas).__name__} into Go struct field "
                "ScaleSpec.spec.replicas of type int32"
            )
        if replicas < 0:
            raise invalid(
                _SCALE,
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

    def _remove(self, key: tuple[str, str, str], *, orphan: bool) -> None:
        """Delete an object now; its dependents go too (background GC) or lose the owner."""
        obj = self._objects.pop(key)
        self._resource_version += 1
        uid = obj["metadata"]["uid"]
        for dep_key, dependent in list(self._objects.items()):
            refs = dependent["metadata"].get("ownerReferences") or []
            if not any(ref.get("uid") == uid for ref in refs):
                continue
            if orphan:
                kept = copy.deepcopy(dependent)
                kept["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                self._commit(_BY_PLURAL[dep_key[0]], normalize(kept))
            elif dep_key in self._objects:
                self._remove(dep_key, orphan=False)

    def _generate_name(self, res: Resource, namespace: str, prefix: str) -> str:
        while True:
            name = prefix + _safe_encode(str(_fnv32a(str(next(self._sequence)).encode())))[-5:]
            if (res.plural, namespace, name) not in self._objects:
                return name

    # -- controllers ----------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Run the controllers and the kubelet until nothing changes any more."""
        for _ in range(20):
            before = self._resource_version
            for res, sync in (
                (DEPLOYMENTS, self._sync_deployment),
                (REPLICASETS, self._sync_replicaset),
                (STATEFULSETS, self._sync_statefulset),
                (DAEMONSETS, self._sync_daemonset),
                (PODS, self._sync_pod),
            ):
                for obj in self._in(res, None):
                    meta = obj["metadata"]
                    key = (res.plural, meta["namespace"], meta["name"])
                    if key in self._objects:
                        sync(copy.deepcopy(self._objects[key]))
            if self._resource_version == before:
                return
        raise AssertionError("the fake controllers did not settle")  # pragma: no cover

    def _controller_write(self, res: Resource, obj: Obj, *, status_only: bool = False) -> Obj:
        """A controller's update: like a user's, but trusted and free to set the status."""
        meta = obj["metadata"]
        key = (res.plural, meta["namespace"], meta["name"])
        old = self._objects[key]
        new = normalize(obj)
        if not status_only and new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = old["metadata"]["generation"] + 1
        if new == old:
            return copy.deepcopy(old)
        return copy.deepcopy(self._commit(res, new))

    def _controller_create(self, res: Resource, obj: Obj) -> Obj:
        meta = obj["metadata"]
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        apply_defaults(res, obj)
        self._created[meta["uid"]] = next(self._sequence)
        return copy.deepcopy(self._commit(res, normalize(obj)))

    def _sync_deployment(self, deployment: Obj) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        namespace, uid = meta["namespace"], meta["uid"]
        owned = self._owned(REPLICASETS, namespace, uid)
        new_rs = next(
            (rs for rs in owned if _equal_ignore_hash(rs["spec"]["template"], spec["template"])),
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
                deployment, _annotations(new_rs), next_revision
            )
            new_rs = self._controller_write(REPLICASETS, new_rs)
        active = [rs for rs in owned if rs["spec"].get("replicas")]
        if len(active) > 1:
            return new_rs  # proportional scaling of several: not what remedy's tests reach
        if active:
            chosen: Obj | None = active[0]
        else:
            chosen = new_rs or max(
                owned, key=lambda rs: self._created.get(rs["metadata"]["uid"], 0), default=None
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
        return _resolve_surge(surge, deployment["spec"]["replicas"])

    def _replicaset_annotations(
        self, deployment: Obj, rs_annotations: Mapping[str, str], revision: int
    ) -> dict[str, str]:
        """The annotations ``SetNewReplicaSetAnnotations`` gives the new ReplicaSet."""
        annotations = {k: v for k, v in rs_annotations.items()}
        for key, value in _annotations(deployment).items():
            if key not in _NOT_COPIED:
                annotations[key] = value
        old = rs_annotations.get(REVISION)
        if old is None or int(old) < revision:
            annotations[REVISION] = str(revision)
            if old is not None:
                history = [h for h in rs_annotations.get(REVISION_HISTORY, "").split(",") if h]
                history.append(old)
                while history and len(",".join(history)) > _REVISION_HISTORY_LIMIT_CHARS:
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
            if (REPLICASETS.plural, meta["namespace"], name) not in self._objects:
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
                "ownerReferences": [_owner_reference(DEPLOYMENTS, deployment)],
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
            deployment, _annotations(rs), revision
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
            if key in self._objects:
                self._remove(key, orphan=False)

    def _deployment_status(self, deployment: Obj, new_rs: Obj | None, collisions: int) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        owned = self._owned(REPLICASETS, meta["namespace"], meta["uid"])
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
        unavailable_allowed = replicas - _resolve_surge(
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
        _omit_zero(
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
            _meta(deployment).setdefault("annotations", {})[REVISION] = str(revision_of(new_rs))
        # The controller writes the revision annotation through the status subresource,
        # so neither it nor the status moves the generation.
        self._controller_write(DEPLOYMENTS, deployment, status_only=True)

    @staticmethod
    def _condition(old_status: Obj, kind: str, ok: bool | None, reason: str, message: str) -> Obj:
        status = "Unknown" if ok is None else "True" if ok else "False"
        now = _now()
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
        pods = self._owned(PODS, meta["namespace"], meta["uid"])
        want = rs["spec"]["replicas"]
        for pod in pods[want:][::-1]:
            self._remove((PODS.plural, meta["namespace"], pod["metadata"]["name"]), orphan=False)
        pods = pods[:want]
        while len(pods) < want:
            pods.append(self._new_pod(REPLICASETS, rs, name=None, labels={}))
        ready = sum(1 for pod in pods if _pod_ready(pod))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": meta["generation"],
        }
        rs["status"] = _omit_zero(
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
            "ownerReferences": [_owner_reference(owner_res, owner)],
        }
        if name is None:
            pod_meta["generateName"] = f"{meta['name']}-"
            name = self._generate_name(PODS, meta["namespace"], pod_meta["generateName"])
        pod_meta["name"] = name
        spec = template["spec"]
        spec["nodeName"] = node or (self.nodes[0] if self.nodes else "node-1")
        pod = {"metadata": pod_meta, "spec": spec}
        pod["status"] = self._running(pod)
        return self._controller_create(PODS, pod)

    def _running(self, pod: Obj) -> Obj:
        """The status a kubelet reports for a pod whose containers all started."""
        now = _now()
        number = next(self._sequence)
        return {
            "phase": "Running",
            "conditions": [
                {"type": kind, "status": "True", "lastTransitionTime": now}
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
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for container in pod["spec"].get("containers") or []
            ],
        }

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
        pods = {p["metadata"]["name"]: p for p in self._owned(PODS, namespace, meta["uid"])}
        for name, pod in sorted(pods.items(), reverse=True):
            outdated = _labels(pod).get(CONTROLLER_REVISION_HASH) != revision
            if name not in wanted or (outdated and not on_delete):
                self._remove((PODS.plural, namespace, name), orphan=False)
                del pods[name]
        for index, name in enumerate(wanted):
            if name not in pods and (PODS.plural, namespace, name) not in self._objects:
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
            1 for p in current_pods if _labels(p).get(CONTROLLER_REVISION_HASH) == revision
        )
        ready = sum(1 for p in current_pods if _pod_ready(p))
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
        sts["status"] = _omit_zero(status, "readyReplicas", "currentReplicas", "updatedReplicas")
        self._controller_write(STATEFULSETS, sts, status_only=True)

    def _sync_daemonset(self, ds: Obj) -> None:
        meta, spec = ds["metadata"], ds["spec"]
        namespace = meta["namespace"]
        revision = template_hash(spec["template"])
        on_delete = (spec.get("updateStrategy") or {}).get("type") == "OnDelete"
        pods = self._owned(PODS, namespace, meta["uid"])
        by_node: dict[str, Obj] = {}
        for pod in pods:
            node = pod["spec"].get("nodeName", "")
            outdated = _labels(pod).get(CONTROLLER_REVISION_HASH) != revision
            if node not in self.nodes or node in by_node or (outdated and not on_delete):
                self._remove((PODS.plural, namespace, pod["metadata"]["name"]), orphan=False)
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
        ready = sum(1 for p in running if _pod_ready(p))
        updated = sum(1 for p in running if _labels(p).get(CONTROLLER_REVISION_HASH) == revision)
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
        ds["status"] = _omit_zero(
            status, "updatedNumberScheduled", "numberAvailable", "numberUnavailable"
        )
        self._controller_write(DAEMONSETS, ds, status_only=True)

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


def _sort_key(obj: Obj) -> tuple[str, str]:
    return (obj["metadata"]["namespace"], obj["metadata"]["name"])


def _pod_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


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
        "spec": _omit_zero(spec, "replicas"),
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": format_selector(obj["spec"].get("selector") or {}),
        },
    }


@pytest.fixture(name="fake_kube")
async def fake_kube_fixture(tmp_path: Path) -> AsyncIterator[FakeKube]:
    """``fake_kube``: a started fake API server and a kubeconfig for it in ``tmp_path``."""
    kube = FakeKube()
    await kube.start(tmp_path / "kubeconfig")
    try:
        yield kube
    finally:
        await kube.close()

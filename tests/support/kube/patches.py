"""Strategic-merge, JSON merge and JSON patches, applied as the API server applies them."""

from __future__ import annotations

import copy
from typing import Any

from tests.support.kube.errors import bad_request, unprocessable
from tests.support.kube.resources import Obj

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

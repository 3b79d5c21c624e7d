"""Walking and changing JSON documents: the places in one, and a copy with one place changed."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

MISSING = object()
"""Put at a path by :func:`replaced`: the key is removed (a list item becomes ``null``)."""


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON document where a value sits: object keys and list indexes."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def at(document: Any, path: tuple[Any, ...]) -> Any:
    """The value at ``path``."""
    for step in path:
        document = document[step]
    return document


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``document`` with the value at ``path`` replaced (or, with MISSING, removed)."""
    result = copy.deepcopy(document)
    *parents, last = path
    holder = at(result, tuple(parents))
    if value is MISSING and isinstance(holder, dict):
        del holder[last]
    else:
        holder[last] = None if value is MISSING else value
    return result


def dotted(path: tuple[Any, ...]) -> str:
    """``path`` as remedy names a field: ``alerts[0].labels.job``."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}" if text else str(step)
    return text

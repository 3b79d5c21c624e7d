"""Where the fake keeps its objects: an in-memory etcd."""

from __future__ import annotations

import collections
import copy
import dataclasses
import itertools
from collections.abc import Callable

from tests.support.kube.objects import controller_uid, fnv32a, normalize, safe_encode
from tests.support.kube.resources import BY_PLURAL, Key, Obj, Resource

HISTORY = 10_000
"""How many changes the store keeps for watches that start at a ``resourceVersion``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """One write, as a watch reports it: ``ADDED``, ``MODIFIED`` or ``DELETED``, and a copy."""

    version: int
    type: str
    plural: str
    obj: Obj


class Store:
    """The fake's etcd: objects by resource, namespace and name, and one revision counter.

    Every write takes the next ``resourceVersion``; creation order is kept so that
    controllers find the objects they own oldest first, as a real informer's cache
    sorted by creation timestamp would (to the second, which is too coarse here).
    """

    def __init__(self) -> None:
        self.objects: dict[Key, Obj] = {}
        self.version = 0
        self._created: dict[str, int] = {}
        self._sequence = itertools.count(1)
        self.changes: collections.deque[Change] = collections.deque(maxlen=HISTORY)
        self._listeners: list[Callable[[Change], None]] = []

    def listen(self, listener: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``listener`` with every change from now on; returns how to stop."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _changed(self, kind: str, plural: str, obj: Obj) -> None:
        change = Change(self.version, kind, plural, copy.deepcopy(obj))
        self.changes.append(change)
        for listener in list(self._listeners):
            listener(change)

    @property
    def resource_version(self) -> str:
        """The latest ``resourceVersion`` handed out."""
        return str(self.version)

    def serial(self) -> int:
        """A number never handed out before (for generated names and creation order)."""
        return next(self._sequence)

    def created(self, uid: str) -> None:
        """Note that the object ``uid`` was created now."""
        self._created[uid] = self.serial()

    def rank(self, uid: str) -> int:
        """When the object ``uid`` was created, relative to the others."""
        return self._created.get(uid, 0)

    def in_(self, res: Resource, namespace: str | None) -> list[Obj]:
        """Stored objects of a resource (in one namespace, or all), in etcd key order."""
        found = [
            obj
            for (plural, ns, _), obj in self.objects.items()
            if plural == res.plural and namespace in (None, ns)
        ]
        return sorted(found, key=etcd_order)

    def owned(self, res: Resource, namespace: str, uid: str) -> list[Obj]:
        """Copies of the objects a controller owns, oldest first."""
        owned = [o for o in self.in_(res, namespace) if controller_uid(o) == uid]
        owned.sort(key=lambda o: self.rank(o["metadata"]["uid"]))
        return [copy.deepcopy(o) for o in owned]

    def commit(self, res: Resource, obj: Obj) -> Obj:
        """Store ``obj`` under the next ``resourceVersion``."""
        self.version += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = self.resource_version
        key = (res.plural, meta["namespace"], meta["name"])
        kind = "MODIFIED" if key in self.objects else "ADDED"
        self.objects[key] = obj
        self._changed(kind, res.plural, obj)
        return obj

    def remove(self, key: tuple[str, str, str], *, orphan: bool) -> None:
        """Delete an object now; its dependents go too (background GC) or lose the owner."""
        obj = self.objects.pop(key)
        self.version += 1
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = self.resource_version
        self._changed("DELETED", key[0], gone)
        uid = obj["metadata"]["uid"]
        for dep_key, dependent in list(self.objects.items()):
            refs = dependent["metadata"].get("ownerReferences") or []
            if not any(ref.get("uid") == uid for ref in refs):
                continue
            if orphan:
                kept = copy.deepcopy(dependent)
                kept["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                self.commit(BY_PLURAL[dep_key[0]], normalize(kept))
            elif dep_key in self.objects:
                self.remove(dep_key, orphan=False)

    def generate_name(self, res: Resource, namespace: str, prefix: str) -> str:
        """``prefix`` and five random characters, as ``generateName`` makes them."""
        while True:
            name = prefix + safe_encode(str(fnv32a(str(self.serial()).encode())))[-5:]
            if (res.plural, namespace, name) not in self.objects:
                return name


def etcd_order(obj: Obj) -> tuple[str, str]:
    return (obj["metadata"]["namespace"], obj["metadata"]["name"])

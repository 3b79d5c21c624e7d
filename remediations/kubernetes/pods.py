"""What ``delete_pod`` and ``evict_pod`` share: which pods, by name or selector, up to ``max``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client

from remediations.base import ParamError, PermanentError, TemporaryError
from remediations.kubernetes.cluster import call
from remediations.params import Fields


@dataclasses.dataclass(frozen=True, slots=True)
class PodsParams:
    """A validated choice of pods: one by name, or those a selector finds."""

    namespace: str
    name: str | None
    selector: str | None
    maximum: int

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> PodsParams:
        """``namespace``, exactly one of ``name`` and ``selector``, and ``max`` (default 1)."""
        fields = Fields(params, ("namespace", "name", "selector", "max"))
        if fields.has("name") == fields.has("selector"):
            raise ParamError("name", "give exactly one of name or selector")
        return cls(
            fields.string("namespace"),
            fields.string("name") if fields.has("name") else None,
            fields.string("selector") if fields.has("selector") else None,
            fields.integer("max", 1, minimum=1),
        )

    async def names(self, core: client.CoreV1Api, verb: str) -> list[str]:
        """The pods to act on; a permanent error when the selector finds none or too many."""
        if self.name is not None:
            return [self.name]
        selector = self.selector or ""
        listed = await call(
            f"pods in {self.namespace}",
            lambda: core.list_namespaced_pod(self.namespace, label_selector=selector),
        )
        names = [pod.metadata.name for pod in listed.items]
        if not names:
            raise PermanentError(f"no pod in {self.namespace} matches {selector}")
        if len(names) > self.maximum:
            raise PermanentError(
                f"{len(names)} pods in {self.namespace} match {selector}, more than "
                f"max {self.maximum}: none {verb}"
            )
        return names


def partial_run(exc: TemporaryError, verb: str, done: list[str]) -> PermanentError:
    """A temporary error after some pods went: final, with the ones that went named.

    A retry would list the pods again, replacements included, and could act on up
    to ``max`` of them once more.
    """
    return PermanentError(f"{exc} (after {verb} {', '.join(done)})")

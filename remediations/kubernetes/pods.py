"""What ``delete_pod`` and ``evict_pod`` share: which pods, by name or selector, up to ``max``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from kubernetes_asyncio import client

from remediations.base import ActionContext, ParamError, PermanentError, TemporaryError
from remediations.kubernetes.cluster import api, call
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


class PodAction:
    """An action that takes pods away one by one: parse, subject and the loop are shared.

    The result names the pods under ``done`` (``deleted``, ``evicted``); ``act`` may
    add its own counts to it, and answers ``False`` for a pod that was already gone.
    Once one pod has gone, a later temporary error is final: a retry would list the
    pods again, replacements included, and could take up to ``max`` of them again.
    """

    name: ClassVar[str]
    done: ClassVar[str]
    doing: ClassVar[str]

    def parse(self, params: Mapping[str, Any]) -> PodsParams:
        """See the module docstring."""
        return PodsParams.parse(params)

    def subject(self, params: PodsParams) -> str:
        """The namespace ``backends.kubernetes.namespaces`` must list."""
        return params.namespace

    async def run(self, params: PodsParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Act on each chosen pod in turn; report their names."""
        core = client.CoreV1Api(api(ctx))
        taken: list[str] = []
        gone: list[str] = []
        result: dict[str, Any] = {"namespace": params.namespace, self.done: taken}
        for name in await params.names(core, self.done):
            try:
                acted = await self.act(core, params.namespace, name, ctx, result)
            except TemporaryError as exc:
                if not taken:
                    raise
                raise PermanentError(f"{exc} (after {self.doing} {', '.join(taken)})") from None
            (taken if acted else gone).append(name)
        if gone:
            result["already_gone"] = gone
        return result

    async def act(
        self,
        core: client.CoreV1Api,
        namespace: str,
        name: str,
        ctx: ActionContext,
        result: dict[str, Any],
    ) -> bool:
        """Take one pod away; ``False`` when it was already gone."""
        raise NotImplementedError

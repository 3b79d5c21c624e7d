"""What the Kubernetes actions share: the client, the workload kinds, and errors.

The API's answers are translated here, once: 403 and 404 are permanent (with
the API's own message), 409 conflicts are retried a few times and then
temporary, 429 and 5xx are temporary.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import stamina
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from remediations.base import ActionContext, ParamError, PermanentError, TemporaryError
from remediations.params import Fields

T = TypeVar("T")

KINDS = ("Deployment", "StatefulSet", "DaemonSet")
_METHOD_NAMES = {
    "Deployment": "deployment",
    "StatefulSet": "stateful_set",
    "DaemonSet": "daemon_set",
}
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
CONFLICT_ATTEMPTS = 3


@dataclasses.dataclass(frozen=True, slots=True)
class Workload:
    """One workload: its kind, namespace and name."""

    kind: str
    namespace: str
    name: str

    @property
    def method(self) -> str:
        """The snake-case name the client's methods use for the kind."""
        return _METHOD_NAMES[self.kind]

    def describe(self) -> str:
        """``deployment/web in shop``, as kubectl would say it."""
        return f"{self.kind.lower()}/{self.name} in {self.namespace}"


def parse_workload(fields: Fields, kinds: tuple[str, ...] = KINDS) -> Workload:
    """``namespace``, ``name`` and ``kind`` (default Deployment) of a workload."""
    kind = fields.string("kind", "Deployment")
    if kind not in kinds:
        raise ParamError("kind", f"expected one of {', '.join(kinds)}, got {kind!r}")
    return Workload(kind, fields.string("namespace"), fields.string("name"))


def api(ctx: ActionContext) -> client.ApiClient:
    """The service's Kubernetes client; a permanent error when none is configured."""
    if ctx.kubernetes is None:
        raise PermanentError("backends.kubernetes is not configured in remedy.yaml")
    return ctx.kubernetes


def _message(exc: ApiException) -> str:
    """The API's own message (from its Status object) and its causes, else its reason.

    A cause says what the message only summarises: an eviction's 429 names the
    disruption budget and its counts there.
    """
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        body = {}
    if not isinstance(body, Mapping):
        body = {}
    message = str(body.get("message") or exc.reason or "no message")
    details = body.get("details")
    causes = details.get("causes") if isinstance(details, Mapping) else None
    said = [
        str(cause["message"])
        for cause in causes or []
        if isinstance(cause, Mapping)
        and cause.get("message")
        and str(cause["message"]) not in message
    ]
    return f"{message} ({'; '.join(said)})" if said else message


class Refused(PermanentError):
    """The API refused (4xx but 429): ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Unavailable(TemporaryError):
    """The API could not do it now (409 after retries, 429, 5xx): ``status`` says which."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _Conflict(Exception):
    """A 409 from the API: worth a fresh read and another try."""


async def call(what: str, operation: Callable[[], Awaitable[T]]) -> T:
    """Run one API call (retrying conflicts), translating its errors."""
    try:
        async for attempt in stamina.retry_context(
            on=_Conflict,
            attempts=CONFLICT_ATTEMPTS,
            timeout=None,
            wait_initial=0.05,
            wait_max=0.5,
        ):
            with attempt:
                try:
                    return await operation()
                except ApiException as exc:
                    if exc.status == 409:
                        raise _Conflict(_message(exc)) from None
                    raise
    except _Conflict as exc:
        raise Unavailable(f"{what}: conflict: {exc}", 409) from None
    except ApiException as exc:
        status = int(exc.status or 0)
        message = f"{what}: {_message(exc)} (API answered {exc.status})"
        if status == 429 or status >= 500:
            raise Unavailable(message, status) from None
        raise Refused(message, status) from None
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise TemporaryError(
            f"{what}: cannot reach the API server ({type(exc).__name__})"
        ) from None
    raise AssertionError("stamina either returns or raises")


def plain(api_client: client.ApiClient, obj: Any) -> Any:
    """A client model as plain JSON-like data (the API's own field names)."""
    return api_client.sanitize_for_serialization(obj)

"""What every action is: params checked at rule load, a run that reports an outcome.

Backends translate their SDK errors into the two kinds below once, so the
executor decides retries without knowing any SDK.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import aiodocker
    import aiohttp
    import kubernetes_asyncio.client

    from remediations.aws.session import AwsSession
    from remediations.postgresql.servers import PostgresServers
    from remediations.redis.servers import RedisServers


class ParamError(ValueError):
    """A parameter is wrong; ``field`` is its path inside ``params``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ActionError(Exception):
    """An action failed; the message is what the audit log records."""


class ActionTimeout(ActionError):
    """The backend did not answer in the action's own time; the outcome is ``timeout``."""


class PermanentError(ActionError):
    """Retrying cannot help: bad params, 403, 404, a missing target."""


class TemporaryError(ActionError):
    """May succeed later: 409, 429, 5xx, a dropped connection."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


def _allow_all(subject: str) -> bool:
    del subject
    return True


@dataclasses.dataclass(frozen=True, slots=True)
class ActionContext:
    """What a running action may use: shared clients and the alert's plain data.

    ``allowed`` is the action's backend allow-list, for what an action only
    learns while it runs (the containers a label selection finds); ``docker``,
    ``kubernetes``, ``aws``, ``redis`` and ``postgresql`` are ``None`` when
    their backend is not configured. ``deadline`` is when the step's ``timeout``
    ends this attempt (the event loop's clock), for an action that waits on the
    backend and would rather fail with the backend's reason than be cut off.
    """

    http: aiohttp.ClientSession
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    allowed: Callable[[str], bool] = _allow_all
    docker: aiodocker.Docker | None = None
    kubernetes: kubernetes_asyncio.client.ApiClient | None = None
    aws: AwsSession | None = None
    redis: RedisServers | None = None
    postgresql: PostgresServers | None = None
    deadline: float | None = None


class Action(Protocol):
    """One remediation verb, named ``backend.verb``.

    ``parse`` turns rendered params into the action's own value (raising
    :class:`ParamError`); it runs at rule load on sample params and again on
    the rendered params just before ``run``. ``subject`` names what the
    backend's allow-list must admit. ``run`` returns details for the audit log
    or raises an :class:`ActionError`.
    """

    name: ClassVar[str]

    def parse(self, params: Mapping[str, Any]) -> Any: ...

    def subject(self, params: Any) -> str | None:
        """What its backend's allow-list is matched against (a URL, a container name...).

        ``None`` when that is known only at run time; the action then checks
        ``ActionContext.allowed`` itself before it touches anything.
        """
        ...

    async def run(self, params: Any, ctx: ActionContext) -> Mapping[str, Any]: ...


@runtime_checkable
class Previews(Protocol):
    """An action that can tell, touching nothing, what its run would do: dry-run asks it.

    ``preview`` reads what ``run`` would act on (the keys a pattern matches,
    the sessions a query selects, the version an alias would go back to) and
    returns details for the audit log's ``dry_run`` event, or raises an
    :class:`ActionError` as ``run`` would. It must change nothing.
    """

    async def preview(self, params: Any, ctx: ActionContext) -> Mapping[str, Any]: ...

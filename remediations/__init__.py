"""remedy's actions: one protocol, a registry, one module per action grouped by backend.

The actions' modules, and the SDKs they use (kubernetes-asyncio, aiobotocore,
redis, asyncpg), load when a registry is first built, not with this package: a
CLI command that only talks to a running remedy starts without them.
"""

from remediations.base import (
    Action,
    ActionContext,
    ActionError,
    ActionTimeout,
    ParamError,
    PermanentError,
    Previews,
    TemporaryError,
)
from remediations.registry import Registry


def builtin_registry() -> Registry:
    """A new registry holding every built-in action (see :mod:`remediations.builtin`)."""
    from remediations.builtin import builtin_registry as build  # noqa: PLC0415 - see above

    return build()


__all__ = [
    "Action",
    "ActionContext",
    "ActionError",
    "ActionTimeout",
    "ParamError",
    "PermanentError",
    "Previews",
    "Registry",
    "TemporaryError",
    "builtin_registry",
]

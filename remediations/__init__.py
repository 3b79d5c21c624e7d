"""remedy's actions: one protocol, a registry, one module per action grouped by backend."""

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
from remediations.builtin import builtin_registry
from remediations.registry import Registry

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

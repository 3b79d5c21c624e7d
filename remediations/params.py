"""Reading an action's params strictly: unknown keys and wrong types name the field.

Durations are parsed here as well as in ``rules``: the two packages stay
independent, and an action's own params (``timeout: 10s``) are its business.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from remediations.base import ParamError

_DURATION = re.compile(r"(?:\d+(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_MISSING = object()


class Fields:
    """Typed access to one params mapping; every getter raises :class:`ParamError`."""

    def __init__(self, params: Mapping[str, Any], allowed: Sequence[str], prefix: str = "") -> None:
        self._params = params
        self._prefix = prefix
        for key in params:
            if key not in allowed:
                raise ParamError(
                    self._path(str(key)),
                    f"unknown parameter (allowed: {', '.join(sorted(allowed))})",
                )

    def _path(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def _get(self, name: str, default: Any) -> Any:
        value = self._params.get(name, default)
        if value is _MISSING:
            raise ParamError(self._path(name), "is required")
        return value

    def has(self, name: str) -> bool:
        """Whether the param is given."""
        return name in self._params

    def string(self, name: str, default: Any = _MISSING) -> str:
        """A non-empty string."""
        value = self._get(name, default)
        if not isinstance(value, str) or not value:
            raise ParamError(self._path(name), f"expected a non-empty string, got {value!r}")
        return value

    def integer(self, name: str, default: Any = _MISSING, minimum: int | None = None) -> int:
        """An integer (not a bool), optionally bounded below."""
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(self._path(name), f"expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise ParamError(self._path(name), f"must be at least {minimum}, got {value}")
        return value

    def duration(self, name: str, default: Any = _MISSING) -> float:
        """A duration such as ``10s`` or a number of seconds, greater than zero."""
        value = self._get(name, default)
        seconds = parse_seconds(value)
        if seconds is None:
            raise ParamError(self._path(name), f"expected a duration such as 10s, got {value!r}")
        return seconds

    def mapping(self, name: str, default: Any = _MISSING) -> Mapping[str, Any]:
        """A mapping with string keys."""
        value = self._get(name, default)
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ParamError(self._path(name), f"expected a mapping, got {value!r}")
        return value

    def raw(self, name: str, default: Any = _MISSING) -> Any:
        """The value as given (JSON-like data)."""
        return self._get(name, default)


def parse_seconds(value: object) -> float | None:
    """Seconds in ``10s``/``1m30s`` or a positive number; ``None`` when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    if isinstance(value, str):  # only short text is remembered: a template renders any length
        return _seconds_in(value) if len(value) <= 32 else _seconds_in.__wrapped__(value)
    return None


@functools.lru_cache(maxsize=256)
def _seconds_in(text: str) -> float | None:
    """:func:`parse_seconds` of a string, remembered: a rule's durations are checked per alert."""
    if not _DURATION.fullmatch(text):
        return None
    total = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    return total if total > 0 else None


@dataclasses.dataclass(frozen=True, slots=True)
class BoundedChange:
    """A count to set, or a delta to apply, within a required ``[min, max]``.

    What ``kubernetes.scale`` and ``aws.lambda_concurrency`` share: a storm of
    alerts never takes the count past ``max``, and a delta never moves against
    its own direction (adding to a count already above ``max`` leaves it).
    """

    absolute: int | None
    delta: int | None
    minimum: int
    maximum: int

    @classmethod
    def parse(cls, fields: Fields, absolute: str) -> BoundedChange:
        """``absolute`` (the key: replicas, reserved) or ``delta``; ``max`` and ``min`` (1)."""
        if fields.has(absolute) == fields.has("delta"):
            raise ParamError(absolute, f"give exactly one of {absolute} or delta")
        maximum = fields.integer("max", minimum=0)
        minimum = fields.integer("min", 1, minimum=0)
        if minimum > maximum:
            raise ParamError("min", f"min ({minimum}) is above max ({maximum})")
        value = fields.integer(absolute, minimum=0) if fields.has(absolute) else None
        if value is not None and not minimum <= value <= maximum:
            raise ParamError(absolute, f"{value} is outside [{minimum}, {maximum}]")
        delta = fields.integer("delta") if fields.has("delta") else None
        if delta == 0:
            raise ParamError("delta", "must not be 0")
        return cls(value, delta, minimum, maximum)

    def target(self, current: int) -> int:
        """The count to set, from the current one."""
        if self.absolute is not None:
            return self.absolute
        delta = self.delta or 0
        wanted = max(self.minimum, min(self.maximum, current + delta))
        if (delta > 0 and wanted < current) or (delta < 0 and wanted > current):
            return current
        return wanted

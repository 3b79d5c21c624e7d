"""Durations as Prometheus writes them: ``30s``, ``10m``, ``1h30m``, ``1d``."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w))+")


def parse_duration(text: object) -> float:
    """Seconds in a duration string; ``ValueError`` with the accepted form otherwise."""
    if not isinstance(text, str) or not _WHOLE.fullmatch(text.strip()):
        raise ValueError(f"invalid duration {text!r} (use e.g. 30s, 10m, 1h, 1d)")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text.strip()))
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be greater than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest duration string for a number of seconds."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    rest = int(seconds)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"

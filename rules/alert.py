"""The one alert value every ingest adapter produces and every rule matches."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

Source = Literal["alertmanager", "cloudwatch"]
Status = Literal["firing", "resolved"]

SOURCES: tuple[str, ...] = ("alertmanager", "cloudwatch")
STATUSES: tuple[str, ...] = ("firing", "resolved")

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_SEPARATOR = 0xFF


def fingerprint_of(labels: Mapping[str, str]) -> str:
    """The fingerprint Alertmanager gives a label set (FNV-1a 64 over sorted pairs).

    Used when a payload carries no fingerprint, so the same alert gets the
    same identity whichever way it arrived.
    """
    h = _FNV64_OFFSET
    for name in sorted(labels):
        for chunk in (name.encode(), labels[name].encode()):
            for byte in (*chunk, _SEPARATOR):
                h ^= byte
                h = (h * _FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


@dataclasses.dataclass(frozen=True, slots=True)
class Alert:
    """A normalised alert: what rules match and what the audit log names."""

    source: Source
    name: str
    status: Status
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    generator_url: str = ""

    @property
    def occurrence(self) -> tuple[str, str, str]:
        """One firing episode of one alert: source, fingerprint and start."""
        return (self.source, self.fingerprint, self.starts_at.isoformat())

    @property
    def dedup_key(self) -> tuple[str, str, str, str]:
        """Two deliveries with the same key are the same notification."""
        return (*self.occurrence, self.status)

    def summary(self) -> dict[str, object]:
        """The alert as the audit log records it."""
        return {
            "source": self.source,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": dict(self.labels),
        }

"""The storage contract: what SQLite implements now and PostgreSQL will, same semantics.

Writes are units of work that commit atomically: an ingest stores the alerts,
their remediations and their audit events together, so a 200 never covers
something half stored. Audit events get their id, time and hashes inside the
same transaction, which keeps the chain linear.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from receiver.audit import AuditEvent, AuditRecord, VerifyResult, redact
from rules.alert import Alert


class StoreUnavailable(Exception):
    """Storage cannot take the write now; the caller answers 503 so the sender retries."""


class StoreCorrupt(Exception):
    """Stored data cannot be read back: tampering or a damaged file."""


class NotFound(Exception):
    """No such record."""


class StateConflict(Exception):
    """A remediation was not in the state a transition expected (someone else moved it)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """What one matched rule will do for one alert occurrence, fully rendered."""

    rule: str
    target: str | None
    steps: Sequence[Mapping[str, Any]]
    on_failure: Sequence[Mapping[str, Any]] = ()
    dry_run: bool = True
    skip_reason: str | None = None
    error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class IncomingAlert:
    """An alert with the plans its matching rules produced."""

    alert: Alert
    plans: Sequence[Plan] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Remediation:
    """A stored remediation record: one (alert occurrence, rule)."""

    id: int
    rule: str
    target: str | None
    state: str
    reason: str | None
    alert: Mapping[str, Any]
    steps: Sequence[Mapping[str, Any]]
    on_failure: Sequence[Mapping[str, Any]]
    dry_run: bool
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the API shows, secrets redacted as in the audit log."""
        data = dataclasses.asdict(self)
        data["steps"] = redact(data["steps"])
        data["on_failure"] = redact(data["on_failure"])
        data["alert"] = redact(data["alert"])
        return data


@dataclasses.dataclass(frozen=True, slots=True)
class IngestResult:
    """What one ingest stored."""

    stored: int
    duplicates: int
    queued: Sequence[Remediation]
    skipped: int


@dataclasses.dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of ``GET /api/v1/audit`` and ``remedy audit``; newest first."""

    since: str | None = None
    until: str | None = None
    rule: str | None = None
    target: str | None = None
    outcome: str | None = None
    alert: str | None = None
    limit: int = 100
    before_id: int | None = None
    after_id: int | None = None


class Store(Protocol):
    """Durable alerts, remediations and the audit chain."""

    backend: str
    listeners: list[Callable[[list[AuditEvent]], None]]

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def ingest(self, alerts: Sequence[IncomingAlert]) -> IngestResult: ...

    async def record(
        self,
        records: Sequence[AuditRecord],
        remediation: int | None = None,
        state: str | None = None,
        reason: str | None = None,
        from_state: str | None = None,
    ) -> list[AuditEvent]: ...

    async def remediations(self, states: Sequence[str] = ()) -> list[Remediation]: ...

    async def remediation(self, remediation_id: int) -> Remediation: ...

    async def audit(self, query: AuditQuery) -> list[AuditEvent]: ...

    async def verify(self) -> VerifyResult: ...

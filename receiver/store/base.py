"""The storage contract: what SQLite implements now and PostgreSQL will, same semantics.

Writes are units of work that commit atomically: an ingest stores the alerts,
their remediations and their audit events together, so a 200 never covers
something half stored. Audit events get their id, time and hashes inside the
same transaction, which keeps the chain linear. A claim evaluates the guards
and moves the remediation in one transaction, so guards cannot race.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from receiver.audit import AuditEvent, AuditRecord, VerifyResult, redact
from receiver.guards import Decision, GlobalLimits, GuardSpec
from rules.alert import Alert

WAITING = "waiting"
PENDING_APPROVAL = "pending_approval"
QUEUED = "queued"
RUNNING = "running"
VERIFYING = "verifying"
OPEN_STATES = (WAITING, PENDING_APPROVAL, QUEUED, RUNNING, VERIFYING)
FINAL_STATES = (
    "succeeded",
    "verified",
    "ineffective",
    "failed",
    "timeout",
    "skipped",
    "dry_run",
    "interrupted",
)
STATES = OPEN_STATES + FINAL_STATES


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
    guards: GuardSpec = dataclasses.field(default_factory=GuardSpec)
    when: Sequence[Mapping[str, str]] = ()  # rendered preconditions: {query, expect}
    silence: Mapping[str, Any] | None = None  # {duration, comment}: Alertmanager, while it runs


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
    occurrence: str = ""
    guards: GuardSpec = dataclasses.field(default_factory=GuardSpec)
    due_at: str | None = None
    followup: bool = False
    held_since: str | None = None  # queued while remedy was paused: waits for resume
    link: str = ""  # the alert's generatorURL: where its source shows it
    when: Sequence[Mapping[str, str]] = ()  # preconditions asked of Prometheus before it runs
    silence: Mapping[str, Any] | None = None  # {duration, comment}: silenced while it runs

    @property
    def on_resolved_alert(self) -> bool:
        """Whether a resolved notification triggered it (so resolving cannot cancel it)."""
        return self.alert.get("status") == "resolved"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the API shows, secrets redacted as in the audit log."""
        return {
            "id": self.id,
            "rule": self.rule,
            "target": self.target,
            "state": self.state,
            "reason": self.reason,
            "alert": redact(self.alert),
            "steps": redact(list(self.steps)),
            "on_failure": redact(list(self.on_failure)),
            "dry_run": self.dry_run,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "due_at": self.due_at,
            "held_since": self.held_since,
            "guards": self.guards.to_json(),
            "generator_url": self.link or None,
            "when": list(self.when),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of a claim: ``running``, ``dry_run`` or ``skipped`` with its reason.

    ``retry`` is set when the target is locked and the rule allows waiting:
    nothing was written, the caller tries again. ``held`` is set when remedy
    is paused: the remediation stays queued until a resume releases it.
    """

    state: str
    reason: str | None = None
    detail: str | None = None
    retry: bool = False
    held: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ClaimNow:
    """How an ingest claims the remediations it makes ready, in its own transaction.

    The executor's settings: dry-run, the service-wide limits, and the
    allow-lists (``denied`` names a step outside them, if any). A claim that
    must wait (a locked target, max_concurrent reached) is left queued.
    """

    dry_run: bool
    limits: GlobalLimits
    denied: Callable[[Sequence[Mapping[str, Any]]], str | None]
    live: bool = True  # False: live work is left queued (older work waits for a slot)


@dataclasses.dataclass(frozen=True, slots=True)
class IngestResult:
    """What one ingest stored, and the remediations now ready to claim."""

    stored: int
    duplicates: int
    queued: Sequence[Remediation]
    skipped: int
    waiting: int = 0
    finished: Sequence[tuple[str, str, str | None]] = ()  # (rule, state, reason) for metrics
    claimed: Sequence[tuple[Remediation, Claim]] = ()  # claimed by the ingest itself

    @property
    def ready(self) -> int:
        """Remediations this ingest made ready: claimed already, or queued to claim."""
        return len(self.queued) + len(self.claimed)


@dataclasses.dataclass(frozen=True, slots=True)
class Due:
    """What the timers moved: remediations now ready, and failures whose on_failure is due."""

    queued: Sequence[Remediation] = ()
    followups: Sequence[Remediation] = ()
    finished: Sequence[tuple[str, str, str | None]] = ()  # (rule, state, reason) for metrics


@dataclasses.dataclass(frozen=True, slots=True)
class Pause:
    """Who paused remedy, why, and since when."""

    actor: str
    since: str
    reason: str | None

    @classmethod
    def from_json(cls, text: str) -> Pause:
        """Read the stored pause record."""
        data = json.loads(text)
        return cls(str(data.get("actor") or "unknown"), str(data.get("at")), data.get("reason"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the API shows."""
        return {"actor": self.actor, "since": self.since, "reason": self.reason}


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    """What ``GET /api/v1/status`` reports from the store."""

    paused: bool
    breakers: Mapping[str, str]
    states: Mapping[str, int]
    oldest_queued: str | None
    pause: Pause | None = None
    held: int = 0  # queued remediations a pause holds


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
    """Durable alerts, remediations, guard state and the audit chain."""

    backend: str
    listeners: list[Callable[[list[AuditEvent]], None]]

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def ingest(
        self,
        alerts: Sequence[IncomingAlert],
        message_id: str | None = None,
        claim: ClaimNow | None = None,
    ) -> IngestResult: ...

    async def claim(
        self,
        rem: Remediation,
        *,
        dry_run: bool,
        limits: GlobalLimits,
        denied: str | None = None,
        give_up_waiting: bool = False,
        precondition: Decision | None = None,
    ) -> Claim: ...

    async def finish(
        self,
        rem: Remediation,
        records: Sequence[AuditRecord],
        state: str,
        *,
        followup: bool = False,
    ) -> str: ...

    async def claim_followup(
        self, rem: Remediation, *, dry_run: bool, limits: GlobalLimits, denied: str | None = None
    ) -> Claim: ...

    async def followup_done(self, rem: Remediation, records: Sequence[AuditRecord]) -> None: ...

    async def begin_step(
        self, rem: Remediation, started: AuditRecord, *, before: str
    ) -> Decision: ...

    async def halted(self, rem: Remediation, *, before: str) -> Decision: ...

    async def paused(self) -> bool: ...

    async def control(self) -> tuple[bool, int]: ...

    async def pending(self) -> Due: ...

    async def advance(self, now: datetime) -> Due: ...

    async def next_due(self) -> str | None: ...

    async def recover(self) -> Due: ...

    async def heartbeat(self, *, take_over: bool = True) -> Due:
        """Renew this replica's lease on its work; take over what dead replicas left."""
        ...

    async def decide_approval(
        self, remediation_id: int, approve: bool, actor: str, why: str | None = None
    ) -> Remediation: ...

    async def verification(
        self, rem: Remediation, *, held: bool, observed: str, timed_out: bool
    ) -> Due: ...

    async def set_paused(
        self,
        paused: bool,
        actor: str,
        reason: str | None = None,
        breaker: str | None = None,
        *,
        pause_hold: float,
    ) -> Due: ...

    async def status(self) -> Status: ...

    async def record(self, records: Sequence[AuditRecord]) -> list[AuditEvent]: ...

    async def remediations(self, states: Sequence[str] = ()) -> list[Remediation]: ...

    async def newest(self, limit: int) -> list[Remediation]:
        """The ``limit`` newest remediation records, newest first."""
        ...

    async def outcomes(self, since: str) -> list[tuple[str, str, str | None, int]]:
        """Remediations created at or after ``since``, counted: (rule, state, reason, count)."""
        ...

    async def remediation(self, remediation_id: int) -> Remediation: ...

    async def audit(self, query: AuditQuery) -> list[AuditEvent]: ...

    async def verify(self) -> VerifyResult: ...

    async def prune(self, before: datetime) -> int:
        """Drop audit events older than ``before``, keeping the chain verifiable."""
        ...

    async def prune_history(self, before: datetime, guard_window: float) -> int:
        """Drop resolved occurrences older than ``before``, and executions no guard needs."""
        ...

"""Each write of the remediation lifecycle, once, for both stores.

A flow is one write transaction's work: ingest, claim, finish, a timer, an
approval, a pause. It asks the pipeline's pure policy (:mod:`receiver.guards`,
:mod:`receiver.lifecycle`, :mod:`receiver.dedup`) what to do and writes the
answer through :class:`Rows`, the store adapter's persistence: rows in, rows
out, no decisions. PostgreSQL's rows await asyncpg; SQLite's run inside its
writer thread and never suspend, so :func:`drive` runs a flow there to its end
without an event loop.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from receiver import dedup, lifecycle, transition, verify
from receiver.audit import AuditEvent, AuditRecord
from receiver.guards import FOLLOWUP_GUARDS, Decision, GlobalLimits, decide, halt, waits
from receiver.store.base import (
    PENDING_APPROVAL,
    QUEUED,
    RUNNING,
    VERIFYING,
    Claim,
    ClaimNow,
    Due,
    IncomingAlert,
    IngestResult,
    NotFound,
    Plan,
    Remediation,
    StateConflict,
)
from rules.alert import Alert

T = TypeVar("T")
Finished = list[tuple[str, str, str | None]]  # (rule, state, reason) of final moves, for metrics

FOLLOWUP_PENDING = 1
FOLLOWUP_RUNNING = 2
FOLLOWUP_HELD = 3  # due while remedy was paused: waits for resume
DRY_RUN_BREAKER_PREFIX = "dry-run/"  # dry-run opens breakers of its own, never the live ones


class Execution(NamedTuple):
    """A run the guards count (rate limit, cooldown, blast radius): what ran where, when taken."""

    rule: str
    target: str
    scope: str | None
    dry_run: bool


class Rows(Protocol):
    """What a store's write transaction persists and queries for the flows."""

    now: str  # the transaction's time, as stored
    moment: datetime

    async def answer(self, decision: Callable[[Any], T], *, dry_run: bool = False) -> T:
        """Call a pure policy function against this transaction's facts."""
        ...

    async def audit(self, records: Sequence[AuditRecord]) -> list[AuditEvent]:
        """Append chained audit events at the transaction's time; the events."""
        ...

    async def new_delivery(self, message_id: str) -> bool:
        """Record an SNS message id; False when it was delivered before."""
        ...

    async def insert_alert(
        self,
        alert: Alert,
        occurrence: str,
        remediations: Callable[[], Sequence[tuple[Remediation, str]]],
    ) -> tuple[int | None, list[int | None]]:
        """Store a new alert and its remediations, each with its plan's JSON, as one write
        where the store can.

        ``remediations`` makes them, at most once: a store that can tell the
        alert is a duplicate first need not ask. Answers the alert's id and
        each remediation's, in order (None for one whose (occurrence, rule) has
        one already); ``(None, [])`` when this very notification is stored
        already, and then nothing is written.
        """
        ...

    async def waiting_on(self, occurrence: str) -> list[Remediation]:
        """What still waits on an occurrence: waiting, pending approval, queued, verifying."""
        ...

    async def due(self, at: str) -> list[Remediation]:
        """Remediations whose timer is due at ``at``, earliest first."""
        ...

    async def held(self) -> list[Remediation]:
        """Queued remediations a pause holds."""
        ...

    async def with_followup(self, flag: int) -> list[Remediation]:
        """Remediations whose on_failure is in the given state."""
        ...

    async def for_update(self, rem_id: int) -> Remediation | None:
        """One remediation, locked until the transaction ends."""
        ...

    async def claim_row(self, rem_id: int) -> tuple[str, str | None] | None:
        """A remediation's state and held_since, locked until the transaction ends."""
        ...

    async def followup_state(self, rem_id: int) -> int | None:
        """A remediation's on_failure flag, locked until the transaction ends."""
        ...

    async def move(
        self,
        rem_id: int,
        state: str,
        reason: str | None = None,
        *,
        due_at: str | None = None,
        followup: bool = False,
        expect: str | None = None,
        held_since: str | None = None,
    ) -> None:
        """Write a state; :class:`StateConflict` when it is not in ``expect``."""
        ...

    async def set_followup(
        self, rem_id: int, flag: int, *, held_since: str | None = None
    ) -> None: ...

    async def end_followup(self, rem_id: int) -> bool:
        """Clear a running on_failure; False when it no longer runs here."""
        ...

    async def owned(self, rem_id: int) -> bool:
        """Whether this process (replica) still owns a remediation it runs."""
        ...

    async def record_execution(
        self, rem_id: int, rule: str, target: str, scope: str | None, dry_run: bool
    ) -> None: ...

    async def take(self, rem_id: int, state: str, run: Execution) -> None:
        """Move a queued remediation to ``state`` and record ``run``, the execution the
        guards count: :meth:`move` (expecting ``queued``), then :meth:`record_execution`,
        as one write where the store can. :class:`StateConflict` when it is not queued."""
        ...

    async def lock(self, target: str, rem_id: int) -> None: ...

    async def unlock(self, rem_id: int) -> None: ...

    async def open_breaker(self, name: str, reason: str) -> None: ...

    async def close_breaker(self, name: str) -> None:
        """Close it and remember when, so its window starts again from there."""
        ...

    async def open_breakers(self, names: Sequence[str] | None = None) -> list[str]:
        """Which of ``names`` (all, without) are open, by name."""
        ...

    async def pause(self, value: str) -> None:
        """Record a pause, unless one is in force already."""
        ...

    async def unpause(self) -> None: ...


class Writes:
    """The store contract's lifecycle writes: each one flow, in one transaction of ``_write``.

    A store adapter inherits them and supplies ``_write`` (and its :class:`Rows`).
    """

    async def _write(
        self, job: Callable[[Any], Coroutine[Any, Any, T]], *, moment: datetime | None = None
    ) -> T:
        """Run ``job`` on the rows of the next write transaction, at ``moment`` or now."""
        raise NotImplementedError

    async def ingest(
        self,
        alerts: Sequence[IncomingAlert],
        message_id: str | None = None,
        claim: ClaimNow | None = None,
    ) -> IngestResult:
        """Store alerts, their remediations and audit events in one transaction.

        A resolved alert cancels what still waits for its occurrence and
        verifies what waited for it to resolve. With ``message_id`` (SNS), a
        delivery seen before stores nothing and records its alerts as duplicates.
        With ``claim``, what becomes ready is claimed in the same transaction.
        """
        return await self._write(lambda tx: ingest(tx, alerts, message_id, claim))

    async def claim(
        self,
        rem: Remediation,
        *,
        dry_run: bool,
        limits: GlobalLimits,
        denied: str | None = None,
        give_up_waiting: bool = False,
        precondition: Decision | None = None,
    ) -> Claim:
        """Apply the guards and, when they allow it, take the remediation: one transaction.

        ``precondition`` is what Prometheus said of the rule's ``when:`` just before.
        """
        return await self._write(
            lambda tx: claim(
                tx,
                rem,
                dry_run=dry_run,
                limits=limits,
                denied=denied,
                give_up_waiting=give_up_waiting,
                precondition=precondition,
            )
        )

    async def finish(
        self,
        rem: Remediation,
        records: Sequence[AuditRecord],
        state: str,
        *,
        followup: bool = False,
    ) -> str:
        """Record the last step's outcome and the remediation's state; release its lock.

        A success with ``verify`` becomes ``verifying`` (or ``verified`` at once
        when the alert already resolved). Returns the state written.
        """
        return await self._write(lambda tx: finish(tx, rem, records, state, followup=followup))

    async def claim_followup(
        self,
        rem: Remediation,
        *,
        dry_run: bool,
        limits: GlobalLimits,
        denied: str | None = None,
    ) -> Claim:
        """Take a due on_failure run past pause, allow-lists, the breaker and the target lock.

        Taken, it holds the target's lock and is marked running, so a crash
        during it is reported as interrupted, never run again.
        """
        return await self._write(
            lambda tx: claim_followup(tx, rem, dry_run=dry_run, limits=limits, denied=denied)
        )

    async def followup_done(self, rem: Remediation, records: Sequence[AuditRecord]) -> None:
        """on_failure has run for ``rem``: record its last step, clear the flag, free the lock."""
        await self._write(lambda tx: followup_done(tx, rem, records))

    async def begin_step(self, rem: Remediation, started: AuditRecord, *, before: str) -> Decision:
        """Record a further step's ``started``, unless a resolve or a pause now stops it.

        One transaction, so a resolve or pause committed first is always seen.
        """
        return await self._write(lambda tx: begin_step(tx, rem, started, before=before))

    async def record(self, records: Sequence[AuditRecord]) -> list[AuditEvent]:
        """Append audit events that change no remediation (reloads, on_failure steps)."""

        async def job(rows: Rows) -> list[AuditEvent]:
            return await rows.audit(records)

        return await self._write(job)

    async def advance(self, now: datetime) -> Due:
        """Move every remediation whose timer is due at ``now``."""
        return await self._write(advance, moment=now)

    async def verification(
        self, rem: Remediation, *, held: bool, observed: str, timed_out: bool
    ) -> Due:
        """What the verifier found for a ``verify.query``: verified, ineffective, or not yet."""
        return await self._write(
            lambda tx: verification(tx, rem, held=held, observed=observed, timed_out=timed_out)
        )

    async def decide_approval(
        self, remediation_id: int, approve: bool, actor: str, why: str | None = None
    ) -> Remediation:
        """An operator's decision on a ``pending_approval`` remediation (a rejection's ``why``)."""
        return await self._write(
            lambda tx: decide_approval(tx, remediation_id, approve, actor, why)
        )

    async def set_paused(
        self,
        paused: bool,
        actor: str,
        reason: str | None = None,
        breaker: str | None = None,
        *,
        pause_hold: float,
    ) -> Due:
        """Pause (nothing starts after this commits) or resume; what resuming releases."""
        return await self._write(
            lambda tx: set_paused(tx, paused, actor, reason, breaker, pause_hold=pause_hold)
        )


def drive(flow: Coroutine[Any, Any, T]) -> T:
    """Run a flow whose awaits all complete at once (SQLite's rows) to its end, here."""
    try:
        flow.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    flow.close()
    raise RuntimeError("a flow suspended on rows that never wait")


def watched(rem: Remediation) -> str | None:
    """The occurrence whose resolve stops ``rem``; none for work a resolve itself started."""
    return None if rem.on_resolved_alert else rem.occurrence


def with_state(rem: Remediation, state: str) -> Remediation:
    return dataclasses.replace(rem, state=state)


async def apply(
    rows: Rows,
    rem: Remediation,
    move: transition.Move,
    *,
    finished: Finished,
    expect: str | None = None,
) -> list[AuditRecord]:
    """Write a lifecycle move; its audit records (for the caller to append)."""
    await rows.move(
        rem.id,
        move.state,
        move.reason,
        due_at=move.due_at,
        followup=move.followup,
        expect=expect,
        held_since=move.held_since,
    )
    if move.final:
        finished.append((rem.rule, move.state, move.reason))
    return move.records(rem)


async def ingest(
    rows: Rows,
    alerts: Sequence[IncomingAlert],
    message_id: str | None,
    claim_now: ClaimNow | None = None,
) -> IngestResult:
    """Store alerts, their remediations and audit events (see ``Store.ingest``).

    With ``claim_now``, a remediation that is ready at once goes through the
    guards here, as the executor's claim would, saving a transaction and the
    wait for one: what may run is ``running`` (or ``dry_run``) when this commits.
    """
    if message_id is not None and not await rows.new_delivery(message_id):
        error = f"message {message_id} was delivered before"
        await rows.audit(
            [
                AuditRecord("skipped", i.alert.summary(), reason="duplicate", error=error)
                for i in alerts
            ]
        )
        return IngestResult(0, len(alerts), [], 0)
    records: list[AuditRecord] = []
    queued: list[Remediation] = []
    claimed: list[tuple[Remediation, Claim]] = []
    stored = duplicates = skipped = waiting = 0
    finished: Finished = []
    resolved: set[str] = set()  # occurrences a resolve in this ingest touched
    for incoming in alerts:
        alert = await rows.answer(functools.partial(dedup.episode, incoming.alert))
        summary = alert.summary()
        occurrence = "|".join(alert.occurrence)
        stale = await rows.answer(functools.partial(dedup.stale, alert))
        planned = _Planned(rows, () if stale else incoming.plans, alert, summary, occurrence)
        alert_id, rem_ids = await rows.insert_alert(alert, occurrence, planned)
        if alert_id is None:
            duplicates += 1
            records.append(AuditRecord("skipped", summary, reason="duplicate"))
            continue
        stored += 1
        records.append(AuditRecord("received", summary))
        if alert.status == "resolved":
            # The resolve's own remediations, just stored, are not its to cancel.
            resolved.add(occurrence)
            records += await on_resolved(rows, occurrence, finished)
        if stale:
            records.append(
                AuditRecord("skipped", summary, reason="cancelled", error=dedup.STALE_ALARM)
            )
        for (unsaved, move, _), rem_id in zip(planned.built, rem_ids, strict=True):
            if rem_id is None:
                continue
            rem = dataclasses.replace(unsaved, id=rem_id)
            records.append(
                transition.about("matched", rem, params=[_step_view(s) for s in rem.steps])
            )
            records += move.records(rem)
            if move.ready:
                queued.append(rem)
            elif move.state == "skipped":
                skipped += 1
            else:
                waiting += 1
    await rows.audit(records)
    if claim_now is not None:  # after every alert: a resolve later in the batch cancels first
        queued, claimed = await _claim_ready(rows, queued, claim_now, resolved)
    return IngestResult(stored, duplicates, queued, skipped, waiting, finished, claimed)


class _Planned:
    """An alert's remediations, made when the store asks for them to store with the
    alert: a duplicate delivery, stored already, may need none made.

    Each is the remediation as stored (its id still 0), its first move, and its
    plan's JSON; ``summary`` is the alert's, shared with its events (encoded
    once for all of them).
    """

    def __init__(
        self,
        rows: Rows,
        plans: Sequence[Plan],
        alert: Alert,
        summary: dict[str, object],
        occurrence: str,
    ) -> None:
        self._rows = rows
        self._plans = plans
        self._alert = alert
        self._summary = summary
        self._occurrence = occurrence
        self.built: list[tuple[Remediation, transition.Move, str]] = []

    def __call__(self) -> list[tuple[Remediation, str]]:
        """The remediations to store, each with its plan's JSON, in the plans' order."""
        self.built = [self._made(plan) for plan in self._plans]
        return [(rem, body) for rem, _, body in self.built]

    def _made(self, plan: Plan) -> tuple[Remediation, transition.Move, str]:
        alert, rows = self._alert, self._rows
        move = lifecycle.planned(plan, alert, rows.moment)
        rem = Remediation(
            0,
            plan.rule,
            plan.target,
            move.state,
            move.reason,
            self._summary,
            list(plan.steps),
            list(plan.on_failure),
            plan.dry_run,
            rows.now,
            rows.now,
            self._occurrence,
            plan.guards,
            move.due_at,
            link=alert.generator_url,
            when=plan.when,
            silence=plan.silence,
        )
        body = {
            "alert": self._summary,
            "steps": rem.steps,
            "on_failure": rem.on_failure,
            "guards": plan.guards.to_json(),
        }
        if alert.generator_url:
            body["link"] = alert.generator_url
        if plan.when:
            body["when"] = list(plan.when)
        if plan.silence:
            body["silence"] = dict(plan.silence)
        return rem, move, json.dumps(body)


async def _claim_ready(
    rows: Rows, ready: Sequence[Remediation], claim_now: ClaimNow, resolved: set[str]
) -> tuple[list[Remediation], list[tuple[Remediation, Claim]]]:
    """Claim an ingest's ready remediations; those that wait, or may not be claimed here.

    Each was inserted ``queued`` and never held by this transaction, which no
    one else sees yet: only a resolve of its occurrence in the same ingest can
    have moved it since, and only then is its row read again.
    """
    waiting: list[Remediation] = []
    claimed: list[tuple[Remediation, Claim]] = []
    for rem in ready:
        dry = claim_now.dry_run or rem.dry_run
        if not (dry or claim_now.live) or rem.when:
            # Older work waits here: this waits behind it. Preconditions are asked of
            # Prometheus by the executor, outside any transaction, before its claim.
            waiting.append(rem)
            continue
        try:
            taken = await claim(
                rows,
                rem,
                dry_run=dry,
                limits=claim_now.limits,
                denied=claim_now.denied(rem.steps),
                give_up_waiting=False,
                fresh=rem.occurrence not in resolved,
            )
        except StateConflict:
            continue  # a resolve in the same batch cancelled it
        if taken.retry:
            waiting.append(rem)  # it waits: the executor claims it again
        else:
            claimed.append((rem, taken))
    return waiting, claimed


async def on_resolved(rows: Rows, occurrence: str, finished: Finished) -> list[AuditRecord]:
    """Cancel what still waits for a now-resolved occurrence; verify what waited on it."""
    records: list[AuditRecord] = []
    for rem in await rows.waiting_on(occurrence):
        if (move := lifecycle.resolved(rem)) is not None:
            records += await apply(rows, rem, move, finished=finished)
    return records


async def claim(
    rows: Rows,
    rem: Remediation,
    *,
    dry_run: bool,
    limits: GlobalLimits,
    denied: str | None,
    give_up_waiting: bool,
    precondition: Decision | None = None,
    fresh: bool = False,
) -> Claim:
    """Apply the guards and, when they allow it, take the remediation.

    ``fresh``: this transaction inserted it queued and nothing has moved it
    since, so its row need not be read again.
    """
    held = False
    if not fresh:
        row = await rows.claim_row(rem.id)
        if row is None or row[0] != QUEUED:
            raise StateConflict(f"remediation {rem.id} is no longer queued")
        held = row[1] is not None
    return await _decide(
        rows,
        rem,
        held=held,
        dry_run=dry_run,
        limits=limits,
        denied=denied,
        give_up_waiting=give_up_waiting,
        precondition=precondition,
    )


async def _decide(
    rows: Rows,
    rem: Remediation,
    *,
    held: bool,
    dry_run: bool,
    limits: GlobalLimits,
    denied: str | None,
    give_up_waiting: bool,
    precondition: Decision | None = None,
) -> Claim:
    """The guards' decision on a queued remediation, written: taken, skipped, held or waiting."""
    decision = await rows.answer(
        lambda facts: decide(
            facts,
            rule=rem.rule,
            target=rem.target or "",
            occurrence=watched(rem),
            spec=rem.guards,
            limits=limits,
            now=rows.moment,
            dry_run=dry_run,
            denied=denied,
            precondition=precondition,
        ),
        dry_run=dry_run,
    )
    if waits(decision, rem.guards, give_up=give_up_waiting):
        return Claim(QUEUED, decision.reason, decision.detail, retry=True)
    if decision.reason == "paused":
        # Held, not dropped: it stays queued and goes through every guard at resume.
        if not held:
            move = lifecycle.held(rows.now)
            await rows.audit(await apply(rows, rem, move, finished=[], expect=QUEUED))
        return Claim(QUEUED, "paused", decision.detail, held=True)
    # The state moves first: a remediation no longer queued (StateConflict) leaves no
    # breaker, execution, lock or event behind in the transaction that goes on.
    if not decision.allowed:
        await rows.move(rem.id, "skipped", decision.reason, expect=QUEUED)
        await _open_breaker(rows, decision, dry_run)
        error = decision.detail
        await rows.audit([transition.about("skipped", rem, reason=decision.reason, error=error)])
        return Claim("skipped", decision.reason, decision.detail)
    scope = rem.guards.blast_radius[0] if rem.guards.blast_radius else None
    run = Execution(rem.rule, rem.target or "", scope, dry_run)
    await rows.take(rem.id, "dry_run" if dry_run else RUNNING, run)
    await _start(rows, rem, rem.steps, dry_run=dry_run)
    return Claim("dry_run" if dry_run else RUNNING)


async def finish(
    rows: Rows, rem: Remediation, records: Sequence[AuditRecord], state: str, *, followup: bool
) -> str:
    """Record the last step's outcome and the remediation's state; release its lock."""
    resolved = await rows.answer(lambda facts: facts.resolved(rem.occurrence))
    move = lifecycle.finished(rem, state, resolved=resolved, now=rows.moment)
    move = dataclasses.replace(move, followup=followup)
    more = await apply(rows, rem, move, finished=[], expect=RUNNING)
    await rows.unlock(rem.id)
    await rows.audit([*records, *more])
    return move.state


async def claim_followup(
    rows: Rows, rem: Remediation, *, dry_run: bool, limits: GlobalLimits, denied: str | None
) -> Claim:
    """Take a due on_failure run past the guards an on_failure has (:data:`FOLLOWUP_GUARDS`)."""
    if await rows.followup_state(rem.id) != FOLLOWUP_PENDING:
        raise StateConflict(f"remediation {rem.id} has no on_failure due")
    rule = f"{rem.rule}/on_failure"  # counted apart from the remediation's own runs
    decision = await rows.answer(
        lambda facts: decide(
            facts,
            rule=rule,
            target=rem.target or "",
            occurrence=watched(rem),
            spec=FOLLOWUP_GUARDS,
            limits=limits,
            now=rows.moment,
            dry_run=dry_run,
            denied=denied,
            before="it could run",
        ),
        dry_run=dry_run,
    )
    if waits(decision, FOLLOWUP_GUARDS, give_up=False, followup=True):
        return Claim(QUEUED, decision.reason, decision.detail, retry=True)
    if decision.reason == "paused":  # held, like the remediations a pause holds
        await rows.set_followup(rem.id, FOLLOWUP_HELD, held_since=rows.now)
        await rows.audit([transition.about("queued", rem, reason=lifecycle.ON_FAILURE_HELD)])
        return Claim(QUEUED, "paused", decision.detail, held=True)
    if not decision.allowed:
        await _open_breaker(rows, decision, dry_run)
        await rows.set_followup(rem.id, 0)
        error = f"on_failure not run: {decision.detail}"
        await rows.audit([transition.about("skipped", rem, reason=decision.reason, error=error)])
        return Claim("skipped", decision.reason, decision.detail)
    await rows.record_execution(rem.id, rule, rem.target or "", None, dry_run)
    await _start(rows, rem, rem.on_failure, dry_run=dry_run, reason="on_failure")
    await rows.set_followup(rem.id, 0 if dry_run else FOLLOWUP_RUNNING)
    return Claim("dry_run" if dry_run else RUNNING)


async def _open_breaker(rows: Rows, decision: Decision, dry_run: bool) -> None:
    """Open the breaker a decision asks for (dry-run keeps breakers of its own)."""
    if decision.open_breaker is not None:
        prefix = DRY_RUN_BREAKER_PREFIX if dry_run else ""
        await rows.open_breaker(prefix + decision.open_breaker, decision.detail or "")


async def _start(
    rows: Rows,
    rem: Remediation,
    steps: Sequence[Mapping[str, Any]],
    *,
    dry_run: bool,
    reason: str | None = None,
) -> None:
    """After its execution is recorded: live, take the target's lock and start.

    In dry-run every step is recorded as what would have run.
    """
    target = rem.target or ""
    if dry_run:
        await rows.audit(
            [
                transition.about(
                    "dry_run", rem, action=s["action"], params=s["params"], reason=reason
                )
                for s in steps
            ]
        )
        return
    await rows.lock(target, rem.id)
    first = steps[0]
    await rows.audit(
        [
            transition.about(
                "started", rem, action=first["action"], params=first["params"], reason=reason
            )
        ]
    )


async def followup_done(rows: Rows, rem: Remediation, records: Sequence[AuditRecord]) -> None:
    """on_failure has run for ``rem``: record its last step, clear the flag, free the lock."""
    if not await rows.end_followup(rem.id):  # reported interrupted meanwhile (a lapsed lease)
        raise StateConflict(f"remediation {rem.id}'s on_failure no longer runs here")
    await rows.unlock(rem.id)
    await rows.audit(records)


async def begin_step(
    rows: Rows, rem: Remediation, started: AuditRecord, *, before: str
) -> Decision:
    """Record a further step's ``started``, unless a resolve or a pause now stops it."""
    if not await rows.owned(rem.id):  # its lease lapsed and another replica reported it
        return Decision("interrupted", f"this replica's lease lapsed before {before}")
    stop = await rows.answer(lambda facts: halt(facts, occurrence=watched(rem), before=before))
    if stop.allowed:
        await rows.audit([started])
    return stop


async def advance(rows: Rows) -> Due:
    """Move every remediation whose timer is due at the transaction's time."""
    queued: list[Remediation] = []
    followups: list[Remediation] = []
    finished: Finished = []
    records: list[AuditRecord] = []
    for rem in await rows.due(rows.now):
        move = lifecycle.timer(rem, rows.moment)
        records += await apply(rows, rem, move, finished=finished)
        if move.ready:
            queued.append(with_state(rem, move.state))
        if move.followup:
            followups.append(with_state(rem, move.state))
    await rows.audit(records)
    return Due(queued, followups, finished)


async def verification(
    rows: Rows, rem: Remediation, *, held: bool, observed: str, timed_out: bool
) -> Due:
    """Verified when the query held (and, with ``resolved_within``, the alert resolved);
    ineffective when the time ran out first; else it goes on verifying."""
    needs_resolve = held and rem.guards.verify_within is not None
    if needs_resolve and not await rows.answer(lambda facts: facts.resolved(rem.occurrence)):
        held = False
        observed += "; the alert has not resolved"
    if not held and not timed_out:
        return Due()
    finished: Finished = []
    move = verify.by_query(rem, held=held, observed=observed)
    records = await apply(rows, rem, move, finished=finished, expect=VERIFYING)
    await rows.audit(records)
    return Due(followups=[with_state(rem, move.state)] if move.followup else [], finished=finished)


async def interrupt(
    rows: Rows, running: Sequence[Remediation], followups: Sequence[Remediation], why: str
) -> Due:
    """Report started work whose process is gone: never run again; on_failure is due.

    ``followups`` are on_failure runs that had started: reported, not run again.
    """
    records: list[AuditRecord] = []
    finished: Finished = []
    due: list[Remediation] = []
    for rem in running:
        move = lifecycle.interrupted(rem, why)
        records += await apply(rows, rem, move, finished=finished)
        await rows.unlock(rem.id)
        if move.followup:
            due.append(with_state(rem, move.state))
    for rem in followups:
        await rows.set_followup(rem.id, 0)
        await rows.unlock(rem.id)
        records.append(transition.about("interrupted", rem, reason="on_failure", error=why))
    await rows.audit(records)
    return Due(followups=due, finished=finished)


async def decide_approval(
    rows: Rows, remediation_id: int, approve: bool, actor: str, why: str | None
) -> Remediation:
    """An operator's decision on a ``pending_approval`` remediation; ``why`` they rejected it."""
    rem = await rows.for_update(remediation_id)
    if rem is None:
        raise NotFound(f"remediation {remediation_id} does not exist")
    if rem.state != PENDING_APPROVAL:
        raise StateConflict(f"remediation {remediation_id} is {rem.state}, not pending")
    if approve:
        paused = await rows.answer(lambda facts: facts.paused())
        move = lifecycle.approved(paused=paused, now=rows.now, actor=actor)
    else:
        move = lifecycle.rejected(actor, why)
    await rows.audit(await apply(rows, rem, move, finished=[], expect=PENDING_APPROVAL))
    return dataclasses.replace(
        rem, state=move.state, reason=move.reason, due_at=None, held_since=move.held_since
    )


async def set_paused(
    rows: Rows,
    paused: bool,
    actor: str,
    reason: str | None,
    breaker: str | None,
    *,
    pause_hold: float,
) -> Due:
    """Pause (nothing starts after this commits) or resume; what resuming releases.

    ``breaker`` closes that breaker only (live and dry-run) and leaves a pause in place.
    """
    if breaker is not None:
        found = await rows.open_breakers([breaker, DRY_RUN_BREAKER_PREFIX + breaker])
        if not found:
            raise NotFound(f"breaker {breaker} is not open")
        for name in found:
            await rows.close_breaker(name)
        await rows.audit(
            [AuditRecord("resumed", actor=actor, reason=f"closed breakers: {breaker}")]
        )
        return Due()
    if paused:
        # A pause that is already in force keeps who started it, why and since when.
        await rows.pause(json.dumps({"actor": actor, "at": rows.now, "reason": reason}))
        await rows.audit([AuditRecord("paused", actor=actor, reason=reason)])
        return Due()
    closed = await rows.open_breakers()
    await rows.unpause()
    for name in closed:
        await rows.close_breaker(name)
    note = f"closed breakers: {', '.join(closed)}" if closed else reason
    await rows.audit([AuditRecord("resumed", actor=actor, reason=note)])
    return await _release_held(rows, pause_hold)


async def _release_held(rows: Rows, pause_hold: float) -> Due:
    """Hand back the work a pause held, or drop what it held too long."""
    released: list[Remediation] = []
    finished: Finished = []
    for rem in await rows.held():
        move = lifecycle.released(rem, rows.moment, pause_hold)
        await rows.audit(await apply(rows, rem, move, finished=finished, expect=QUEUED))
        if move.ready:
            released.append(dataclasses.replace(rem, held_since=None))
    followups: list[Remediation] = []
    for rem in await rows.with_followup(FOLLOWUP_HELD):
        runs, (event, reason, error) = lifecycle.followup_released(rem, rows.moment, pause_hold)
        await rows.set_followup(rem.id, FOLLOWUP_PENDING if runs else 0)
        await rows.audit([transition.about(event, rem, reason=reason, error=error)])
        if runs:
            followups.append(dataclasses.replace(rem, held_since=None))
    return Due(queued=released, followups=followups, finished=finished)


def _step_view(step: Any) -> Any:
    return {"action": step.get("action"), "params": step.get("params")}

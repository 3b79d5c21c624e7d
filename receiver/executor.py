"""The workers: take queued work, claim it past the guards, run it, record the outcome.

A claim evaluates every guard and records ``started`` in one transaction
before an action runs; the outcome is recorded after. A crash in between
leaves a remediation that recovery marks ``interrupted`` instead of running
it a second time. The queue (:mod:`receiver.queue`) orders the work; the
steps run in :mod:`receiver.execute`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any

import structlog

from receiver.allowlist import AllowLists, denial
from receiver.audit import AuditRecord
from receiver.execute import Clients, RetryPolicy, StepRunner, durably
from receiver.guards import BUSY, Decision, GlobalLimits
from receiver.metrics import Metrics
from receiver.preconditions import Preconditions
from receiver.queue import CLAIMED, ON_FAILURE, PREVIEW, RUN, Work, WorkQueue
from receiver.silences import Silences
from receiver.store.base import (
    FINAL_STATES,
    RUNNING,
    Claim,
    ClaimNow,
    Due,
    Remediation,
    StateConflict,
    Store,
)
from remediations import Registry

log = structlog.get_logger("remedy.executor")

LOCK_POLL = 0.25
SLOT_POLL = 1.0  # a slot another replica frees is seen this late at the most
ASK_AGAIN = 5.0  # a waiting claim asks Prometheus again (when:) after this long at the most


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """How the executor runs, all from the config (whose defaults are the only ones)."""

    dry_run: bool
    workers: int
    max_queue: int
    limits: GlobalLimits
    allow: AllowLists
    retry: RetryPolicy
    # Dry-run asks the actions that can tell what they would do (redis.delete_keys
    # counts its keys); off where time is simulated (replay), so today's servers
    # never answer for then.
    previews: bool = True


class Executor:
    """Workers that take remediations from the queue fed by ingest, timers and recovery."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        clients: Clients,
        metrics: Metrics,
        settings: ExecutorSettings,
        *,
        silences: Silences | None = None,
    ) -> None:
        self.store = store
        self.silences = silences
        self.registry = registry
        self.metrics = metrics
        self.settings = settings
        self.queue = WorkQueue(metrics, settings.max_queue)
        self.steps = StepRunner(
            store, registry, clients, metrics, allow=settings.allow, retry=settings.retry
        )
        self.preconditions = Preconditions(clients.prometheus)
        self._tasks: list[asyncio.Task[None]] = []
        self._lock_waits: dict[int, float] = {}  # remediation -> since when it waits for a lock
        self._asked: dict[int, tuple[float, Decision | None]] = {}  # when: answers, by rem
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Recover what a previous process left, then start the workers."""
        due = await self.store.recover()
        for rem in due.finished:
            log.warning("remediation.interrupted", rule=rem[0])
        self.handle(due)
        self._tasks = [
            asyncio.create_task(self._work(), name=f"remedy-worker-{n}")
            for n in range(self.settings.workers)
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking work; let running remediations finish for up to ``grace`` seconds."""
        self._stopping = True
        self.queue.close()
        # Claimed by their ingest, so started as far as the audit log says: they run now.
        started = [
            asyncio.create_task(self._safely(Work(CLAIMED, rem)), name=f"remedy-claimed-{rem.id}")
            for rem in self.queue.drain(CLAIMED)
        ]
        for task in self._tasks:
            if task not in self._running:
                task.cancel()
        if busy := {*self._running, *started}:
            await asyncio.wait(busy, timeout=grace)
        for task in started:
            task.cancel()
        await asyncio.gather(*started, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    @property
    def queue_depth(self) -> int:
        """Work queued and not yet taken by a worker."""
        return self.queue.depth

    @property
    def overloaded(self) -> bool:
        """Whether new work would exceed the queue bound (ingest then answers 503)."""
        return self.queue.overloaded

    def submit(self, remediations: Iterable[Remediation]) -> None:
        """Queue remediations that are ready to claim."""
        self.queue.put(RUN, remediations)

    def claim_now(self) -> ClaimNow:
        """How an ingest claims what it makes ready, as :meth:`_execute` would."""
        return ClaimNow(
            dry_run=self.settings.dry_run,
            limits=self.settings.limits,
            denied=self._denied,
            # New alerts never overtake work already waiting here: then they queue too.
            live=not (self.queue.depth or self.queue.slot_waiters),
        )

    def _denied(self, steps: Sequence[Mapping[str, Any]]) -> str | None:
        """The allow-lists' answer, run inside an ingest: any failure is a denial, not a 503."""
        try:
            return denial(self.registry, self.settings.allow, steps)
        except Exception as exc:  # an action's parse or subject that breaks: deny, keep the alert
            return f"the allow-lists could not be checked ({type(exc).__name__})"

    def claimed(self, claims: Iterable[tuple[Remediation, Claim]]) -> None:
        """Take what an ingest claimed: count its decision; queue what runs for a worker."""
        for rem, claim in claims:
            if self._decided(rem, claim):
                self.queue.put(CLAIMED, [rem])
            elif self._previewed(rem, claim):
                self.queue.put(PREVIEW, [rem])  # a worker asks the backend, not the webhook

    def handle(self, due: Due) -> None:
        """Take what the timers (or recovery) moved: ready work and due on_failure runs."""
        for rule, state, reason in due.finished:
            self._count_final(rule, state, reason)
        self.sweep(due)

    def sweep(self, due: Due) -> None:
        """Take stored work that is not in flight here (a claim that failed, a lost wake-up)."""
        self.queue.put(RUN, due.queued)
        self.queue.put(ON_FAILURE, due.followups)

    async def join(self) -> None:
        """Wait until every queued piece of work is done (lock waits included)."""
        await self.queue.join()

    async def _work(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self._stopping:
            work = await self.queue.take()
            self._running.add(me)
            try:
                await self._safely(work)
            finally:
                self._running.discard(me)
                self.queue.done(work)

    async def _safely(self, work: Work) -> None:
        """Do one piece of work; what goes wrong is logged, never raised."""
        try:
            if work.kind == RUN:
                await self._execute(work)
            elif work.kind == CLAIMED:
                await self._run(work.rem)
            elif work.kind == PREVIEW:
                await self._preview(work.rem)
            else:
                await self._on_failure(work)
        except StateConflict:
            log.info("remediation.already_moved", remediation=work.rem.id)
        except Exception as exc:
            # Logged without the traceback: rendered params may be in its messages.
            log.error("remediation.crashed", remediation=work.rem.id, error_type=type(exc).__name__)

    # -- one remediation ----------------------------------------------------

    async def _execute(self, work: Work) -> None:
        rem = work.rem
        dry_run = self.settings.dry_run or rem.dry_run
        denied = denial(self.registry, self.settings.allow, rem.steps)
        waiting_since = self._lock_waits.get(rem.id)
        give_up = waiting_since is not None and (
            time.monotonic() - waiting_since >= (rem.guards.lock_wait or 0.0)
        )
        precondition = await self._precondition(rem)
        try:
            claim = await durably(
                lambda: self.store.claim(
                    rem,
                    dry_run=dry_run,
                    limits=self.settings.limits,
                    denied=denied,
                    give_up_waiting=give_up,
                    precondition=precondition,
                )
            )
        except StateConflict:
            self._lock_waits.pop(rem.id, None)  # moved meanwhile (resolved): it waits no more
            self._asked.pop(rem.id, None)
            raise
        if not claim.retry:
            self._asked.pop(rem.id, None)
        if claim.retry and claim.reason == BUSY:
            self.queue.wait_for_slot(work, SLOT_POLL)  # off the worker, in arrival order
            return
        if claim.retry:
            # The target is locked: wait for it off the worker, so waiting ties up nothing.
            self._lock_waits.setdefault(rem.id, time.monotonic())
            self.queue.step_aside(work, LOCK_POLL)
            return
        self._lock_waits.pop(rem.id, None)
        if self._decided(rem, claim):
            await self._run(rem)
        elif self._previewed(rem, claim):
            await self._preview(rem)

    def _previewed(self, rem: Remediation, claim: Claim) -> bool:
        """Whether a claim's dry run gets previews of what its steps would do."""
        return claim.state == "dry_run" and self.settings.previews and self.steps.previews(rem)

    async def _preview(self, rem: Remediation) -> None:
        """Record what a dry-run remediation's steps would have done (after its claim)."""
        records = await self.steps.preview(rem)
        if records:
            await durably(functools.partial(self.store.record, records))

    async def _precondition(self, rem: Remediation) -> Decision | None:
        """The rule's ``when:`` asked of the present, just before the claim (never inside a
        transaction); a claim that must wait and try again reuses the answer for a while,
        so that lock and slot waits do not hold workers on Prometheus."""
        if not rem.when:
            return None
        asked = self._asked.get(rem.id)
        if asked is not None and time.monotonic() - asked[0] < ASK_AGAIN:
            return asked[1]
        decision = await self.preconditions.check(rem)
        self._asked[rem.id] = (time.monotonic(), decision)
        return decision

    async def _audit(self, making: Awaitable[AuditRecord | None] | None) -> None:
        """Record what a silence call reports, if anything; never stops the remediation."""
        if making is None:
            return
        try:
            if (record := await making) is not None:
                await durably(functools.partial(self.store.record, [record]))
        except Exception as exc:  # the reconciler ends what this could not
            log.error("silence.audit_failed", error_type=type(exc).__name__)

    def _decided(self, rem: Remediation, claim: Claim) -> bool:
        """Count and log a claim's decision; whether the remediation now runs here."""
        decision = claim.reason or ("dry_run" if claim.state == "dry_run" else "allowed")
        self.metrics.guard_decisions.labels(rem.rule, decision).inc()
        if decision == "precondition_error":
            self.metrics.precondition_errors.labels(rem.rule).inc()
        if claim.held:
            # Stored as held: a resume hands it back; until then no worker keeps it.
            log.info("guard.held", remediation=rem.id, rule=rem.rule, target=rem.target)
            return False
        if claim.state != RUNNING:
            self._count_final(rem.rule, claim.state, claim.reason)
            for step in rem.steps if claim.state == "dry_run" else ():
                self.metrics.actions.labels(step["action"], "dry_run").inc()
            log.info(
                f"guard.{decision}",
                remediation=rem.id,
                rule=rem.rule,
                target=rem.target,
                detail=claim.detail,
            )
            return False
        return True

    async def _run(self, rem: Remediation) -> None:
        """Run a claimed remediation's steps and record how it ended."""
        log.info("remediation.started", remediation=rem.id, rule=rem.rule, target=rem.target)
        await self._audit(self.silences.open(rem) if self.silences else None)
        state, last = await self.steps.run(rem, rem.steps, reason=None)
        followup = state != "succeeded" and bool(rem.on_failure)
        final = await durably(lambda: self.store.finish(rem, [last], state, followup=followup))
        # Ended (not verifying): its silence goes at once, before any on_failure pages.
        await self._audit(self.silences.close(rem, final) if self.silences else None)
        self.queue.slot_freed()
        self._count_final(rem.rule, final, None)
        log.info(f"remediation.{final}", remediation=rem.id, rule=rem.rule, target=rem.target)
        if followup:
            self.queue.put(ON_FAILURE, [rem])

    async def _on_failure(self, work: Work) -> None:
        """Run a failed, ineffective or interrupted remediation's on_failure steps, guarded."""
        rem = work.rem
        # Its silence goes first: the failure must page people, remedy's page included.
        await self._audit(self.silences.close(rem, rem.state) if self.silences else None)
        claim = await durably(
            lambda: self.store.claim_followup(
                rem,
                dry_run=self.settings.dry_run or rem.dry_run,
                limits=self.settings.limits,
                denied=denial(self.registry, self.settings.allow, rem.on_failure),
            )
        )
        if claim.retry and claim.reason == BUSY:
            self.queue.wait_for_slot(work, SLOT_POLL)
            return
        if claim.retry:
            self.queue.step_aside(work, LOCK_POLL)
            return
        if claim.held:  # stored as held: a resume hands it back
            log.info("guard.held", remediation=rem.id, rule=rem.rule, on_failure=True)
            return
        if claim.state != RUNNING:
            log.info("remediation.on_failure_skipped", remediation=rem.id, reason=claim.reason)
            return
        _, last = await self.steps.run(rem, rem.on_failure, reason="on_failure")
        await durably(lambda: self.store.followup_done(rem, [last]))
        self.queue.slot_freed()
        log.info("remediation.on_failure_ran", remediation=rem.id, rule=rem.rule)

    def _count_final(self, rule: str, state: str, reason: str | None) -> None:
        if state not in FINAL_STATES:
            return  # verifying: counted when it is verified or ineffective
        self.metrics.remediations.labels(rule, state).inc()
        if state in ("verified", "ineffective"):
            self.metrics.verifications.labels(rule, state).inc()
        if reason and state == "skipped":
            self.metrics.skipped.labels(rule, reason).inc()

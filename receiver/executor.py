"""The execute stage: workers that claim remediations past the guards and run them.

A claim evaluates every guard and records ``started`` in one transaction
before an action runs; the outcome is recorded after. A crash in between
leaves a remediation that recovery marks ``interrupted`` instead of running
it a second time. Temporary errors are retried with backoff and jitter
(stamina); permanent ones fail at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import aiodocker
import aiohttp
import stamina
import structlog
from kubernetes_asyncio.client import ApiClient

from receiver.allowlist import AllowLists, denial, patterns_for
from receiver.audit import AuditRecord
from receiver.guards import GlobalLimits
from receiver.metrics import Metrics
from receiver.store.base import (
    FINAL_STATES,
    RUNNING,
    Due,
    Remediation,
    StateConflict,
    Store,
    StoreUnavailable,
)
from remediations import (
    ActionContext,
    ActionError,
    ActionTimeout,
    ParamError,
    PermanentError,
    Registry,
    TemporaryError,
)
from remediations.aws.session import AwsSession

log = structlog.get_logger("remedy.executor")

LOCK_POLL = 0.25
STORE_PATIENCE = 300.0
T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff between attempts of a step that failed temporarily (``guards.retry``)."""

    initial: float
    maximum: float
    jitter: float = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """How the executor runs, all from the config (whose defaults are the only ones)."""

    dry_run: bool
    workers: int
    max_queue: int
    limits: GlobalLimits
    allow: AllowLists
    retry: RetryPolicy


@dataclasses.dataclass(frozen=True, slots=True)
class _Work:
    kind: str  # "run" or "on_failure"
    rem: Remediation


@dataclasses.dataclass(frozen=True, slots=True)
class _Attempt:
    outcome: str
    error: str | None
    result: Any
    seconds: float


def _retry_hook(exc: Exception) -> bool | float:
    """Retry temporary errors only, after the delay the backend asked for if it did."""
    if isinstance(exc, TemporaryError):
        return exc.delay if exc.delay else True
    return False


class Executor:
    """Runs remediations from an in-process queue fed by ingest, timers and recovery."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        http: aiohttp.ClientSession,
        metrics: Metrics,
        settings: ExecutorSettings,
        *,
        docker: aiodocker.Docker | None = None,
        kubernetes: ApiClient | None = None,
        aws: AwsSession | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.http = http
        self.metrics = metrics
        self.settings = settings
        self.docker = docker
        self.kubernetes = kubernetes
        self.aws = aws
        self._queue: asyncio.Queue[_Work] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[tuple[str, int]] = set()  # queued, running or deferred here
        self._deferred: set[tuple[str, int]] = set()  # waiting for a lock, back soon
        self._lock_waits: dict[int, float] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

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
        for task in self._tasks:
            if task not in self._running:
                task.cancel()
        if self._running:
            await asyncio.wait(self._running, timeout=grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    @property
    def queue_depth(self) -> int:
        """Work queued and not yet taken by a worker."""
        return self._queue.qsize()

    @property
    def overloaded(self) -> bool:
        """Whether new work would exceed the queue bound (ingest then answers 503)."""
        return self._queue.qsize() >= self.settings.max_queue

    def submit(self, remediations: Iterable[Remediation]) -> None:
        """Queue remediations that are ready to claim."""
        self._put("run", remediations)

    def handle(self, due: Due) -> None:
        """Take what the timers (or recovery) moved: ready work and due on_failure runs."""
        for rule, state, reason in due.finished:
            self._count_final(rule, state, reason)
        self._put("run", due.queued)
        self._put("on_failure", due.followups)

    def _put(self, kind: str, remediations: Iterable[Remediation]) -> None:
        for rem in remediations:
            if (kind, rem.id) in self._inflight:
                continue  # already queued or running here (a sweep found it again)
            self._inflight.add((kind, rem.id))
            self._queue.put_nowait(_Work(kind, rem))
            self._idle.clear()
        self.metrics.queue_depth.set(self._queue.qsize())

    def sweep(self, due: Due) -> None:
        """Take stored work that is not in flight here (a claim that failed, a lost wake-up)."""
        self._put("run", due.queued)
        self._put("on_failure", due.followups)

    async def join(self) -> None:
        """Wait until every queued piece of work is done (lock waits included)."""
        while self._queue.qsize() or self._busy or self._deferred:
            self._idle.clear()
            await self._idle.wait()

    async def _work(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self._stopping:
            work = await self._queue.get()
            self._busy += 1
            self._running.add(me)
            self.metrics.queue_depth.set(self._queue.qsize())
            try:
                if work.kind == "run":
                    await self._execute(work.rem)
                else:
                    await self._on_failure(work.rem)
            except StateConflict:
                log.info("remediation.already_moved", remediation=work.rem.id)
            except Exception as exc:
                # Logged without the traceback: rendered params may be in its messages.
                log.error(
                    "remediation.crashed", remediation=work.rem.id, error_type=type(exc).__name__
                )
            finally:
                if (work.kind, work.rem.id) not in self._deferred:
                    self._inflight.discard((work.kind, work.rem.id))
                self._busy -= 1
                self._running.discard(me)
                if not self._queue.qsize() and not self._busy and not self._deferred:
                    self._idle.set()

    # -- one remediation ----------------------------------------------------

    async def _execute(self, rem: Remediation) -> None:
        dry_run = self.settings.dry_run or rem.dry_run
        denied = denial(self.registry, self.settings.allow, rem.steps)
        waiting_since = self._lock_waits.get(rem.id)
        give_up = waiting_since is not None and (
            time.monotonic() - waiting_since >= (rem.guards.lock_wait or 0.0)
        )
        claim = await self._durably(
            lambda: self.store.claim(
                rem,
                dry_run=dry_run,
                limits=self.settings.limits,
                denied=denied,
                give_up_waiting=give_up,
            )
        )
        if claim.retry:
            # The target is locked: wait for it off the worker, so waiting ties up nothing.
            self._lock_waits.setdefault(rem.id, time.monotonic())
            self._later("run", rem)
            return
        self._lock_waits.pop(rem.id, None)
        decision = claim.reason or ("dry_run" if claim.state == "dry_run" else "allowed")
        self.metrics.guard_decisions.labels(rem.rule, decision).inc()
        if claim.held:
            # Stored as held: a resume hands it back; until then no worker keeps it.
            log.info("guard.held", remediation=rem.id, rule=rem.rule, target=rem.target)
            return
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
            return
        log.info("remediation.started", remediation=rem.id, rule=rem.rule, target=rem.target)
        state, last = await self._run_steps(rem, rem.steps, reason=None)
        followup = state != "succeeded" and bool(rem.on_failure)
        final = await self._durably(
            lambda: self.store.finish(rem, [last], state, followup=followup)
        )
        self._count_final(rem.rule, final, None)
        log.info(f"remediation.{final}", remediation=rem.id, rule=rem.rule, target=rem.target)
        if followup:
            self._put("on_failure", [rem])

    async def _on_failure(self, rem: Remediation) -> None:
        """Run a failed, ineffective or interrupted remediation's on_failure steps, guarded."""
        claim = await self._durably(
            lambda: self.store.claim_followup(
                rem,
                dry_run=self.settings.dry_run or rem.dry_run,
                limits=self.settings.limits,
                denied=denial(self.registry, self.settings.allow, rem.on_failure),
            )
        )
        if claim.retry:
            self._later("on_failure", rem)
            return
        if claim.state != RUNNING:
            log.info("remediation.on_failure_skipped", remediation=rem.id, reason=claim.reason)
            return
        _, last = await self._run_steps(rem, rem.on_failure, reason="on_failure")
        await self._durably(lambda: self.store.followup_done(rem, [last]))
        log.info("remediation.on_failure_ran", remediation=rem.id, rule=rem.rule)

    async def _run_steps(
        self, rem: Remediation, steps: Sequence[Mapping[str, Any]], *, reason: str | None
    ) -> tuple[str, AuditRecord]:
        """Run steps in order; return the outcome and the last step's (unwritten) record.

        The claim wrote the first ``started``. A failing step stops the run
        unless it may fail (``continue_on_error``); a pause stops it before
        the next step.
        """
        state = "succeeded"
        for index, step in enumerate(steps):
            if index > 0:
                before = f"step {index + 1} ({step['action']})"
                started = self._record("started", rem, step, reason=reason)
                stop = await self._durably(
                    functools.partial(self.store.begin_step, rem, started, before=before)
                )
                if stop.reason == "paused":
                    error = f"remedy was paused before {before}"
                    return "failed", self._record("failed", rem, step, reason=reason, error=error)
                if not stop.allowed:
                    # The alert resolved: what ran stands, nothing more starts.
                    skipped = self._record(
                        "skipped", rem, step, reason=stop.reason, error=stop.detail
                    )
                    return state, skipped
            attempt = await self._attempt(rem, step)
            record = self._record(
                attempt.outcome,
                rem,
                step,
                reason=reason,
                error=attempt.error,
                result=attempt.result,
                duration_ms=round(attempt.seconds * 1000),
            )
            self.metrics.actions.labels(step["action"], attempt.outcome).inc()
            self.metrics.action_duration.labels(step["action"]).observe(attempt.seconds)
            stops = attempt.outcome != "succeeded" and not step.get("continue_on_error")
            if stops:
                state = attempt.outcome
            if stops or index == len(steps) - 1:
                return state, record
            await self._durably(functools.partial(self.store.record, [record]))
        raise AssertionError("a remediation has at least one step")  # the rule schema says so

    async def _before_retry(self, rem: Remediation, previous: str) -> None:
        """Raise a permanent error when a pause or a resolve stops the next attempt.

        Its message keeps the error that would have been retried.
        """
        stop = await self.store.halted(rem, before="the retry")
        if stop.reason == "paused":
            raise PermanentError(f"{previous}; remedy was paused before the retry")
        if not stop.allowed:
            raise PermanentError(f"{previous}; not retried: {stop.detail}")

    async def _durably(self, call: Callable[[], Awaitable[T]]) -> T:
        """A store call, retried while storage is briefly unavailable (up to five minutes).

        Giving up on a write after an action ran would leave its target
        locked until a restart; each call is safe to repeat, because a
        transaction that failed wrote nothing.
        """
        async for attempt in stamina.retry_context(
            on=StoreUnavailable,
            attempts=None,
            timeout=STORE_PATIENCE,
            wait_initial=0.05,
            wait_max=2.0,
        ):
            with attempt:
                return await call()
        raise AssertionError("stamina either returns or raises")

    def _later(self, kind: str, rem: Remediation) -> None:
        """Queue the work again after a short pause (a lock to wait for)."""
        self._deferred.add((kind, rem.id))
        asyncio.get_running_loop().call_later(LOCK_POLL, self._requeue, kind, rem)

    def _requeue(self, kind: str, rem: Remediation) -> None:
        self._deferred.discard((kind, rem.id))
        self._inflight.discard((kind, rem.id))
        if not self._stopping:
            self._put(kind, [rem])
        elif not self._deferred and not self._busy and not self._queue.qsize():
            self._idle.set()

    async def _attempt(self, rem: Remediation, step: Mapping[str, Any]) -> _Attempt:
        """Run one step, retrying temporary errors; never raises."""
        started = time.monotonic()
        try:
            action = self.registry.get(step["action"])
        except KeyError:
            return _Attempt("failed", f"unknown action {step['action']!r}", None, 0.0)
        patterns = patterns_for(self.settings.allow, step["action"])
        ctx = ActionContext(
            http=self.http,
            labels=rem.alert.get("labels", {}),
            docker=self.docker,
            kubernetes=self.kubernetes,
            aws=self.aws,
            allowed=(lambda subject: any(p.search(subject) for p in patterns))
            if patterns is not None
            else (lambda subject: True),
        )
        attempts = 0
        previous = ""  # the temporary error the next attempt would retry
        try:
            params = action.parse(step["params"])
            async for attempt in stamina.retry_context(
                on=_retry_hook,
                attempts=int(step.get("retries", 0)) + 1,
                timeout=None,
                wait_initial=self.settings.retry.initial,
                wait_max=self.settings.retry.maximum,
                wait_jitter=self.settings.retry.jitter,
            ):
                with attempt:
                    attempts += 1
                    if attempts > 1:
                        await self._before_retry(rem, previous)
                    try:
                        async with asyncio.timeout(float(step["timeout"])):
                            result = await action.run(params, ctx)
                    except TemporaryError as exc:
                        previous = str(exc)
                        raise
        except ActionTimeout as exc:
            return _Attempt("timeout", str(exc), None, _since(started))
        except TimeoutError:
            return _Attempt(
                "timeout", f"no outcome within {step['timeout']:g}s", None, _since(started)
            )
        except (ActionError, ParamError) as exc:
            tries = f" (after {attempts} attempts)" if attempts > 1 else ""
            return _Attempt("failed", f"{exc}{tries}", None, _since(started))
        except Exception as exc:
            # A bug in an action, not the backend's answer: its message may carry
            # rendered params (URLs with tokens), so only its type is recorded.
            log.error("action.crashed", action=step["action"], error_type=type(exc).__name__)
            error = f"internal error in {step['action']}: {type(exc).__name__}"
            return _Attempt("failed", error, None, _since(started))
        details = dict(result)
        if attempts > 1:
            details["attempts"] = attempts
        return _Attempt("succeeded", None, details, _since(started))

    # -- helpers ------------------------------------------------------------

    def _count_final(self, rule: str, state: str, reason: str | None) -> None:
        if state not in FINAL_STATES:
            return  # verifying: counted when it is verified or ineffective
        self.metrics.remediations.labels(rule, state).inc()
        if state in ("verified", "ineffective"):
            self.metrics.verifications.labels(rule, state).inc()
        if reason and state == "skipped":
            self.metrics.skipped.labels(rule, reason).inc()

    @staticmethod
    def _record(
        event: str, rem: Remediation, step: Mapping[str, Any], **fields: Any
    ) -> AuditRecord:
        return AuditRecord(
            event,
            rem.alert,
            rule=rem.rule,
            target=rem.target,
            remediation=rem.id,
            action=step["action"],
            params=step["params"],
            **fields,
        )


def _since(started: float) -> float:
    return time.monotonic() - started

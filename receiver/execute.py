"""The execute stage: a claimed remediation's steps, run in order, each retried as its rule says.

Temporary errors are retried with backoff and jitter (stamina); permanent
ones fail at once. Before every further step and every retry the store is
asked whether a pause or a resolve now stops it; the step already running
may finish. Nothing here decides whether a remediation may run: the claim
(the guards) did that.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiodocker
import aiohttp
import stamina
import structlog
from kubernetes_asyncio.client import ApiClient

from receiver.allowlist import AllowLists, patterns_for
from receiver.audit import AuditRecord
from receiver.metrics import Metrics
from receiver.preconditions import Asks
from receiver.store.base import Remediation, Store, StoreUnavailable
from remediations import (
    Action,
    ActionContext,
    ActionError,
    ActionTimeout,
    ParamError,
    PermanentError,
    Previews,
    Registry,
    TemporaryError,
)
from remediations.aws.session import AwsSession
from remediations.postgresql.servers import PostgresServers
from remediations.redis.servers import RedisServers

log = structlog.get_logger("remedy.execute")

STORE_PATIENCE = 300.0
PREVIEW_TIMEOUT = 10.0
"""Seconds a dry-run preview may take at most (less when the step's timeout is shorter):
a preview holds a worker that live work may need, for nothing but information."""
T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff between attempts of a step that failed temporarily (``guards.retry``)."""

    initial: float
    maximum: float
    jitter: float = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class Clients:
    """The backends' clients, opened once for the process (``None``: not configured)."""

    http: aiohttp.ClientSession
    docker: aiodocker.Docker | None = None
    kubernetes: ApiClient | None = None
    aws: AwsSession | None = None
    redis: RedisServers | None = None
    postgresql: PostgresServers | None = None
    prometheus: Asks | None = None  # what rules' when: ask


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


async def durably(call: Callable[[], Awaitable[T]]) -> T:
    """A store call, retried while storage is briefly unavailable (up to five minutes).

    Giving up on a write after an action ran would leave its target locked
    until a restart; each call is safe to repeat, because a transaction that
    failed wrote nothing. The first try goes without the retry machinery,
    which costs more than the write's own hand-off; after a failure it is
    tried again at once, then with backoff.
    """
    try:
        return await call()
    except StoreUnavailable as exc:
        log.warning("store.retrying", error=str(exc))  # a blip the retry hides stays seen
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


class StepRunner:
    """Runs a claimed remediation's steps (or its on_failure steps) against the backends."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        clients: Clients,
        metrics: Metrics,
        *,
        allow: AllowLists,
        retry: RetryPolicy,
    ) -> None:
        self.store = store
        self.registry = registry
        self.clients = clients
        self.metrics = metrics
        self.allow = allow
        self.retry = retry

    async def run(
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
                stop = await durably(
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
            await durably(functools.partial(self.store.record, [record]))
        raise AssertionError("a remediation has at least one step")  # the rule schema says so

    async def _before_retry(self, rem: Remediation, previous: str) -> None:
        """Raise a permanent error when a pause or a resolve stops the next attempt.

        Its message keeps the error that would have been retried.
        """
        stop = await durably(functools.partial(self.store.halted, rem, before="the retry"))
        if stop.reason == "paused":
            raise PermanentError(f"{previous}; remedy was paused before the retry")
        if not stop.allowed:
            raise PermanentError(f"{previous}; not retried: {stop.detail}")

    async def _attempt(self, rem: Remediation, step: Mapping[str, Any]) -> _Attempt:
        """Run one step, retrying temporary errors; never raises."""
        started = time.monotonic()
        try:
            action = self.registry.get(step["action"])
        except KeyError:
            return _Attempt("failed", f"unknown action {step['action']!r}", None, 0.0)
        ctx = self._context(rem, step)
        attempts = 0
        previous = ""  # the temporary error the next attempt would retry

        async def once() -> Mapping[str, Any]:
            nonlocal attempts, previous
            attempts += 1
            if attempts > 1:
                await self._before_retry(rem, previous)
            deadline = asyncio.get_running_loop().time() + float(step["timeout"])
            try:
                async with asyncio.timeout_at(deadline):
                    return await action.run(params, dataclasses.replace(ctx, deadline=deadline))
            except TemporaryError as exc:
                previous = str(exc)
                raise

        try:
            params = action.parse(step["params"])
            failed: TemporaryError | None = None
            try:
                result = await once()  # most steps need no retry, nor its machinery
            except TemporaryError as exc:
                failed = exc  # retried outside this handler: later attempts carry no context
            if failed is not None:
                result = await self._retried(once, failed, int(step.get("retries", 0)))
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

    async def _retried(
        self,
        once: Callable[[], Awaitable[Mapping[str, Any]]],
        failed: TemporaryError,
        retries: int,
    ) -> Mapping[str, Any]:
        """Retry a step whose first attempt failed temporarily, as the retry policy says.

        The first failure is handed to the policy as its first attempt, so it
        decides and waits (the backend's own delay too) as if it had run it.
        """
        first: TemporaryError | None = failed
        async for attempt in stamina.retry_context(
            on=_retry_hook,
            attempts=retries + 1,
            timeout=None,
            wait_initial=self.retry.initial,
            wait_max=self.retry.maximum,
            wait_jitter=self.retry.jitter,
        ):
            with attempt:
                if first is not None:
                    replayed, first = first, None
                    raise replayed
                return await once()
        raise AssertionError("stamina either returns or raises")

    def previews(self, rem: Remediation) -> bool:
        """Whether any of the remediation's steps can tell what it would do (dry-run)."""
        return any(self._can_preview(step) for step in rem.steps)

    def _can_preview(self, step: Mapping[str, Any]) -> bool:
        """The step's action previews, and its backend (``redis`` of ``redis.flushdb``) is set."""
        backend = str(step["action"]).split(".", 1)[0]
        configured = getattr(self.clients, backend, None) is not None
        return configured and self.registry.previews(str(step["action"]))

    async def preview(self, rem: Remediation) -> list[AuditRecord]:
        """Dry-run: what each step that can tell would do, touching nothing; never raises.

        One ``dry_run`` event (reason ``preview``) per such step, with what its
        action's ``preview`` found in ``result``, or why it could not look in
        ``error`` (what a live run would likely have met too).
        """
        records: list[AuditRecord] = []
        for step in rem.steps:
            action = self._action(step)
            if not (self._can_preview(step) and isinstance(action, Previews)):
                continue
            started = time.monotonic()
            result: Mapping[str, Any] | None = None
            error = None
            seconds = min(float(step["timeout"]), PREVIEW_TIMEOUT)
            try:
                params = action.parse(step["params"])
                async with asyncio.timeout(seconds):
                    result = dict(await action.preview(params, self._context(rem, step)))
            except TimeoutError:
                error = f"no answer within {seconds:g}s"
            except (ActionError, ParamError) as exc:
                error = str(exc)
            except Exception as exc:  # a bug in the action: only its type (see _attempt)
                log.error(
                    "action.preview_crashed",
                    action=step["action"],
                    error_type=type(exc).__name__,
                )
                error = f"internal error in {step['action']}: {type(exc).__name__}"
            records.append(
                self._record(
                    "dry_run",
                    rem,
                    step,
                    reason="preview",
                    error=error,
                    result=result,
                    duration_ms=round(_since(started) * 1000),
                )
            )
        return records

    def _action(self, step: Mapping[str, Any]) -> Action | None:
        try:
            return self.registry.get(step["action"])
        except KeyError:
            return None

    def _context(self, rem: Remediation, step: Mapping[str, Any]) -> ActionContext:
        """What the step's action may use: the shared clients, the alert, its allow-list."""
        patterns = patterns_for(self.allow, step["action"])
        return ActionContext(
            http=self.clients.http,
            labels=rem.alert.get("labels", {}),
            docker=self.clients.docker,
            kubernetes=self.clients.kubernetes,
            aws=self.clients.aws,
            redis=self.clients.redis,
            postgresql=self.clients.postgresql,
            allowed=(lambda subject: any(p.search(subject) for p in patterns))
            if patterns is not None
            else (lambda subject: True),
        )

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

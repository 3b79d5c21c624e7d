"""The execute stage: workers that run queued remediations and record every outcome.

A ``started`` event is committed before an action runs and its outcome after,
so a crash in between leaves a remediation that recovery marks ``interrupted``
instead of running it a second time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp
import structlog

from receiver.audit import AuditRecord
from receiver.metrics import Metrics
from receiver.store.base import Remediation, StateConflict, Store
from remediations import ActionContext, ActionError, ActionTimeout, ParamError, Registry

log = structlog.get_logger("remedy.executor")


class Executor:
    """Runs remediations from an in-process queue fed by ingest and by recovery."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        http: aiohttp.ClientSession,
        metrics: Metrics,
        *,
        dry_run: bool,
        workers: int = 4,
    ) -> None:
        self.store = store
        self.registry = registry
        self.http = http
        self.metrics = metrics
        self.dry_run = dry_run
        self._workers = workers
        self._queue: asyncio.Queue[Remediation] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        """Recover what a previous process left, then start the workers."""
        for rem in await self.store.remediations(["running"]):
            await self.store.record(
                [self._record("interrupted", rem, reason="the process stopped while it ran")],
                remediation=rem.id,
                state="interrupted",
            )
            self.metrics.remediations.labels(rem.rule, "interrupted").inc()
            log.warning("remediation.interrupted", remediation=rem.id, rule=rem.rule)
        self.submit(await self.store.remediations(["queued"]))
        self._tasks = [
            asyncio.create_task(self._work(), name=f"remedy-worker-{n}")
            for n in range(self._workers)
        ]

    @property
    def queue_depth(self) -> int:
        """Remediations queued and not yet taken by a worker."""
        return self._queue.qsize()

    def submit(self, remediations: Iterable[Remediation]) -> None:
        """Queue stored remediations."""
        for rem in remediations:
            self._queue.put_nowait(rem)
            self._idle.clear()
        self.metrics.queue_depth.set(self._queue.qsize())

    async def join(self) -> None:
        """Wait until every submitted remediation has reached a final state."""
        while self._queue.qsize() or self._busy:
            self._idle.clear()
            await self._idle.wait()

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

    async def _work(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self._stopping:
            rem = await self._queue.get()
            self._busy += 1
            self._running.add(me)
            self.metrics.queue_depth.set(self._queue.qsize())
            try:
                await self._execute(rem)
            except StateConflict:
                log.info("remediation.already_claimed", remediation=rem.id)
            except Exception as exc:
                # Logged without the traceback: rendered params may be in its messages.
                log.error("remediation.crashed", remediation=rem.id, error_type=type(exc).__name__)
            finally:
                self._busy -= 1
                self._running.discard(me)
                if not self._queue.qsize() and not self._busy:
                    self._idle.set()

    async def _execute(self, rem: Remediation) -> None:
        if self.dry_run or rem.dry_run:
            await self._dry_run(rem)
            return
        state = await self._run_steps(rem, rem.steps, claim=True, final=True)
        if state != "succeeded" and rem.on_failure:
            await self._run_steps(rem, rem.on_failure, reason="on_failure")
            await self.store.record([], remediation=rem.id, state=state)
        self.metrics.remediations.labels(rem.rule, state).inc()
        log.info(f"remediation.{state}", remediation=rem.id, rule=rem.rule, target=rem.target)

    async def _dry_run(self, rem: Remediation) -> None:
        records = [
            self._record("dry_run", rem, action=step["action"], params=step["params"])
            for step in rem.steps
        ]
        await self.store.record(records, remediation=rem.id, state="dry_run", from_state="queued")
        for step in rem.steps:
            self.metrics.actions.labels(step["action"], "dry_run").inc()
        self.metrics.remediations.labels(rem.rule, "dry_run").inc()
        log.info("remediation.dry_run", remediation=rem.id, rule=rem.rule, target=rem.target)

    async def _run_steps(
        self,
        rem: Remediation,
        steps: Sequence[Mapping[str, Any]],
        *,
        claim: bool = False,
        final: bool = False,
        reason: str | None = None,
    ) -> str:
        """Run steps in order and return the remediation's outcome.

        ``claim`` moves the remediation from ``queued`` to ``running`` with the
        first ``started`` event (or raises :class:`StateConflict`); ``final``
        records the outcome state with the last step's event, unless
        ``on_failure`` steps must run first. A failing step
        stops the run unless it may fail (``continue_on_error``).
        """
        state = "succeeded"
        for index, step in enumerate(steps):
            action = step["action"]
            started = self._record(
                "started", rem, action=action, params=step["params"], reason=reason
            )
            if claim:
                await self.store.record(
                    [started], remediation=rem.id, state="running", from_state="queued"
                )
                claim = False
            else:
                await self.store.record([started])
            log.info("remediation.started", remediation=rem.id, rule=rem.rule, action=action)
            outcome, error, result, seconds = await self._run_action(rem, step)
            stops = outcome != "succeeded" and not step.get("continue_on_error")
            if stops:
                state = outcome
            last = stops or index == len(steps) - 1
            final_here = final and last and (state == "succeeded" or not rem.on_failure)
            await self.store.record(
                [
                    self._record(
                        outcome,
                        rem,
                        action=action,
                        params=step["params"],
                        reason=reason,
                        error=error,
                        result=result,
                        duration_ms=round(seconds * 1000),
                    )
                ],
                remediation=rem.id if final_here else None,
                state=state if final_here else None,
            )
            self.metrics.actions.labels(action, outcome).inc()
            self.metrics.action_duration.labels(action).observe(seconds)
            if stops:
                break
        return state

    async def _run_action(
        self, rem: Remediation, step: Mapping[str, Any]
    ) -> tuple[str, str | None, Any, float]:
        labels = rem.alert.get("labels", {})
        ctx = ActionContext(http=self.http, labels=labels)
        started = time.monotonic()
        try:
            action = self.registry.get(step["action"])
        except KeyError:
            return "failed", f"unknown action {step['action']!r}", None, 0.0
        try:
            params = action.parse(step["params"])
            async with asyncio.timeout(float(step["timeout"])):
                result = await action.run(params, ctx)
        except ActionTimeout as exc:
            return "timeout", str(exc), None, _since(started)
        except TimeoutError:
            return "timeout", f"no outcome within {step['timeout']}s", None, _since(started)
        except (ActionError, ParamError) as exc:
            return "failed", str(exc), None, _since(started)
        except Exception as exc:
            # A bug in an action, not the backend's answer: its message may carry
            # rendered params (URLs with tokens), so only its type is recorded.
            log.error("action.crashed", action=step["action"], error_type=type(exc).__name__)
            error = f"internal error in {step['action']}: {type(exc).__name__}"
            return "failed", error, None, _since(started)
        return "succeeded", None, dict(result), _since(started)

    @staticmethod
    def _record(event: str, rem: Remediation, **fields: Any) -> AuditRecord:
        return AuditRecord(
            event, rem.alert, rule=rem.rule, target=rem.target, remediation=rem.id, **fields
        )


def _since(started: float) -> float:
    return time.monotonic() - started

"""The execute stage: workers that run queued remediations and record every outcome.

A ``started`` event is committed before an action runs and its outcome after,
so a crash in between leaves a remediation that recovery marks ``interrupted``
instead of running it a second time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import structlog

from receiver.audit import AuditRecord
from receiver.metrics import Metrics
from receiver.store.base import NotFound, Remediation, Store
from remediations import ActionContext, ActionError, ParamError, Registry

log = structlog.get_logger("remedy.executor")

FINAL_STATES = frozenset(
    {"succeeded", "failed", "timeout", "ineffective", "skipped", "dry_run", "interrupted"}
)


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
        self._queue: asyncio.Queue[int] = asyncio.Queue()
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
        self.submit(rem.id for rem in await self.store.remediations(["queued"]))
        self._tasks = [
            asyncio.create_task(self._work(), name=f"remedy-worker-{n}")
            for n in range(self._workers)
        ]

    @property
    def queue_depth(self) -> int:
        """Remediations queued and not yet taken by a worker."""
        return self._queue.qsize()

    def submit(self, ids: Any) -> None:
        """Queue stored remediations by id."""
        for rem_id in ids:
            self._queue.put_nowait(rem_id)
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
            rem_id = await self._queue.get()
            self._busy += 1
            self._running.add(me)
            self.metrics.queue_depth.set(self._queue.qsize())
            try:
                await self._execute(rem_id)
            except Exception:
                log.exception("remediation.crashed", remediation=rem_id)
            finally:
                self._busy -= 1
                self._running.discard(me)
                if not self._queue.qsize() and not self._busy:
                    self._idle.set()

    async def _execute(self, rem_id: int) -> None:
        try:
            rem = await self.store.remediation(rem_id)
        except NotFound:
            return
        if rem.state != "queued":
            return
        if self.dry_run or rem.dry_run:
            await self._dry_run(rem)
            return
        state = await self._run_steps(rem, rem.steps, first_state="running")
        if state != "succeeded" and rem.on_failure:
            await self._run_steps(rem, rem.on_failure, reason="on_failure")
        await self.store.record(
            [], remediation=rem.id, state=state, reason=None if state == "succeeded" else state
        )
        self.metrics.remediations.labels(rem.rule, state).inc()
        log.info(f"remediation.{state}", remediation=rem.id, rule=rem.rule, target=rem.target)

    async def _dry_run(self, rem: Remediation) -> None:
        records = [
            self._record("dry_run", rem, action=step["action"], params=step["params"])
            for step in rem.steps
        ]
        await self.store.record(records, remediation=rem.id, state="dry_run")
        for step in rem.steps:
            self.metrics.actions.labels(step["action"], "dry_run").inc()
        self.metrics.remediations.labels(rem.rule, "dry_run").inc()
        log.info("remediation.dry_run", remediation=rem.id, rule=rem.rule, target=rem.target)

    async def _run_steps(
        self,
        rem: Remediation,
        steps: Sequence[Mapping[str, Any]],
        first_state: str | None = None,
        reason: str | None = None,
    ) -> str:
        """Run steps in order; the worst outcome of a step that may not fail is the result."""
        state = "succeeded"
        for step in steps:
            action = step["action"]
            await self.store.record(
                [self._record("started", rem, action=action, params=step["params"], reason=reason)],
                remediation=rem.id if first_state else None,
                state=first_state,
            )
            first_state = None
            log.info("remediation.started", remediation=rem.id, rule=rem.rule, action=action)
            outcome, error, result, seconds = await self._run_action(rem, step)
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
                ]
            )
            self.metrics.actions.labels(action, outcome).inc()
            self.metrics.action_duration.labels(action).observe(seconds)
            if outcome != "succeeded" and not step.get("continue_on_error"):
                return outcome
        return state

    async def _run_action(
        self, rem: Remediation, step: Mapping[str, Any]
    ) -> tuple[str, str | None, Any, float]:
        labels = rem.alert.get("labels", {})
        ctx = ActionContext(http=self.http, labels=labels)
        started = time.monotonic()
        try:
            action = self.registry.get(step["action"])
            params = action.parse(step["params"])
            async with asyncio.timeout(float(step["timeout"])):
                result = await action.run(params, ctx)
        except TimeoutError:
            return "timeout", f"no outcome within {step['timeout']}s", None, _since(started)
        except (ActionError, ParamError) as exc:
            return "failed", str(exc), None, _since(started)
        except KeyError:
            return "failed", f"unknown action {step['action']!r}", None, _since(started)
        return "succeeded", None, dict(result), _since(started)

    @staticmethod
    def _record(event: str, rem: Remediation, **fields: Any) -> AuditRecord:
        return AuditRecord(
            event, rem.alert, rule=rem.rule, target=rem.target, remediation=rem.id, **fields
        )


def _since(started: float) -> float:
    return time.monotonic() - started

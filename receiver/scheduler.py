"""The timers: ``for:`` waits, approval expiry and verification deadlines.

Timers live in the store (``due_at``), so they survive restarts; this loop
only asks the store what is due and hands it to the executor. Replay drives
the same ``tick`` with a simulated clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import structlog

from receiver.clock import Clock, woken
from receiver.config import DEFAULT_STORAGE_LEASE
from receiver.executor import Executor
from receiver.metrics import Metrics
from receiver.store.base import Store

log = structlog.get_logger("remedy.scheduler")

POLL_SECONDS = 0.5
SWEEP_SECONDS = 5.0
PRUNE_SECONDS = 3600.0


class Scheduler:
    """Fires due timers: now, whenever woken, and at least every ``poll`` seconds."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        clock: Clock,
        metrics: Metrics,
        *,
        poll: float = POLL_SECONDS,
        sweep_every: float = SWEEP_SECONDS,
        retention: float | None = None,
        guard_window: Callable[[], float] = lambda: 0.0,
        heartbeat_every: float = DEFAULT_STORAGE_LEASE / 3,
    ) -> None:
        self.store = store
        self.executor = executor
        self.clock = clock
        self.metrics = metrics
        self.poll = poll
        self.sweep_every = sweep_every
        self.retention = retention
        self.guard_window = guard_window  # executions the guards still count are kept
        self.heartbeat_every = heartbeat_every
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._beat: asyncio.Task[None] | None = None

    async def tick(self, now: datetime | None = None) -> None:
        """Move everything due at ``now`` (default: the clock's now)."""
        due = await self.store.advance(now or self.clock.now())
        self.executor.handle(due)

    def wake(self) -> None:
        """Look at the timers again soon (new waiting work arrived)."""
        self._wake.set()

    def start(self) -> None:
        """Run the timer loop, and the lease's renewal beside it, in the background."""
        self._task = asyncio.create_task(self._run(), name="remedy-scheduler")
        self._beat = asyncio.create_task(self._renew(take_over=True), name="remedy-heartbeat")

    async def stop(self) -> None:
        """Stop the timer loop and the renewal."""
        for task in (self._task, self._beat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._beat = None

    async def sweep(self) -> None:
        """Hand the executor stored work it does not have (after a failed claim, say)."""
        self.executor.sweep(await self.store.pending())

    async def prune(self) -> int:
        """Drop what is older than the retention (nothing without one); audit events gone.

        The audit log first, then the alerts and remediations of occurrences
        that ended before it, and executions no guard looks back to.
        """
        if self.retention is None:
            return 0
        now = self.clock.now()
        before = now - timedelta(seconds=self.retention)
        pruned = await self.store.prune(before)
        if pruned:
            self.metrics.audit_pruned.inc(pruned)
            log.info("audit.pruned", events=pruned, before=before.isoformat())
        alerts = await self.store.prune_history(before, self.guard_window())
        if alerts:
            log.info("history.pruned", alerts=alerts, before=before.isoformat())
        return pruned

    async def _renew(self, *, take_over: bool) -> None:
        """Renew the lease every ``heartbeat_every``, apart from the timers (a long
        prune must not let it lapse); with ``take_over``, queue what dead replicas left."""
        while True:
            await asyncio.sleep(self.heartbeat_every)
            try:
                self.executor.handle(await self.store.heartbeat(take_over=take_over))
            except Exception as exc:  # a storage hiccup: the next renewal may pass
                log.error("scheduler.renew_failed", error_type=type(exc).__name__)

    @contextlib.asynccontextmanager
    async def leased(self) -> AsyncIterator[None]:
        """Keep renewing the lease (and take nothing over) while running actions finish.

        For the shutdown grace, after the timers stopped: another replica
        must not report this one's running work interrupted while it ends.
        """

        task = asyncio.create_task(self._renew(take_over=False), name="remedy-lease")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def gauges(self) -> None:
        """Keep the pause and breaker gauges true to the store, whoever changed it."""
        paused, breakers = await self.store.control()
        self.metrics.paused.set(1 if paused else 0)
        self.metrics.breakers_open.set(breakers)

    async def _run(self) -> None:
        last_sweep = time.monotonic()
        last_prune: float | None = None  # at start, then hourly
        while True:
            try:
                await self.tick()
                await self.gauges()
                if time.monotonic() - last_sweep >= self.sweep_every:
                    last_sweep = time.monotonic()
                    await self.sweep()
                if last_prune is None or time.monotonic() - last_prune >= PRUNE_SECONDS:
                    await self.prune()
                    last_prune = time.monotonic()  # a failed prune is tried again soon
            except Exception as exc:  # a storage hiccup: try again at the next poll
                log.error("scheduler.tick_failed", error_type=type(exc).__name__)
            self._wake.clear()
            await woken(self._wake, self.poll)

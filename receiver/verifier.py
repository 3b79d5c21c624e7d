"""``verify.query``: ask Prometheus whether a remediation worked, until it did or time runs out.

Every remediation ``verifying`` by a query is asked about at an interval of a
tenth of its ``within`` (1 s to 15 s). The query holding makes it
``verified``; ``within`` passing first makes it ``ineffective`` (and its
``on_failure`` due), with the last answer in the event. State lives in the
store (the deadline counts from when verification began), so a restart picks
up where it was; with several replicas the store lets only one move it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime

import structlog

from receiver import verify
from receiver.clock import Clock
from receiver.executor import Executor
from receiver.preconditions import Asks, ask
from receiver.store.base import VERIFYING, Remediation, StateConflict, Store, StoreUnavailable

log = structlog.get_logger("remedy.verifier")

TICK_SECONDS = 1.0


class Verifier:
    """Polls the queries of ``verifying`` remediations; the store records what they found."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        prometheus: Asks | None,
        clock: Clock,
        *,
        tick: float = TICK_SECONDS,
    ) -> None:
        self.store = store
        self.executor = executor
        self.prometheus = prometheus
        self.clock = clock
        self.tick = tick
        self._next: dict[int, float] = {}  # remediation -> when (monotonic) to ask again
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Poll in the background."""
        self._task = asyncio.create_task(self._run(), name="remedy-verifier")

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except StoreUnavailable as exc:
                log.warning("verifier.store_unavailable", error=str(exc))
            except Exception as exc:  # a bug must not end verification for good
                log.error("verifier.crashed", error_type=type(exc).__name__)
            await asyncio.sleep(self.tick)

    async def check(self, now: datetime | None = None) -> None:
        """Ask about every remediation whose turn it is; record what was found."""
        moment = now or self.clock.now()
        rems = [r for r in await self.store.remediations([VERIFYING]) if r.guards.verify_query]
        self._next = {rem.id: self._next.get(rem.id, 0.0) for rem in rems}
        for rem in rems:
            if self._next[rem.id] > time.monotonic():
                continue
            self._next[rem.id] = time.monotonic() + _interval(rem)
            held, observed = await self._ask(rem)
            timed_out = moment >= verify.query_deadline(rem)
            try:
                due = await self.store.verification(
                    rem, held=held, observed=observed, timed_out=timed_out
                )
            except StateConflict:
                continue  # another replica (or a restart's recovery) moved it
            self.executor.handle(due)

    async def _ask(self, rem: Remediation) -> tuple[bool, str]:
        """Whether the query holds now, and the query with its answer in words."""
        spec = rem.guards.verify_query or {}
        held, said = await ask(
            self.prometheus, str(spec.get("query")), str(spec.get("expect", "nonempty"))
        )
        return bool(held), said  # Prometheus unable to say counts as not holding


def _interval(rem: Remediation) -> float:
    within = float((rem.guards.verify_query or {}).get("within") or 10.0)
    return min(max(within / 10, 1.0), 15.0)

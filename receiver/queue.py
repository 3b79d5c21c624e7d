"""The queue stage: work ready to claim, held in this process until a worker takes it.

The store is the truth (a queued remediation survives any crash); this queue
only orders what this process will claim next: work its ingest claimed
already (which holds a ``max_concurrent`` slot) before anything else. Each piece of work is in
flight here at most once, however often ingest, timers, recovery and sweeps
hand it over; work that waits for a target's lock steps aside and comes back
after a short pause, so waiting ties up no worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Iterable

from receiver.metrics import Metrics
from receiver.store.base import Remediation

RUN = "run"  # claim it, then run it
CLAIMED = "claimed"  # claimed already (by its ingest): run it
ON_FAILURE = "on_failure"
PREVIEW = "preview"  # claimed as a dry run: record what its steps would do
PREVIEW_LIMIT = 100
"""Previews queued at most: more are dropped (they only inform), never counted as load."""


@dataclasses.dataclass(frozen=True, slots=True)
class Work:
    """One piece of work: run a remediation, or its on_failure steps."""

    kind: str  # RUN, CLAIMED, ON_FAILURE or PREVIEW
    rem: Remediation

    @property
    def key(self) -> tuple[str, int]:
        """What makes two pieces of work the same."""
        return (self.kind, self.rem.id)


class WorkQueue:
    """Work ready to claim, each piece at most once in flight; bounded by ``max_queue``."""

    def __init__(self, metrics: Metrics, max_queue: int) -> None:
        self.metrics = metrics
        self.max_queue = max_queue
        # Claimed work first: it holds a max_concurrent slot and its target's lock.
        self._queue: asyncio.PriorityQueue[tuple[int, int, Work]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._inflight: set[tuple[str, int]] = set()  # queued, taken or stepping aside
        self._aside: set[tuple[str, int]] = set()  # waiting for a lock or a slot, back soon
        # Waiting for a max_concurrent slot, oldest first: back when one frees here,
        # and the oldest every poll (one timer for all: waiting costs one claim a poll).
        self._slot_waits: dict[tuple[str, int], Work] = {}
        self._slot_poll: asyncio.TimerHandle | None = None
        self._recalled: set[tuple[str, int]] = set()  # tried its slot: keeps its place
        self._taken = 0
        self._previews = 0  # queued PREVIEW work: behind everything, not load
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def depth(self) -> int:
        """Work queued and not yet taken by a worker (dry-run previews aside)."""
        return self._queue.qsize() - self._previews

    @property
    def overloaded(self) -> bool:
        """Whether new work would exceed the bound (ingest then answers 503)."""
        return self.depth + len(self._slot_waits) >= self.max_queue

    def put(self, kind: str, remediations: Iterable[Remediation], *, first: bool = False) -> None:
        """Queue work, unless the same work is already in flight here.

        Claimed work, and with ``first`` work whose slot has come, goes ahead.
        """
        for rem in remediations:
            work = Work(kind, rem)
            if work.key in self._inflight:
                continue  # already queued or running here (a sweep found it again)
            if kind == PREVIEW:
                if self._previews >= PREVIEW_LIMIT:
                    continue  # a preview only informs: dropped rather than delay live work
                self._previews += 1
            self._inflight.add(work.key)
            ahead = first or kind == CLAIMED
            rank = 2 if kind == PREVIEW else 0 if ahead else 1
            self._queue.put_nowait((rank, next(self._order), work))
            self._idle.clear()
        self.metrics.queue_depth.set(self.depth)

    async def take(self) -> Work:
        """The next piece of work; call :meth:`done` when it is finished."""
        _, _, work = await self._queue.get()
        self._taken += 1
        if work.kind == PREVIEW:
            self._previews -= 1
        self.metrics.queue_depth.set(self.depth)
        return work

    def done(self, work: Work) -> None:
        """A taken piece of work is finished (or stepped aside)."""
        if work.key not in self._aside:
            self._inflight.discard(work.key)
            self._recalled.discard(work.key)
        self._taken -= 1
        self._settle()

    def step_aside(self, work: Work, delay: float) -> None:
        """Take the work back after ``delay`` seconds (its target's lock is held)."""
        self._aside.add(work.key)
        asyncio.get_running_loop().call_later(delay, self._back, work)

    def wait_for_slot(self, work: Work, poll: float) -> None:
        """Hold work until a ``max_concurrent`` slot frees here, or ``poll`` seconds pass.

        The poll finds slots that other replicas free.
        """
        self._aside.add(work.key)
        self._slot_waits[work.key] = work
        if work.key in self._recalled:  # it was the oldest and found no slot: still the oldest
            self._recalled.discard(work.key)
            self._slot_waits = {work.key: work} | self._slot_waits
        if self._slot_poll is None:
            self._slot_poll = asyncio.get_running_loop().call_later(poll, self._poll, poll)

    @property
    def slot_waiters(self) -> int:
        """Work waiting for a ``max_concurrent`` slot."""
        return len(self._slot_waits)

    def slot_freed(self) -> None:
        """A slot has freed here: the work that has waited longest goes first."""
        if self._slot_waits:
            self._recall(next(iter(self._slot_waits)))

    def _poll(self, poll: float) -> None:
        self._slot_poll = None
        self.slot_freed()  # perhaps another replica freed one
        if self._slot_waits and not self._closed:
            self._slot_poll = asyncio.get_running_loop().call_later(poll, self._poll, poll)

    def _recall(self, key: tuple[str, int]) -> None:
        work = self._slot_waits.pop(key, None)
        if work is not None:
            self._recalled.add(key)
            self._back(work, first=True)

    def close(self) -> None:
        """Take nothing back any more (shutting down)."""
        self._closed = True

    def drain(self, kind: str) -> list[Remediation]:
        """Take every queued piece of work of ``kind`` out at once (shutting down)."""
        taken: list[Remediation] = []
        kept: list[tuple[int, int, Work]] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item[2].kind == kind:
                taken.append(item[2].rem)
            else:
                kept.append(item)
        for item in kept:
            self._queue.put_nowait(item)
        for rem in taken:
            self._inflight.discard((kind, rem.id))
        if kind == PREVIEW:
            self._previews -= len(taken)
        self.metrics.queue_depth.set(self.depth)
        self._settle()
        return taken

    async def join(self) -> None:
        """Wait until every piece of work is done, lock waits included."""
        while self._busy:
            self._idle.clear()
            await self._idle.wait()

    @property
    def _busy(self) -> bool:
        return bool(self._queue.qsize() or self._taken or self._aside)

    def _back(self, work: Work, *, first: bool = False) -> None:
        self._aside.discard(work.key)
        self._inflight.discard(work.key)
        if not self._closed:
            self.put(work.kind, [work.rem], first=first)
        self._settle()

    def _settle(self) -> None:
        if not self._busy:
            self._idle.set()

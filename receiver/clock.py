"""Time as the service sees it: the wall clock live, a simulated one in replay and tests."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Where the pipeline reads the time."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real UTC wall clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)


async def woken(event: asyncio.Event, within: float) -> bool:
    """Wait for ``event`` at most ``within`` seconds; whether it was set.

    Unlike ``asyncio.wait_for`` on Python 3.11, a cancellation that arrives as
    the event is set is never lost, so a loop built on this stops when told.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            await event.wait()
    return event.is_set()


def timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, the one time format of the store and the API."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"  # -"+00:00"


class SimulatedClock:
    """A clock that stands still until told to move: replay's simulated time."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        """The simulated time."""
        return self.current

    def set(self, moment: datetime) -> None:
        """Move to ``moment``; time never goes backwards."""
        self.current = max(self.current, moment)

"""Time as the service sees it: the wall clock live, a simulated one in replay and tests."""

from __future__ import annotations

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


def timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, the one time format of the store and the API."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


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

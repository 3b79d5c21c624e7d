"""Ingest adapters: turn a sender's payload into :class:`rules.Alert` values."""

from __future__ import annotations


class PayloadError(ValueError):
    """A malformed payload; ``field`` names where (``alerts[3].startsAt``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class Overloaded(Exception):
    """The work queue is over its bound: answer 503 so the sender retries later."""

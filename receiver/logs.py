"""Structured JSON logs with named events; a request id bound per HTTP request."""

from __future__ import annotations

import logging
import sys
import time

import structlog


def configure(level: str = "info", json_output: bool = True) -> None:
    """Set up structlog for the process: JSON lines on stderr, contextvars merged in."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def warn_no_auth(host: str, port: int) -> None:
    """Say at start that nothing asks for a token, and why that is still safe."""
    structlog.get_logger("remedy.auth").warning(
        "auth.disabled",
        message="no auth section in the config: nothing asks for a token, "
        "so remedy listens on loopback only",
        listen=f"{host}:{port}",
    )


def warn_preflight(finding: str) -> None:
    """Say at start what ``remedy check`` would have reported about the config and rules."""
    structlog.get_logger("remedy.config").warning("config.problem", message=finding)


class Throttle:
    """Lets an event through at most once per interval, and counts the ones it held back.

    For what a flood repeats (a failing accept(), a connection closed to make
    room): the first occurrence is logged at once, the next one an interval
    later with how many came in between; the metrics keep the exact count.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = float("-inf")
        self._held = 0

    def ready(self) -> int | None:
        """How many were held back since the last one let through; ``None``: hold this one."""
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return None
        self._next = now + self.interval
        held, self._held = self._held, 0
        return held

"""Structured JSON logs with named events; a request id bound per HTTP request."""

from __future__ import annotations

import logging
import sys

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

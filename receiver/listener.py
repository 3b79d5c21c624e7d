"""The HTTP listener of ``remedy serve``: its socket, a bound on connections, slow clients.

Idle and slow clients must not hold what the webhook needs. Under a 1,024
open-file limit, 1,100 idle connections used to take every descriptor:
accept() failed over and over (each failure logged with a traceback) and a
webhook waited until the idle connections timed out. So:

* At start the open-file limit is raised to its hard maximum, and the
  connections are bounded below it (``http.max_connections``), leaving
  descriptors for the store, the clients to backends and one accept batch.
* Past the bound, the connection idle the longest — one without a request in
  progress — is closed to make room for the new one. Only when every
  connection is in the middle of a request is the newcomer refused (503).
  A limit that merely stopped accepting would leave the webhook queued
  behind the idle connections.
* A new connection has ``http.header_timeout`` to send its first request's
  headers; a kept-alive one ``http.idle_timeout`` for the next (aiohttp's
  keep-alive timer); a body must arrive within ``http.body_timeout``
  (:func:`receiver.middleware.read_body`).
* A failing accept() is logged at most once per interval and counted.

SIGTERM and SIGINT stop it gracefully: stop accepting, finish in-flight
requests, then close the app (running actions get ``shutdown_grace``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import gc
import os
import resource
import signal
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from receiver.config import Config
from receiver.logs import Throttle
from receiver.metrics import Metrics

log = structlog.get_logger("remedy.http")

ACCEPT_BATCH = 128
"""The listen backlog, which is also how many connections one accept round may take."""

LOG_INTERVAL = 10.0
"""Seconds between two log lines about the same flood (the metrics count every one)."""

CONNECTION_CAP = 4096
"""The most connections the derived default allows, whatever the file limit: each costs memory."""

_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: 34\r\n"
    b"\r\n"
    b'{"error": "too many connections"}\n'
)


def raise_file_limit() -> int:
    """Raise the soft open-file limit to the hard one; the soft limit now in force.

    An unlimited hard limit is left alone (Linux refuses to set it); the
    derived connection bound then applies its cap.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if resource.RLIM_INFINITY not in (hard, soft) and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return CONNECTION_CAP * 4 if soft == resource.RLIM_INFINITY else soft


def default_max_connections(file_limit: int) -> int:
    """The connection bound for an open-file limit: what is left after a reserve.

    The reserve — a quarter of the limit, at least 256 — covers the store's
    files, the clients to backends (HTTP, Docker, Kubernetes, AWS) and one
    accept batch taken before the oldest idle connections are closed. 1,024
    files allow 768 connections; never more than :data:`CONNECTION_CAP`.
    """
    reserve = max(file_limit // 4, 2 * ACCEPT_BATCH)
    return max(16, min(CONNECTION_CAP, file_limit - reserve))


class ConnectionLimit:
    """The open connections, the idle ones oldest first, and what to close at the bound.

    A connection is idle from the moment it opens until its request's headers
    are in, and again once its handler returned. The handler's response may
    still be draining then, but a connection that just went idle is the last
    one chosen: only the longest idle is closed.
    """

    def __init__(self, maximum: int, header_timeout: float, metrics: Metrics) -> None:
        self.maximum = maximum
        self._header_timeout = header_timeout
        self._metrics = metrics
        # Open connections, with the timer that closes one still waiting for its first request.
        self._open: dict[Connection, asyncio.TimerHandle | None] = {}
        self._idle: collections.OrderedDict[Connection, None] = collections.OrderedDict()
        self._throttles: dict[str, Throttle] = {}

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, conn: Connection) -> None:
        """A connection was accepted: make room for it, or refuse it."""
        loop = asyncio.get_running_loop()
        self._open[conn] = loop.call_later(self._header_timeout, self._shed, conn, "header_timeout")
        self._idle[conn] = None
        if len(self._open) <= self.maximum:
            return
        oldest = next(iter(self._idle))
        if oldest is conn:  # nothing else is idle: every other connection is mid-request
            self._shed(conn, "refused")
        else:
            self._shed(oldest, "limit")

    def closed(self, conn: Connection) -> None:
        """A connection is gone (or being closed); forget it."""
        timer = self._open.pop(conn, None)
        if timer is not None:
            timer.cancel()
        self._idle.pop(conn, None)

    def busy(self, conn: Connection) -> None:
        """A request's headers arrived on ``conn``: it is not idle until its handler returns."""
        if conn not in self._open:
            return
        timer = self._open[conn]
        if timer is not None:
            timer.cancel()
            self._open[conn] = None
        self._idle.pop(conn, None)

    def idle(self, conn: Connection) -> None:
        """The handler returned: ``conn`` is the newest idle connection."""
        if conn in self._open:
            self._idle[conn] = None

    def _shed(self, conn: Connection, reason: str) -> None:
        self.closed(conn)
        if reason == "refused" and conn.transport is not None:
            conn.transport.write(_REFUSED)
        conn.force_close()
        self._metrics.http_connections_closed.labels(reason).inc()
        held = self._throttles.setdefault(reason, Throttle(LOG_INTERVAL)).ready()
        if held is not None:
            log.warning(
                "http.connection_closed",
                reason=reason,
                also_since_last=held,
                connections=len(self._open),
                max_connections=self.maximum,
            )


class Connection(web.RequestHandler):
    """aiohttp's connection handler, reporting its opening and closing to the limit."""

    __slots__ = ("limit",)

    def __init__(self, manager: web.Server, limit: ConnectionLimit, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.limit = limit

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.limit.opened(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.limit.closed(self)
        super().connection_lost(exc)


@web.middleware
async def track_requests(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    """Mark the connection busy while its request is handled (a no-op outside ``serve``)."""
    conn = request.protocol
    if not isinstance(conn, Connection):
        response: web.StreamResponse = await handler(request)
        return response
    conn.limit.busy(conn)
    try:
        response = await handler(request)
        return response
    finally:
        conn.limit.idle(conn)


class AcceptErrors:
    """The event loop's exception handler: a failing accept() is one line per interval.

    asyncio reports each failed accept() with a traceback, and on Linux
    retries at once for every connection in the backlog: one out-of-files
    episode wrote hundreds of thousands of them. Anything else goes to the
    default handler.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._throttle = Throttle(LOG_INTERVAL)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not (
            isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCES and "socket" in context
        ):
            loop.default_exception_handler(context)
            return
        self._metrics.http_accept_errors.inc()
        held = self._throttle.ready()
        if held is not None:
            log.error(
                "http.accept_failed",
                error=os.strerror(exc.errno or 0),
                also_since_last=held,
                hint="raise the open-file limit or lower http.max_connections",
            )


class _Site(web.BaseSite):
    """A TCP site whose connections are :class:`Connection` handlers."""

    __slots__ = ("_factory", "_host", "_port")

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, factory: Callable[[], Connection]
    ) -> None:
        super().__init__(runner, backlog=ACCEPT_BATCH)
        self._host = host
        self._port = port
        self._factory = factory

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory, self._host, self._port, backlog=self._backlog
        )


HANDLER_ARGS: dict[str, Any] = {
    # Bodies are read as sent; the webhooks undo gzip and deflate themselves, so a
    # coding nobody can read is a JSON 415 from the handler, not aiohttp's plain text.
    "auto_decompress": False,
}
"""How every connection's handler reads requests, in tests (the app's) and in serve."""


def serve(app: web.Application, config: Config, metrics: Metrics) -> None:
    """Serve ``app`` until SIGTERM or SIGINT; ``OSError`` when the address cannot be bound."""
    file_limit = raise_file_limit()
    max_connections = config.http.max_connections or default_max_connections(file_limit)
    asyncio.run(_serve(app, config, metrics, file_limit, max_connections))


async def _serve(
    app: web.Application, config: Config, metrics: Metrics, file_limit: int, max_connections: int
) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(AcceptErrors(metrics))
    limit = ConnectionLimit(max_connections, config.http.header_timeout, metrics)
    metrics.http_connections.set_function(limit.__len__)
    handler_args: dict[str, Any] = {
        **HANDLER_ARGS,
        "access_log": None,
        "keepalive_timeout": config.http.idle_timeout,
    }
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before start-up: a stop during it counts
        loop.add_signal_handler(signum, stopping.set)
    runner = web.AppRunner(app, shutdown_timeout=config.shutdown_grace, **handler_args)
    await runner.setup()
    try:
        server = runner.server
        assert server is not None  # set by setup()

        def connection() -> Connection:
            return Connection(server, limit, loop=loop, **handler_args)

        await _Site(runner, config.host, config.port, connection).start()
        # What start-up made (modules, rules, clients) lives as long as the process: out
        # of the collector's full passes, which would otherwise stop the loop for 50-75 ms
        # every few seconds under load (p99 from alert to action 130 ms -> 24 ms).
        gc.collect()
        gc.freeze()
        log.info(
            "http.listening",
            listen=f"{config.host}:{config.port}",
            open_files=file_limit,
            max_connections=max_connections,
            header_timeout=config.http.header_timeout,
            body_timeout=config.http.body_timeout,
            idle_timeout=config.http.idle_timeout,
        )
        await stopping.wait()
    finally:
        await runner.cleanup()

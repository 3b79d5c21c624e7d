"""Cross-cutting HTTP concerns: request ids and timing, auth, and one error mapping.

Domain errors become HTTP answers in exactly one place, always as JSON with a
reason, so every client — Alertmanager, SNS, an operator's curl — reads the
same shape.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import itertools
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from receiver.auth import Access, AuthError
from receiver.ingest import Overloaded, PayloadError
from receiver.service import SERVICE
from receiver.store.base import NotFound, StoreCorrupt, StoreUnavailable

ACTOR = web.RequestKey("actor", str)
"""Who made the request: a token's name, ``anonymous``, or ``system`` when auth is off."""

_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)
# A caller's request id is kept when it is short printable ASCII: it is echoed in a
# header and bound to every log line of the request.
_CALLER_ID = re.compile(r"[!-~]{1,128}", re.ASCII)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("remedy.http")


def access(level: Access) -> Callable[[Handler], Handler]:
    """Declare who may call a handler; the auth middleware enforces it."""

    def mark(handler: Handler) -> Handler:
        handler.remedy_access = level  # type: ignore[attr-defined]  # read by auth_middleware
        return handler

    return mark


def webhook(source: str) -> Callable[[Handler], Handler]:
    """Declare a sender's endpoint: webhook auth, and its refusals counted under ``source``.

    Every refusal of a delivery (auth, size, encoding, a malformed field) is
    counted in ``remedy_webhook_rejected_total{source, reason}`` where it is
    mapped to HTTP, so no path can forget to count one or count it twice.
    """

    def mark(handler: Handler) -> Handler:
        handler.remedy_access = "webhook"  # type: ignore[attr-defined]  # read by authenticate
        handler.remedy_source = source  # type: ignore[attr-defined]  # read by _mapped
        return handler

    return mark


def error_body(status: int, message: str, **extra: Any) -> web.Response:
    """The one JSON error shape: ``{"error": message, ...}``."""
    return web.json_response({"error": message, **extra}, status=status)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to the logs, time the request, and map errors to JSON."""
    request_id = request.headers.get("X-Request-Id", "")
    if not _CALLER_ID.fullmatch(request_id):
        request_id = f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await _mapped(request, handler)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        request.app[SERVICE].metrics.http_requests.labels(
            request.method, name, str(status)
        ).observe(time.perf_counter() - started)
        structlog.contextvars.unbind_contextvars("request_id")


async def _mapped(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PayloadError as exc:
        _count_rejected(request, exc.reason)
        return error_body(exc.status, exc.message, field=exc.field or None)
    except AuthError as exc:
        _count_rejected(request, "unauthorized")
        response = error_body(exc.status, str(exc))
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = exc.challenge
        return response
    except StoreUnavailable as exc:
        log.error("store.unavailable", error=str(exc))
        return error_body(503, "storage unavailable, retry later")
    except Overloaded as exc:
        log.warning("webhook.overloaded", detail=str(exc))
        response = error_body(503, "overloaded, retry later")
        response.headers["Retry-After"] = "5"
        return response
    except NotFound as exc:
        return error_body(404, str(exc))
    except StoreCorrupt as exc:
        log.error("store.corrupt", error=str(exc))
        return error_body(500, str(exc))
    except web.HTTPRequestEntityTooLarge:
        _count_rejected(request, "too_large")
        limit = request.app[SERVICE].config.max_body_bytes
        return error_body(413, f"request body over the limit of {limit} bytes", limit_bytes=limit)
    except web.HTTPRequestTimeout:
        timeout = request.app[SERVICE].config.http.body_timeout
        response = error_body(408, f"the request body did not arrive within {timeout:g}s")
        response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_body(exc.status, exc.reason)
    except Exception as exc:
        # A bug: the client still gets JSON and the request id to report it with.
        log.error(
            "http.internal_error", path=request.path, error_type=type(exc).__name__, exc_info=True
        )
        return error_body(500, "internal error; the request id names it in the logs")


def _count_rejected(request: web.Request, reason: str) -> None:
    """Count a refused delivery when the route is a sender's webhook (see :func:`webhook`)."""
    source = getattr(request.match_info.handler, "remedy_source", None)
    if source is not None:
        request.app[SERVICE].metrics.webhook_rejected.labels(source, reason).inc()


async def read_body(request: web.Request) -> bytes:
    """The request's body, whole, within ``http.body_timeout`` of starting to read it.

    A client sending it slower than that (a slowloris keeping a connection
    busy) gets a 408 and the connection is closed. aiohttp enforces the size
    limit (413) as the body arrives.
    """
    if request.content.is_eof():  # all of it arrived with the headers: nothing to wait for
        return await request.read()
    service = request.app[SERVICE]
    try:
        async with asyncio.timeout(service.config.http.body_timeout):
            return await request.read()
    except TimeoutError:
        service.metrics.http_connections_closed.labels("body_timeout").inc()
        raise web.HTTPRequestTimeout from None


@web.middleware
async def same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse what a browser is made to send from another site.

    A state-changing request is refused when the browser says it comes from
    another site: ``Sec-Fetch-Site`` other than ``same-origin`` or ``none``
    (a typed URL), or, from a browser too old to send that, an ``Origin``
    other than the ``Host`` it was sent to. Alertmanager, SNS and curl send
    neither. And without auth, remedy (which then listens on loopback only)
    answers only requests addressed to a loopback name: a page whose own
    name was rebound to 127.0.0.1 (DNS rebinding) gets nothing.
    """
    service = request.app[SERVICE]
    if not service.auth.enabled and not _loopback(request.host):
        return error_body(
            403, "without auth, remedy answers only on a loopback address", host=request.host
        )
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        site = request.headers.get("Sec-Fetch-Site")
        origin = request.headers.get("Origin")
        if site is not None:
            foreign = site not in ("same-origin", "none")
        else:
            foreign = origin is not None and (origin == "null" or _netloc(origin) != request.host)
        if foreign:
            return error_body(403, "cross-origin request refused", origin=origin)
    return await handler(request)


def _netloc(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


@functools.lru_cache(maxsize=64)
def _loopback(host: str) -> bool:
    """Whether a ``Host`` header names this machine: localhost, 127.0.0.0/8 or [::1]."""
    name = host.split("]", 1)[0].lstrip("[") if host.startswith("[") else host.rsplit(":", 1)[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check the credentials the handler's declared access level needs."""
    if request.match_info.http_exception is not None:
        return await handler(request)  # 404/405: nothing to protect, say so plainly
    level: Access = getattr(handler, "remedy_access", "operator")
    service = request.app[SERVICE]
    request[ACTOR] = service.auth.check(request, level)
    return await handler(request)

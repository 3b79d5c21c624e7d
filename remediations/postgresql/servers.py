"""The PostgreSQL servers remedy may touch, connecting to them, and asyncpg's errors.

A server is named by its DSN without a password
(``postgresql://remedy@orders-db:5432/postgres?sslmode=require``): that DSN
is what a rule's ``dsn`` param names, what ``backends.postgresql.servers``
lists, and what the audit log shows (its user redacted). The password comes
only from the config (``{env:}``/``{file:}``).

An action opens one connection for its run and closes it after: what it
does is rare, and a connection held between runs would itself count
against the server's ``max_connections``, the limit this backend exists to
relieve. The connection says ``application_name=remedy`` unless the DSN
names another.

Errors are translated by SQLSTATE: connection failures (class 08), too many
connections (53300) and other lack of resources (53), a server starting or
shutting down (57P01-57P03), serialization failures and deadlocks (40) and
an unreachable or slow server are temporary; a wrong password (28), a
missing database (3D000), a refusal (42501) and everything else are permanent.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import asyncpg

from remediations.base import ActionContext, ParamError, PermanentError, TemporaryError
from remediations.params import shown

SCHEMES = ("postgresql", "postgres")
DEFAULT_PORT = 5432
CONNECT_TIMEOUT = 10.0  # seconds to connect and authenticate
COMMAND_TIMEOUT = 30.0  # seconds for one statement
_TEMPORARY_CLASSES = ("08", "53", "40")
_TEMPORARY_STATES = ("57P01", "57P02", "57P03", "55P03")


def server_dsn(value: str) -> str:
    """The DSN in its one spelling (``postgresql://USER@HOST:PORT/DB?OPTIONS``).

    Raises ``ValueError`` saying what is wrong: a password, another scheme, no host.
    """
    try:
        parts = urlsplit(value)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ValueError(f"not a PostgreSQL URL: {exc}") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ValueError("expected postgresql://USER@HOST[:PORT]/DATABASE")
    if parts.password is not None or any(
        key.lower() in ("password", "passfile") for key, _ in parse_qsl(parts.query)
    ):
        raise ValueError(
            "a password in the DSN would be shown wherever the DSN is: give it in"
            " backends.postgresql as password: {env: VAR} or {file: PATH}"
        )
    if parts.fragment:
        raise ValueError("expected no #fragment")
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    user = f"{parts.username}@" if parts.username else ""
    query = f"?{parts.query}" if parts.query else ""
    return f"postgresql://{user}{host}:{port}{parts.path.rstrip('/')}{query}"


def parse_dsn(value: str, field: str = "dsn") -> str:
    """A rule's ``dsn`` param, as :func:`server_dsn` spells it; :class:`ParamError` if wrong."""
    try:
        return server_dsn(value)
    except ValueError as exc:
        raise ParamError(field, f"{exc} (got {shown(value)!r})") from None


def host_port(dsn: str) -> str:
    """``orders-db:5432``: the server of a DSN, without user, database or options."""
    return urlsplit(dsn).netloc.rpartition("@")[2]


@dataclasses.dataclass(frozen=True, slots=True)
class PostgresServer:
    """One allowed server: its DSN and its password (never shown)."""

    dsn: str
    password: str | None = dataclasses.field(default=None, repr=False)


class PostgresServers:
    """The servers of ``backends.postgresql``."""

    def __init__(self, servers: Mapping[str, PostgresServer]) -> None:
        self._servers = dict(servers)

    @contextlib.asynccontextmanager
    async def connect(self, dsn: str) -> AsyncIterator[Any]:
        """A connection to ``dsn`` for one run, closed after; errors translated."""
        server = self._servers.get(dsn)
        what = f"postgresql {host_port(dsn)}"
        if server is None:
            raise PermanentError(f"{what} is not in backends.postgresql.servers")
        with translated(what, server.password):
            settings = {} if "application_name=" in dsn else {"application_name": "remedy"}
            conn = await asyncpg.connect(
                dsn,
                password=server.password,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
                server_settings=settings,
            )
        try:
            with translated(what, server.password):
                yield conn
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)


def servers(ctx: ActionContext) -> PostgresServers:
    """The service's PostgreSQL servers; a permanent error when the backend is not set."""
    if ctx.postgresql is None:
        raise PermanentError("backends.postgresql is not configured in remedy.yaml")
    return ctx.postgresql


def is_temporary(sqlstate: str) -> bool:
    """Whether a SQLSTATE may clear by itself: connections, resources, restarts, conflicts."""
    return sqlstate[:2] in _TEMPORARY_CLASSES or sqlstate in _TEMPORARY_STATES


@contextlib.contextmanager
def translated(what: str, secret: str | None = None) -> Iterator[None]:
    """Run asyncpg calls, turning its errors into permanent or temporary ones.

    ``what`` names the server for the audit log; ``secret`` (the password) is
    cut out of any message, should a server or driver ever echo it.
    """

    def said(exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        return text.replace(secret, "<redacted>") if secret else text

    try:
        yield
    except asyncpg.PostgresError as exc:
        state = str(getattr(exc, "sqlstate", "") or "")
        message = f"{what}: {said(exc)} (SQLSTATE {state or 'unknown'})"
        if is_temporary(state):
            raise TemporaryError(message) from None
        raise PermanentError(message) from None
    except (OSError, TimeoutError) as exc:
        reason = said(exc) if isinstance(exc, OSError) else "timed out"
        raise TemporaryError(f"{what}: cannot reach the server ({reason})") from None
    except asyncpg.InterfaceError as exc:
        raise PermanentError(f"{what}: {said(exc)}") from None

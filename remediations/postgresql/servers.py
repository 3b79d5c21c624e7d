"""The PostgreSQL servers remedy may touch, connecting to them, and asyncpg's errors.

A server is named by its DSN without a password
(``postgresql://remedy@orders-db:5432/postgres?sslmode=require``): that DSN
is what a rule's ``dsn`` param names and what ``backends.postgresql.servers``
lists. The audit log shows it in the step's params with its user redacted,
as it shows every URL's userinfo, and in results as ``HOST:PORT``. The
password comes only from the config (``{env:}``/``{file:}``), never from the
DSN (nor ``sslpassword=``, the client key's).

An action opens one connection for its run and closes it after: what it
does is rare, and a connection held between runs would itself count
against the server's ``max_connections``, the limit this backend exists to
relieve. The connection says ``application_name=remedy`` unless the DSN
names another.

Errors are translated by SQLSTATE: connection failures (class 08), too many
connections (53300) and other lack of resources (53), a server starting or
shutting down (57P01-57P03), serialization failures and deadlocks (40) and
an unreachable or slow server are temporary; a wrong password (28), a
missing database (3D000), a refusal (42501), an untrusted TLS certificate
and everything else are permanent.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import asyncpg

from remediations.address import Form, Server, certificate_refused, host_port, param, said
from remediations.base import ActionContext, PermanentError, TemporaryError

POSTGRESQL = Form(
    noun="DSN",
    schemes={"postgresql": "postgresql", "postgres": "postgresql"},
    default_port=5432,
    shape="postgresql://USER@HOST[:PORT]/DATABASE",
    backend="backends.postgresql",
)
CONNECT_TIMEOUT = 10.0  # seconds to connect and authenticate
COMMAND_TIMEOUT = 30.0  # seconds for one statement
_SECRET_OPTIONS = ("password", "passfile", "sslpassword")  # a secret, or where one is read
_TEMPORARY_CLASSES = ("08", "53", "40")
_TEMPORARY_STATES = ("57P01", "57P02", "57P03", "55P03")


def server_dsn(value: str) -> str:
    """The DSN in its one spelling (``postgresql://USER@HOST:PORT/DB?OPTIONS``).

    Raises ``ValueError`` saying what is wrong: a password (or ``sslpassword``,
    the client key's), another scheme, no host.
    """
    parts = POSTGRESQL.split(value)
    for key, _ in parse_qsl(parts.query):
        if key.lower() in _SECRET_OPTIONS:
            raise ValueError(POSTGRESQL.refused(f"{key.lower()}="))
    if parts.fragment:
        raise ValueError("expected no #fragment")
    query = f"?{parts.query}" if parts.query else ""
    return f"{POSTGRESQL.origin(parts)}{parts.path.rstrip('/')}{query}"


def parse_dsn(value: str) -> str:
    """A rule's ``dsn`` param, as :func:`server_dsn` spells it; :class:`ParamError` if wrong."""
    return param(server_dsn, value, "dsn")


class PostgresServers:
    """The servers of ``backends.postgresql``."""

    def __init__(self, servers: Iterable[Server]) -> None:
        self._servers = {server.address: server for server in servers}

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
    try:
        yield
    except asyncpg.PostgresError as exc:
        state = str(getattr(exc, "sqlstate", "") or "")
        message = f"{what}: {said(exc, secret)} (SQLSTATE {state or 'unknown'})"
        if is_temporary(state):
            raise TemporaryError(message) from None
        raise PermanentError(message) from None
    except TimeoutError:  # before OSError: its subclass, and it says nothing itself
        raise TemporaryError(f"{what}: cannot reach the server (timed out)") from None
    except OSError as exc:
        if certificate_refused(exc):
            raise PermanentError(
                f"{what}: its TLS certificate is not trusted: {said(exc, secret)}"
            ) from None
        raise TemporaryError(f"{what}: cannot reach the server ({said(exc, secret)})") from None
    except asyncpg.InterfaceError as exc:
        raise PermanentError(f"{what}: {said(exc, secret)}") from None

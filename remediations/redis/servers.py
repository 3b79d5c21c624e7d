"""The Redis servers remedy may touch, their clients, and redis-py's errors translated once.

A server is named by its URL without a password (``redis://cache-1:6379``,
``rediss://remedy@cache-2:6380``): that URL is what a rule's ``url`` param
names and what ``backends.redis.servers`` lists. The audit log shows it in
the step's params with its user redacted, as it shows every URL's userinfo,
and in results as ``HOST:PORT``. The password comes only from the config
(``{env:}``/``{file:}``), so it is in no rule, param, result or error.

Each (server, database) has one client, and so one connection pool, for the
process lifetime. A pool per database rather than ``SELECT`` on a shared
one: a connection that reconnects selects its pool's database again, so a
dropped connection in the middle of a run can never send ``UNLINK`` to
another database than the one the rule names.

Errors: a refused or dropped connection, a timeout, a server still loading
its data and one busy running a script (BUSY) are temporary; a wrong
password, an ACL refusal (NOPERM), an untrusted TLS certificate, a
read-only replica and any other error reply are permanent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

import redis.asyncio
import redis.exceptions

from remediations.address import Form, Server, certificate_refused, host_port, param, said
from remediations.base import ActionContext, ParamError, PermanentError, TemporaryError

REDIS = Form(
    noun="URL",
    schemes={"redis": "redis", "rediss": "rediss"},
    default_port=6379,
    shape="redis://[USER@]HOST[:PORT] or rediss://...",
    backend="backends.redis",
)
CONNECT_TIMEOUT = 5.0  # seconds to connect (and authenticate)
COMMAND_TIMEOUT = 10.0  # seconds for one command's answer
POOL_SIZE = 4  # connections per (server, database); a command holds one only while it runs
POOL_WAIT = COMMAND_TIMEOUT  # seconds a command waits for a free connection


def server_url(value: str) -> str:
    """The URL in its one spelling (``redis://HOST:PORT``, ``rediss://USER@HOST:PORT``).

    Raises ``ValueError`` with what is wrong: a password, a database path or
    query (the database is the action's ``db``), another scheme.
    """
    parts = REDIS.split(value)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("expected no path or query: the database is the action's db")
    return REDIS.origin(parts)


def parse_url(value: str) -> str:
    """A rule's ``url`` param, as :func:`server_url` spells it; :class:`ParamError` if wrong."""
    return param(server_url, value, "url")


def parse_db(value: object, field: str = "db") -> int:
    """A database number (Redis has 16 by default, ``databases`` in redis.conf)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParamError(field, f"expected a database number (0, 1, ...), got {value!r}")
    return value


def where(url: str, db: int) -> str:
    """``redis cache-1:6379 db 2``: the server and database, for messages."""
    return f"redis {host_port(url)} db {db}"


class RedisServers:
    """The servers of ``backends.redis`` and their clients, opened on first use.

    ``allow_flush`` is ``backends.redis.allow_flush``: without it ``redis.flushdb``
    refuses to run, whichever way it was reached.
    """

    def __init__(self, servers: Iterable[Server], *, allow_flush: bool = False) -> None:
        self._servers = {server.address: server for server in servers}
        self._clients: dict[tuple[str, int], redis.asyncio.Redis] = {}
        self.allow_flush = allow_flush

    def client(self, url: str, db: int) -> redis.asyncio.Redis:
        """The client of ``url``'s database ``db``; a permanent error for an unknown server."""
        server = self._servers.get(url)
        if server is None:
            raise PermanentError(f"{where(url, db)} is not in backends.redis.servers")
        key = (url, db)
        if key not in self._clients:
            parts = urlsplit(url)
            # A command waits for a free connection rather than failing as if
            # the server were down when more steps run at once than the pool holds.
            pool = redis.asyncio.BlockingConnectionPool(
                connection_class=(
                    redis.asyncio.SSLConnection
                    if parts.scheme == "rediss"
                    else redis.asyncio.Connection
                ),
                max_connections=POOL_SIZE,
                timeout=POOL_WAIT,
                host=parts.hostname or "",
                port=parts.port or REDIS.default_port,
                username=parts.username,
                password=server.password,
                db=db,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=COMMAND_TIMEOUT,
            )
            self._clients[key] = redis.asyncio.Redis.from_pool(pool)
        return self._clients[key]

    def password(self, url: str) -> str | None:
        """The server's password, for scrubbing messages; ``None`` without one."""
        server = self._servers.get(url)
        return server.password if server else None

    async def close(self) -> None:
        """Close every client and its pool (at shutdown), each even if another fails."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()


def servers(ctx: ActionContext) -> RedisServers:
    """The service's Redis servers; a permanent error when ``backends.redis`` is not set."""
    if ctx.redis is None:
        raise PermanentError("backends.redis is not configured in remedy.yaml")
    return ctx.redis


@contextlib.contextmanager
def translated(what: str, secret: str | None = None) -> Iterator[None]:
    """Run Redis commands, turning redis-py's errors into permanent or temporary ones.

    ``what`` names the server and database for the audit log; ``secret`` (the
    password) is cut out of any message, should a server ever echo it.
    """
    try:
        yield
    except redis.exceptions.AuthenticationError as exc:  # before ConnectionError: its subclass
        raise PermanentError(f"{what}: authentication failed: {said(exc, secret)}") from None
    except redis.exceptions.BusyLoadingError as exc:
        raise TemporaryError(
            f"{what}: the server is loading its data: {said(exc, secret)}"
        ) from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        if certificate_refused(exc):
            raise PermanentError(
                f"{what}: its TLS certificate is not trusted: {said(exc, secret)}"
            ) from None
        raise TemporaryError(f"{what}: cannot reach the server ({said(exc, secret)})") from None
    except redis.exceptions.NoPermissionError as exc:
        raise PermanentError(f"{what}: refused by the server's ACL: {said(exc, secret)}") from None
    except redis.exceptions.ResponseError as exc:
        if str(exc).startswith("BUSY"):  # a script or a function runs: it ends, or is killed
            raise TemporaryError(f"{what}: the server is busy: {said(exc, secret)}") from None
        raise PermanentError(f"{what}: {said(exc, secret)}") from None
    except redis.exceptions.RedisError as exc:
        raise PermanentError(f"{what}: {said(exc, secret)}") from None

"""The Redis servers remedy may touch, their clients, and redis-py's errors translated once.

A server is named by its URL without a password (``redis://cache-1:6379``,
``rediss://remedy@cache-2:6380``): that URL is what a rule's ``url`` param
names, what ``backends.redis.servers`` lists, and what the audit log shows.
The password comes only from the config (``{env:}``/``{file:}``), so it is
in no rule, param, result or error.

Each (server, database) has one client, and so one connection pool, for the
process lifetime. A pool per database rather than ``SELECT`` on a shared
one: a connection that reconnects selects its pool's database again, so a
dropped connection in the middle of a run can never send ``UNLINK`` to
another database than the one the rule names.

Errors: a refused or dropped connection, a timeout and a server still
loading its data are temporary; a wrong password, an ACL refusal (NOPERM),
a read-only replica and any other error reply are permanent.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

import redis.asyncio
import redis.exceptions

from remediations.base import ActionContext, ParamError, PermanentError, TemporaryError
from remediations.params import shown

SCHEMES = ("redis", "rediss")
DEFAULT_PORT = 6379
CONNECT_TIMEOUT = 5.0  # seconds to connect (and authenticate)
COMMAND_TIMEOUT = 10.0  # seconds for one command's answer
POOL_SIZE = 4  # connections per (server, database); an action uses one at a time


def server_url(value: str) -> str:
    """The URL in its one spelling (``redis://HOST:PORT``, ``rediss://USER@HOST:PORT``).

    Raises ``ValueError`` with what is wrong: a password, a database path or
    query (the database is the action's ``db``), another scheme.
    """
    try:
        parts = urlsplit(value)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ValueError(f"not a Redis URL: {exc}") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ValueError("expected redis://[USER@]HOST[:PORT] or rediss://...")
    if parts.password is not None:
        raise ValueError(
            "a password in the URL would be shown wherever the URL is: give it in"
            " backends.redis as password: {env: VAR} or {file: PATH}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("expected no path or query: the database is the action's db")
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}:{port}"


def parse_url(value: str, field: str = "url") -> str:
    """A rule's ``url`` param, as :func:`server_url` spells it; :class:`ParamError` if wrong."""
    try:
        return server_url(value)
    except ValueError as exc:
        raise ParamError(field, f"{exc} (got {shown(value)!r})") from None


def parse_db(value: object, field: str = "db") -> int:
    """A database number (Redis has 16 by default, ``databases`` in redis.conf)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParamError(field, f"expected a database number (0, 1, ...), got {value!r}")
    return value


def host_port(url: str) -> str:
    """``cache-1:6379``: the server of a URL, without scheme or user, for results."""
    return url.partition("://")[2].rpartition("@")[2]


def where(url: str, db: int) -> str:
    """``redis cache-1:6379 db 2``: the server and database, for messages."""
    return f"redis {host_port(url)} db {db}"


@dataclasses.dataclass(frozen=True, slots=True)
class RedisServer:
    """One allowed server: its URL and its password (never shown)."""

    url: str
    password: str | None = dataclasses.field(default=None, repr=False)


class RedisServers:
    """The servers of ``backends.redis`` and their clients, opened on first use."""

    def __init__(self, servers: Mapping[str, RedisServer]) -> None:
        self._servers = dict(servers)
        self._clients: dict[tuple[str, int], redis.asyncio.Redis] = {}

    def client(self, url: str, db: int) -> redis.asyncio.Redis:
        """The client of ``url``'s database ``db``; a permanent error for an unknown server."""
        server = self._servers.get(url)
        if server is None:
            raise PermanentError(f"{where(url, db)} is not in backends.redis.servers")
        key = (url, db)
        if key not in self._clients:
            parts = urlsplit(url)
            self._clients[key] = redis.asyncio.Redis(
                host=parts.hostname or "",
                port=parts.port or DEFAULT_PORT,
                username=parts.username,
                password=server.password,
                db=db,
                ssl=parts.scheme == "rediss",
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=COMMAND_TIMEOUT,
                max_connections=POOL_SIZE,
            )
        return self._clients[key]

    def password(self, url: str) -> str | None:
        """The server's password, for scrubbing messages; ``None`` without one."""
        server = self._servers.get(url)
        return server.password if server else None

    async def close(self) -> None:
        """Close every client and its pool (at shutdown)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
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

    def said(exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        return text.replace(secret, "<redacted>") if secret else text

    try:
        yield
    except redis.exceptions.AuthenticationError as exc:  # before ConnectionError: its subclass
        raise PermanentError(f"{what}: authentication failed: {said(exc)}") from None
    except redis.exceptions.BusyLoadingError as exc:
        raise TemporaryError(f"{what}: the server is loading its data: {said(exc)}") from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise TemporaryError(f"{what}: cannot reach the server ({said(exc)})") from None
    except TimeoutError:
        raise TemporaryError(f"{what}: the server did not answer in time") from None
    except redis.exceptions.NoPermissionError as exc:
        raise PermanentError(f"{what}: refused by the server's ACL: {said(exc)}") from None
    except redis.exceptions.RedisError as exc:
        raise PermanentError(f"{what}: {said(exc)}") from None

"""The machine's real Redis for the tests: two databases of its own, emptied before and after.

``REMEDY_TEST_REDIS`` names the server (default ``redis://127.0.0.1:6379``)
and ``REMEDY_TEST_REDIS_DB`` the first of the two databases the tests own
(default 13, and 14). Unreachable, the test is skipped, or fails under
``REMEDY_REQUIRE_ENGINES=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import redis.asyncio
import redis.exceptions

from remediations.address import Server
from remediations.redis.servers import RedisServers, server_url
from tests.support.engines import missing

SERVER = os.environ.get("REMEDY_TEST_REDIS", "redis://127.0.0.1:6379")
FIRST_DB = int(os.environ.get("REMEDY_TEST_REDIS_DB", "13"))


@dataclasses.dataclass
class RedisEngine:
    """The test's Redis: its URL, its two databases and a client on each."""

    url: str
    db: int
    other_db: int
    client: redis.asyncio.Redis
    other: redis.asyncio.Redis

    def servers(
        self, password: str | None = None, url: str | None = None, *, allow_flush: bool = True
    ) -> RedisServers:
        """remedy's view of this server, as ``backends.redis`` would configure it."""
        return RedisServers([Server(url or self.url, password)], allow_flush=allow_flush)

    async def fill(self, count: int, prefix: str, db: int | None = None) -> None:
        """``count`` keys ``PREFIX:N`` in ``db`` (the first by default)."""
        client = self.other if db == self.other_db else self.client
        async with client.pipeline(transaction=False) as pipe:
            for n in range(count):
                pipe.set(f"{prefix}:{n}", n)
            await pipe.execute()

    async def count(self, pattern: str = "*", db: int | None = None) -> int:
        """How many keys match ``pattern`` (SCAN: the test's own count, not the action's)."""
        client = self.other if db == self.other_db else self.client
        return len([key async for key in client.scan_iter(match=pattern, count=1000)])


@pytest.fixture(name="test_redis")
async def test_redis_fixture() -> AsyncIterator[RedisEngine]:
    """``test_redis``: the real server with the tests' two databases empty."""
    url = server_url(SERVER)
    client = redis.asyncio.Redis.from_url(SERVER, db=FIRST_DB)
    other = redis.asyncio.Redis.from_url(SERVER, db=FIRST_DB + 1)
    try:
        await client.ping()
    except (redis.exceptions.ConnectionError, OSError) as exc:
        await client.aclose()
        await other.aclose()
        missing(
            f"Redis is not reachable at {SERVER} ({exc}): install redis-server and start it"
            " (/etc/init.d/redis-server start, or redis-server --daemonize yes)"
        )
    try:
        await client.flushdb()
        await other.flushdb()
        yield RedisEngine(url, FIRST_DB, FIRST_DB + 1, client, other)
    finally:
        await client.flushdb()
        await other.flushdb()
        await client.aclose()
        await other.aclose()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CuttingProxy:
    """A TCP proxy in front of the real Redis that fails like a network, once, mid-run.

    It passes everything through until the client, having sent ``after``
    UNLINK commands, sends its next command: then it drops that connection
    and refuses every later one, so the run fails between two batches
    with keys already deleted.
    """

    def __init__(self, url: str, after: int = 1) -> None:
        target = urlsplit(url)
        self._target = (target.hostname or "127.0.0.1", target.port or 6379)
        self._after = after
        self._unlinks = 0
        self._writers: list[asyncio.StreamWriter] = []
        self.cut = False
        self.url = ""

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if self.cut:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers.append(up_writer)
        answers = asyncio.create_task(_copy(up_reader, writer))
        try:
            while data := await reader.read(65536):
                if self._unlinks >= self._after:
                    self.cut = True
                    break
                self._unlinks += data.upper().count(b"UNLINK")
                up_writer.write(data)
                await up_writer.drain()
        finally:
            answers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await answers
            up_writer.close()
            writer.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


@contextlib.asynccontextmanager
async def private_redis(directory: str) -> AsyncIterator[str]:
    """A redis-server of the test's own (its URL), for what would disturb the shared one.

    A script that never ends answers BUSY to everyone on the server after
    ``busy-reply-threshold`` (20 ms here).
    """
    port = closed_port()
    process = await asyncio.create_subprocess_exec(
        *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
        *("--appendonly", "no", "--dir", directory, "--busy-reply-threshold", "20"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    client = redis.asyncio.Redis(port=port)
    try:
        for _ in range(100):
            with contextlib.suppress(redis.exceptions.ConnectionError):
                await client.ping()
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"redis-server on port {port} did not start")
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.kill()  # a server running a script that never ends would not stop on SIGTERM
        await process.wait()
        await client.aclose()

"""The machine's real Redis for the tests: two databases of its own, emptied before and after.

``REMEDY_TEST_REDIS`` names the server (default ``redis://127.0.0.1:6379``)
and ``REMEDY_TEST_REDIS_DB`` the first of the two databases the tests own
(default 13, and 14). Unreachable, the test is skipped, or fails under
``REMEDY_REQUIRE_ENGINES=1``.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
import redis.exceptions

from remediations.redis.servers import RedisServer, RedisServers, server_url
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

    def servers(self, password: str | None = None, url: str | None = None) -> RedisServers:
        """remedy's view of this server, as ``backends.redis`` would configure it."""
        url = url or self.url
        return RedisServers({url: RedisServer(url, password)})

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

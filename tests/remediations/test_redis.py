"""The Redis actions through redis-py's asyncio client against the machine's real Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio
import redis.exceptions

from remediations import ActionContext, ParamError, PermanentError, TemporaryError
from remediations.address import Server
from remediations.redis.delete_keys import DeleteKeys
from remediations.redis.flushdb import FlushDb
from remediations.redis.servers import RedisServers
from tests.support.redis import CuttingProxy, RedisEngine, closed_port, private_redis
from tests.support.tls import untrusted_tls


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def ctx(test_redis: RedisEngine, http: aiohttp.ClientSession) -> AsyncIterator[ActionContext]:
    servers = test_redis.servers()
    yield ActionContext(http=http, redis=servers)
    await servers.close()


async def ten_thousand_keys(test_redis: RedisEngine) -> None:
    """10,000 keys, of which 3,000 are ``fares:*`` (the rest sessions and routes)."""
    await test_redis.fill(3000, "fares")
    await test_redis.fill(4000, "sessions")
    await test_redis.fill(3000, "routes")


async def test_delete_keys_stops_at_max_and_says_so(
    test_redis: RedisEngine, ctx: ActionContext
) -> None:
    await ten_thousand_keys(test_redis)
    action = DeleteKeys()
    params = action.parse(
        {"url": test_redis.url, "db": test_redis.db, "pattern": "fares:*", "max": 1000}
    )
    result = await action.run(params, ctx)
    assert result["deleted"] == 1000
    assert result["stopped_at_max"] is True
    assert (result["db"], result["pattern"], result["max"]) == (test_redis.db, "fares:*", 1000)
    assert await test_redis.count("fares:*") == 2000
    assert await test_redis.count("sessions:*") == 4000
    assert await test_redis.count("routes:*") == 3000


async def test_delete_keys_takes_every_match_below_max(
    test_redis: RedisEngine, ctx: ActionContext
) -> None:
    await ten_thousand_keys(test_redis)
    await test_redis.fill(50, "fares", db=test_redis.other_db)  # another database: untouched
    action = DeleteKeys()
    exactly = action.parse(
        {"url": test_redis.url, "db": test_redis.db, "pattern": "fares:1*", "max": 1111}
    )
    result = await action.run(exactly, ctx)  # fares:1, fares:10-19, 100-199, 1000-1999
    assert (result["deleted"], result["stopped_at_max"]) == (1111, False)
    rest = action.parse(
        {"url": test_redis.url, "db": test_redis.db, "pattern": "fares:*", "max": 5000}
    )
    result = await action.run(rest, ctx)
    assert (result["deleted"], result["stopped_at_max"]) == (3000 - 1111, False)
    assert await test_redis.count() == 7000
    assert await test_redis.count(db=test_redis.other_db) == 50


async def test_delete_keys_preview_counts_with_the_same_bounded_scan(
    test_redis: RedisEngine, ctx: ActionContext
) -> None:
    await ten_thousand_keys(test_redis)
    action = DeleteKeys()
    bounded = action.parse(
        {"url": test_redis.url, "db": test_redis.db, "pattern": "fares:*", "max": 1000}
    )
    preview = await action.preview(bounded, ctx)
    assert (preview["matching"], preview["stopped_at_max"]) == (1000, True)
    wide = action.parse(
        {"url": test_redis.url, "db": test_redis.db, "pattern": "fares:*", "max": 9000}
    )
    preview = await action.preview(wide, ctx)
    assert (preview["matching"], preview["stopped_at_max"]) == (3000, False)
    assert "deleted" not in preview
    assert await test_redis.count() == 10_000


async def test_flushdb_empties_one_database_only(
    test_redis: RedisEngine, ctx: ActionContext
) -> None:
    await test_redis.fill(120, "sessions")
    await test_redis.fill(7, "fares", db=test_redis.other_db)
    action = FlushDb()
    params = action.parse({"url": test_redis.url, "db": test_redis.db})
    assert (await action.preview(params, ctx))["keys"] == {"before": 120}
    assert await test_redis.count() == 120
    result = await action.run(params, ctx)
    assert result["keys"] == {"before": 120, "after": 0}
    assert await test_redis.count() == 0
    assert await test_redis.count(db=test_redis.other_db) == 7


async def test_flushdb_refuses_without_allow_flush_however_it_is_reached(
    test_redis: RedisEngine, http: aiohttp.ClientSession
) -> None:
    await test_redis.fill(12, "sessions")
    servers = test_redis.servers(allow_flush=False)
    ctx = ActionContext(http=http, redis=servers)
    action = FlushDb()
    params = action.parse({"url": test_redis.url, "db": test_redis.db})
    for attempt in (action.run, action.preview):
        with pytest.raises(PermanentError, match=r"set backends\.redis\.allow_flush: true"):
            await attempt(params, ctx)
    assert await test_redis.count() == 12
    await servers.close()


async def test_a_failure_after_deleting_keys_is_permanent_and_says_how_many(
    test_redis: RedisEngine, http: aiohttp.ClientSession
) -> None:
    # a retry would sweep again with a fresh max: the run's bound would be (retries + 1) x max
    await test_redis.fill(3000, "fares")
    async with CuttingProxy(test_redis.url, after=1) as proxy:
        servers = RedisServers([Server(proxy.url)])
        action = DeleteKeys()
        params = action.parse(
            {"url": proxy.url, "db": test_redis.db, "pattern": "fares:*", "max": 2500}
        )
        with pytest.raises(PermanentError) as caught:
            await action.run(params, ActionContext(http=http, redis=servers))
        await servers.close()
    assert proxy.cut
    deleted = 3000 - await test_redis.count("fares:*")
    assert 0 < deleted < 2500
    assert "cannot reach the server" in str(caught.value)
    assert str(caught.value).endswith(f"(after deleting {deleted} keys)")


async def test_a_failure_before_any_deletion_stays_temporary(
    test_redis: RedisEngine, http: aiohttp.ClientSession
) -> None:
    await test_redis.fill(3000, "fares")
    async with CuttingProxy(test_redis.url, after=0) as proxy:
        servers = RedisServers([Server(proxy.url)])
        action = DeleteKeys()
        params = action.parse(
            {"url": proxy.url, "db": test_redis.db, "pattern": "fares:*", "max": 2500}
        )
        with pytest.raises(TemporaryError, match="cannot reach the server"):
            await action.run(params, ActionContext(http=http, redis=servers))
        await servers.close()
    assert await test_redis.count("fares:*") == 3000


async def test_more_steps_at_once_than_the_pool_holds_wait_for_a_connection(
    test_redis: RedisEngine, ctx: ActionContext
) -> None:
    await test_redis.fill(600, "fares")
    action = DeleteKeys()
    params = action.parse(
        {"url": test_redis.url, "db": test_redis.db, "pattern": "fares:*", "max": 1000}
    )
    previews = await asyncio.gather(*(action.preview(params, ctx) for _ in range(12)))
    assert [p["matching"] for p in previews] == [600] * 12


@pytest.fixture
async def acl_user(test_redis: RedisEngine) -> AsyncIterator[tuple[str, str]]:
    """A Redis ACL user that may only SCAN and UNLINK keys under ``fares:``."""
    name, password = f"remedy-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await test_redis.client.acl_setuser(
        name,
        enabled=True,
        passwords=[f"+{password}"],
        reset_keys=True,
        keys=["fares:*"],
        categories=["-@all"],
        commands=["+scan", "+unlink", "+select"],
    )
    try:
        yield name, password
    finally:
        await test_redis.client.acl_deluser(name)


async def test_a_password_from_the_config_authenticates_and_never_shows(
    test_redis: RedisEngine, http: aiohttp.ClientSession, acl_user: tuple[str, str]
) -> None:
    name, password = acl_user
    await test_redis.fill(20, "fares")
    await test_redis.fill(5, "sessions")
    url = test_redis.url.replace("://", f"://{name}@")
    action = DeleteKeys()
    params = action.parse({"url": url, "db": test_redis.db, "pattern": "fares:*", "max": 100})

    servers = test_redis.servers(password, url=url)
    result = await action.run(params, ActionContext(http=http, redis=servers))
    assert result["deleted"] == 20
    assert password not in repr(result) and name not in str(result["server"])

    # what the ACL does not grant is a permanent failure, and deletes nothing
    sessions = action.parse({"url": url, "db": test_redis.db, "pattern": "sessions:*", "max": 100})
    with pytest.raises(PermanentError, match="refused by the server's ACL") as refused:
        await action.run(sessions, ActionContext(http=http, redis=servers))
    assert await test_redis.count("sessions:*") == 5
    await servers.close()

    wrong = test_redis.servers("not-" + password, url=url)
    with pytest.raises(PermanentError, match="authentication failed") as denied:
        await action.run(params, ActionContext(http=http, redis=wrong))
    await wrong.close()
    for error in (refused.value, denied.value):
        assert password not in str(error)
    assert repr(servers).count(password) == 0


async def test_an_unreachable_server_is_temporary(http: aiohttp.ClientSession) -> None:
    url = f"redis://127.0.0.1:{closed_port()}"
    servers = RedisServers([Server(url)])
    action = DeleteKeys()
    with pytest.raises(TemporaryError, match="cannot reach the server"):
        await action.run(
            action.parse({"url": url, "pattern": "x:*", "max": 1}),
            ActionContext(http=http, redis=servers),
        )
    await servers.close()


async def test_an_untrusted_certificate_is_permanent(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with untrusted_tls(tmp_path) as port:
        url = f"rediss://127.0.0.1:{port}"
        servers = RedisServers([Server(url)])
        action = DeleteKeys()
        with pytest.raises(PermanentError, match="TLS certificate is not trusted"):
            await action.run(
                action.parse({"url": url, "pattern": "x:*", "max": 1}),
                ActionContext(http=http, redis=servers),
            )
        await servers.close()


async def test_a_server_busy_running_a_script_is_temporary(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with private_redis(str(tmp_path)) as url:
        scripting = redis.asyncio.Redis.from_url(url)
        looping = asyncio.ensure_future(scripting.eval("while true do end", 0))
        await asyncio.sleep(0.2)
        servers = RedisServers([Server(url)])
        action = DeleteKeys()
        params = action.parse({"url": url, "pattern": "x:*", "max": 1})
        with pytest.raises(TemporaryError, match="the server is busy"):
            await action.preview(params, ActionContext(http=http, redis=servers))
        killer = redis.asyncio.Redis.from_url(url)
        await killer.script_kill()
        with pytest.raises(redis.exceptions.ResponseError):
            await looping
        for client in (killer, scripting):
            await client.aclose()
        await servers.close()


async def test_a_server_not_configured_is_refused(ctx: ActionContext) -> None:
    action = DeleteKeys()
    params = action.parse({"url": "redis://elsewhere:6379", "pattern": "x:*", "max": 1})
    with pytest.raises(PermanentError, match=r"elsewhere:6379 db 0 is not in backends\.redis"):
        await action.run(params, ctx)
    with pytest.raises(PermanentError, match=r"backends\.redis is not configured"):
        await action.run(params, dataclasses.replace(ctx, redis=None))


@pytest.mark.parametrize(
    ("action", "params", "field", "message"),
    [
        (
            DeleteKeys(),
            {"url": "redis://:s3cret@cache:6379", "pattern": "a:*", "max": 1},
            "url",
            "password",
        ),
        (DeleteKeys(), {"url": "redis://cache:6379/2", "pattern": "a:*", "max": 1}, "url", "db"),
        (DeleteKeys(), {"url": "http://cache:6379", "pattern": "a:*", "max": 1}, "url", "redis://"),
        (DeleteKeys(), {"url": "redis://cache", "pattern": "*", "max": 1}, "pattern", "flushdb"),
        (DeleteKeys(), {"url": "redis://cache", "pattern": "a:*"}, "max", "required"),
        (DeleteKeys(), {"url": "redis://cache", "pattern": "a:*", "max": 0}, "max", "at least 1"),
        (
            DeleteKeys(),
            {"url": "redis://cache", "pattern": "a:*", "max": 1, "db": -1},
            "db",
            "database",
        ),
        (
            DeleteKeys(),
            {"url": "redis://cache", "pattern": "a:*", "max": 1, "keys": 1},
            "keys",
            "unknown",
        ),
        (FlushDb(), {"url": "redis://cache"}, "db", "required"),
        # a password holding what ends a userinfo for urlsplit: refused, never quoted
        *(
            (FlushDb(), {"url": url, "db": 0}, "url", "password")
            for url in (
                "redis://:s3cret/x@cache:6379",
                "redis://remedy:s3cret?x@cache:6379",
                "redis://:s3cret#x@cache",
                "redis://:s3cret@x@cache:6379",
                "rediss://remedy:p@ss/s3cret@cache",
            )
        ),
        (FlushDb(), {"url": "redis://s3cret/x@cache", "db": 0}, "url", "not a valid URL"),
    ],
)
def test_params_are_checked_and_errors_name_the_field(
    action: DeleteKeys | FlushDb, params: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(ParamError) as caught:
        action.parse(params)
    assert caught.value.field == field
    assert message in caught.value.message
    assert "s3cret" not in str(caught.value)


def test_urls_have_one_spelling() -> None:
    parsed = DeleteKeys().parse({"url": "REDIS://Cache-1", "pattern": "a:*", "max": 1})
    assert parsed.url == "redis://cache-1:6379"
    assert DeleteKeys().subject(parsed) == "redis://cache-1:6379"

"""The Redis, PostgreSQL and Lambda-rollback rules through the whole service: an alert
arrives, the rule's action runs against the real engine (or, in dry-run, previews what it
would do), and the audit log shows the counts — never a password."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import yaml

from receiver.config import AwsConfig, PostgresqlConfig, RedisConfig, SnsConfig
from remediations.address import Server
from remediations.aws.session import AwsSession
from tests.conftest import RemedyClient, StartRemedy, am_alert, am_payload
from tests.receiver.test_shipped_rules import approve_pending, shipped
from tests.remediations.test_postgresql import DATABASE, Cluster, alive, cluster  # noqa: F401
from tests.support.cloudwatch import TOPIC, metric_alarm, sns_notification
from tests.support.moto import REGION, alias_version, make_function, publish_versions
from tests.support.recorder import Recorder
from tests.support.redis import RedisEngine


def with_params(text: str, step: int = 0, **params: Any) -> str:
    """Rule text with more params for one step of its (only) rule."""
    document = yaml.safe_load(text)
    document["rules"][0]["actions"][step]["params"].update(params)
    return yaml.safe_dump(document, sort_keys=False)


async def stale_cache(server: RemedyClient, recorder: Recorder, redis: str) -> None:
    instance = recorder.url("/").split("/")[2]
    labels = {"job": "web", "instance": instance, "redis": redis, "cache": "fares"}
    status, _ = await server.post_alerts(am_payload(am_alert("CacheStale", labels=labels)))
    assert status == 200
    await server.settle()


async def test_a_stale_cache_loses_its_keys_and_is_warmed(
    remedy: StartRemedy, recorder: Recorder, test_redis: RedisEngine
) -> None:
    await test_redis.fill(3000, "cache:fares")
    await test_redis.fill(7000, "cache:routes")
    server = await remedy(
        with_params(shipped("stale-cache-clear-and-warm"), db=test_redis.db),
        dry_run=False,
        redis=RedisConfig(servers=(Server(test_redis.url),)),
        allow={"redis": (f"^{test_redis.url}$",)},
    )
    await stale_cache(server, recorder, test_redis.url.removeprefix("redis://"))
    deleted, warmed = await server.events(outcome="succeeded")
    assert deleted["action"] == "redis.delete_keys"
    assert (deleted["result"]["deleted"], deleted["result"]["stopped_at_max"]) == (3000, False)
    assert warmed["action"] == "http.request"
    (request,) = recorder.received
    assert (request.path, request.json()["cache"]) == ("/cache/warm", "fares")
    assert await test_redis.count("cache:fares:*") == 0
    assert await test_redis.count("cache:routes:*") == 7000


async def test_in_dry_run_the_audit_says_how_many_keys_would_go(
    remedy: StartRemedy, recorder: Recorder, test_redis: RedisEngine
) -> None:
    await test_redis.fill(3000, "cache:fares")
    await test_redis.fill(7000, "cache:routes")
    text = with_params(shipped("stale-cache-clear-and-warm"), db=test_redis.db, max=1000)
    server = await remedy(text, redis=RedisConfig(servers=(Server(test_redis.url),)))
    await stale_cache(server, recorder, test_redis.url.removeprefix("redis://"))
    for _ in range(100):  # the preview is recorded by a worker after the claim
        previews = [e for e in await server.events(outcome="preview")]
        if previews:
            break
        await asyncio.sleep(0.05)
    (preview,) = previews
    assert (preview["event"], preview["action"]) == ("dry_run", "redis.delete_keys")
    assert preview["result"]["matching"] == 1000
    assert preview["result"]["stopped_at_max"] is True
    assert "deleted" not in preview["result"]
    assert await test_redis.count() == 10_000  # nothing deleted
    assert recorder.received == []  # nor warmed: http.request has no preview


RULE = """
rules:
  - name: clear-fares
    match: {alertname: CacheStale}
    target: 'redis:fares'
    guards: {rate_limit: {count: 5, per: 1h}}
    actions:
      - action: redis.delete_keys
        params: {url: '%s', db: %d, pattern: 'cache:fares:*', max: 50}
"""


@pytest.fixture
async def acl_user(test_redis: RedisEngine) -> Any:
    name, password = f"remedy-svc-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await test_redis.client.acl_setuser(
        name,
        enabled=True,
        passwords=[f"+{password}"],
        reset_keys=True,
        keys=["cache:*"],
        categories=["-@all"],
        commands=["+scan", "+unlink", "+select"],
    )
    yield name, password
    await test_redis.client.acl_deluser(name)


@pytest.mark.parametrize("right", [True, False], ids=["right password", "wrong password"])
async def test_the_redis_password_reaches_no_log_audit_or_api(
    remedy: StartRemedy,
    test_redis: RedisEngine,
    acl_user: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    right: bool,
) -> None:
    name, password = acl_user
    await test_redis.fill(20, "cache:fares")
    url = test_redis.url.replace("://", f"://{name}@")
    given = password if right else password[::-1]
    server = await remedy(
        RULE % (url, test_redis.db),
        dry_run=False,
        redis=RedisConfig(servers=(Server(url, given),)),
    )
    await server.post_alerts(am_payload(am_alert("CacheStale")))
    await server.settle()
    (ended,) = [e for e in await server.events() if e["action"] and e["event"] != "started"]
    if right:
        assert (ended["event"], ended["result"]["deleted"]) == ("succeeded", 20)
    else:
        assert ended["event"] == "failed"
        assert "authentication failed" in ended["error"]
    seen = [json.dumps(await server.stored())]
    for path in ("/api/v1/status", "/api/v1/rules", "/"):
        seen.append(await (await server.client.get(path)).text())
    out, err = capsys.readouterr()
    for text in (*seen, out, err):
        assert given not in text


async def test_connection_exhaustion_terminates_old_idle_sessions_once_approved(
    remedy: StartRemedy,
    cluster: Cluster,  # noqa: F811 - the fixture, imported
) -> None:
    old = [await cluster.stuck() for _ in range(2)]
    await asyncio.sleep(1.2)
    young = await cluster.stuck()
    text = shipped("postgres-connections-terminate-idle").replace("remedy@", f"{cluster.ops}@")
    # the shared test server: only this test's own sessions may ever match
    text = with_params(text, older_than="1s", user=cluster.app)
    dsn = cluster.dsn().replace(f"/{DATABASE}", "/postgres")
    server = await remedy(
        text,
        dry_run=False,
        postgresql=PostgresqlConfig(servers=(Server(dsn),)),
        allow={"postgresql": (f"^{dsn}$",)},
    )
    labels = {"job": "postgres", "instance": dsn.split("@")[1].split("/")[0], "datname": DATABASE}
    await server.post_alerts(am_payload(am_alert("PostgresConnectionsExhausted", labels=labels)))
    await server.settle()
    assert [await alive(conn) for conn in old] == [True, True]  # nothing before approval
    await asyncio.sleep(1.2)  # the check above made them young again

    await approve_pending(server, "postgres-connections-terminate-idle")
    (ended,) = await server.events(outcome="succeeded")
    assert ended["result"]["count"] == 3  # the young one aged past 1s meanwhile too
    assert {s["user"] for s in ended["result"]["terminated"]} == {cluster.app}
    assert [await alive(conn) for conn in (*old, young)] == [False, False, False]


async def test_lambda_errors_on_the_live_alias_roll_it_back_once_approved(
    remedy: StartRemedy, moto_server: str
) -> None:
    aws = AwsSession(REGION, moto_server)
    await make_function(aws, "checkout")
    await publish_versions(aws, "checkout", 3)
    async with aws.client("lambda") as api:
        await api.create_alias(FunctionName="checkout", Name="live", FunctionVersion="3")
    server = await remedy(
        shipped("lambda-errors-rollback-alias"),
        dry_run=False,
        aws=AwsConfig(REGION, moto_server),
        allow={"aws.lambda_rollback": ("^checkout$",)},
        sns=SnsConfig(verify_signature=False, allowed_topics=(TOPIC,)),
    )
    errors = metric_alarm(
        "checkout-live-errors",
        "AWS/Lambda",
        "Errors",
        {"FunctionName": "checkout", "Resource": "checkout:live"},
    )
    status, _ = await server.post_sns(sns_notification(errors))
    assert status == 200
    await server.settle()
    assert await alias_version(aws, "checkout", "live") == "3"

    await approve_pending(server, "lambda-errors-rollback-alias")
    (rolled,) = await server.events(outcome="succeeded")
    assert rolled["result"]["version"] == {"before": "3", "after": "2"}
    assert await alias_version(aws, "checkout", "live") == "2"

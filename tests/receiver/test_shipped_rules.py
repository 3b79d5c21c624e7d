"""The shipped rule set (rules/defaults): which alert starts which runbook step, and
each step run for real through the whole service against its engine.

The restart of a compose service by a real Prometheus and Alertmanager is in
tests/e2e; paging through a real Alertmanager is at the end of this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.config import AwsConfig, KubernetesConfig, SnsConfig
from receiver.ingest.cloudwatch import parse_alarm
from remediations import ParamError, builtin_registry
from remediations.aws.session import AwsSession
from rules import DEFAULT_RULES_DIR, load_rules, render_params
from rules.alert import Alert
from tests.conftest import RemedyClient, StartRemedy, am_alert, am_payload
from tests.receiver.test_kubernetes_service import set_image
from tests.rules.support import make_alert
from tests.support.cloudwatch import TOPIC, alarm, metric_alarm, sns_notification
from tests.support.kube import FakeKube
from tests.support.moto import REGION, count, make_function, make_queue, reserved_concurrency
from tests.support.prometheus import Monitoring
from tests.support.recorder import Recorder

SHIPPED = load_rules([DEFAULT_RULES_DIR], builtin_registry())
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PAGE_ONLY = {"lambda-errors-page", "apigateway-errors-page", "rds-cpu-page"}

COMPOSE = {"job": "web", "instance": "web-1:8080", "compose_project": "shop"}
CONTAINER = {**COMPOSE, "compose_service": "web", "container": "shop-web-1"}
KUBE = {"job": "web", "namespace": "shop", "deployment": "web", "pod": "web-7d9c-x2x1z"}
STALE = {"job": "web", "instance": "web-1:8080", "redis": "cache-1:6379", "cache": "fares"}


def cloudwatch(namespace: str, metric: str, **dimensions: str) -> Alert:
    """The alert remedy makes of a CloudWatch alarm on that metric."""
    alert = parse_alarm(metric_alarm("some-alarm", namespace, metric, dimensions))
    assert alert is not None
    return alert


CASES: list[tuple[str, Alert, list[str]]] = [
    (
        "compose container down",
        make_alert("ServiceDown", CONTAINER),
        ["service-down-restart-compose"],
    ),
    (
        "compose target down, but which container?",
        make_alert("ServiceDown", {**COMPOSE, "compose_service": "web"}),
        [],
    ),
    ("kubernetes service down", make_alert("ServiceDown", KUBE), ["service-down-rollout-restart"]),
    ("down, but nothing says where", make_alert("ServiceDown", {"job": "web"}), []),
    (
        "resolved",
        make_alert("ServiceDown", CONTAINER, status="resolved"),
        [],
    ),
    ("errors", make_alert("HighErrorRate", KUBE), ["high-error-rate-scale-out"]),
    (
        "errors after a rollout",
        make_alert("HighErrorRateAfterRollout", KUBE),
        ["high-error-rate-rollback"],
    ),
    (
        "errors in a compose service",
        make_alert("HighErrorRate", {**COMPOSE, "compose_service": "web"}),
        ["high-error-rate-restart-compose"],
    ),
    (
        "stale cache",
        make_alert("CacheStale", STALE),
        ["stale-cache-clear-and-warm"],
    ),
    (
        "a stale cache whose name would widen the key pattern",
        make_alert("CacheStale", {**STALE, "cache": "*"}),
        [],
    ),
    (
        "connections exhausted",
        make_alert(
            "PostgresConnectionsExhausted", {"instance": "orders-db:5432", "datname": "orders"}
        ),
        ["postgres-connections-terminate-idle"],
    ),
    ("slow", make_alert("SlowResponseTime", KUBE), ["slow-response-scale-out"]),
    (
        "cold cache",
        make_alert("LowCacheHitRate", {"instance": "web-1:8080"}),
        ["low-cache-hit-rate-warm"],
    ),
    (
        "a cold cache whose instance smuggles in a path",
        make_alert("LowCacheHitRate", {"instance": "admin:8080/flush-all?x="}),
        [],
    ),
    (
        "container memory",
        make_alert("HighMemoryUsage", {"container": "shop-web-1"}),
        ["high-memory-restart-container"],
    ),
    (
        "pod memory",
        make_alert("HighMemoryUsage", {**KUBE, "container": "web"}),
        ["high-memory-evict-pod"],
    ),
    (
        "memory of a pod no Deployment owns",
        make_alert("HighMemoryUsage", {"namespace": "shop", "pod": "debug", "container": "sh"}),
        [],
    ),
    ("an alert no runbook covers", make_alert("DiskFull", COMPOSE), []),
    (
        "DLQ depth",
        cloudwatch("AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName="orders-dlq"),
        ["dlq-depth-redrive"],
    ),
    (
        "depth of a queue that is no DLQ",
        cloudwatch("AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName="orders"),
        [],
    ),
    (
        "Lambda throttles",
        cloudwatch("AWS/Lambda", "Throttles", FunctionName="resize"),
        ["lambda-throttles-raise-concurrency"],
    ),
    (
        "Lambda errors",
        cloudwatch("AWS/Lambda", "Errors", FunctionName="resize"),
        ["lambda-errors-page"],
    ),
    (
        "Lambda errors of the live alias",
        cloudwatch("AWS/Lambda", "Errors", FunctionName="resize", Resource="resize:live"),
        ["lambda-errors-rollback-alias", "lambda-errors-page"],
    ),
    (
        "API Gateway 5xx (REST API)",
        cloudwatch("AWS/ApiGateway", "5XXError", ApiName="orders-api"),
        ["apigateway-errors-page"],
    ),
    (
        "API Gateway 5xx (HTTP API)",
        cloudwatch("AWS/ApiGateway", "5xx", ApiId="a1b2c3"),
        ["apigateway-errors-page"],
    ),
    (
        "RDS CPU",
        cloudwatch("AWS/RDS", "CPUUtilization", DBInstanceIdentifier="orders-db"),
        ["rds-cpu-page"],
    ),
    ("an alarm no runbook covers", cloudwatch("AWS/EC2", "CPUUtilization", InstanceId="i-1"), []),
]


@pytest.mark.parametrize(("alert", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_alert_starts_its_runbook_step_with_params_the_action_accepts(
    alert: Alert, expected: list[str]
) -> None:
    rules = SHIPPED.match(alert)
    assert [rule.name for rule in rules] == expected
    registry = builtin_registry()
    for rule in rules:
        assert rule.target.render(alert)
        for step in (*rule.actions, *rule.on_failure):
            action = registry.get(step.action)
            params = render_params(step.params, alert)
            assert isinstance(params, dict)
            try:
                action.parse(params)
            except ParamError as exc:  # pragma: no cover - the assertion's message
                pytest.fail(f"{rule.name}: {step.action}: {exc}")


def test_every_runbook_step_is_guarded() -> None:
    names = {rule.name for rule in SHIPPED}
    assert names >= PAGE_ONLY
    for rule in SHIPPED:
        assert rule.guards.rate_limit is not None, rule.name
        assert rule.guards.cooldown is not None or rule.guards.require_approval, rule.name
        assert not rule.guards.dry_run, f"{rule.name}: the global dry_run decides"
        assert rule.verify is not None, rule.name
        if rule.name in PAGE_ONLY:
            assert {s.action for s in rule.actions} == {"http.request"}
            assert "Page only" in rule.description, f"{rule.name} must say why it only pages"
            continue
        assert rule.guards.lock_wait is not None, rule.name
        for step in rule.actions:
            assert step.timeout is not None, rule.name
            bounded = (
                "kubernetes.scale",
                "aws.lambda_concurrency",
                "redis.delete_keys",
                "postgresql.terminate_backends",
            )
            if step.action in bounded:
                assert isinstance(step.params, dict) and "max" in step.params, rule.name


@pytest.mark.parametrize(
    "name",
    [
        "high-error-rate-rollback",
        "dlq-depth-redrive",
        "high-error-rate-restart-compose",
        "postgres-connections-terminate-idle",
        "lambda-errors-rollback-alias",
    ],
)
def test_what_only_a_person_can_judge_waits_for_approval(name: str) -> None:
    (rule,) = [rule for rule in SHIPPED if rule.name == name]
    assert rule.guards.require_approval
    assert rule.guards.approval_timeout is not None


def test_every_description_starts_with_the_symptom() -> None:
    """``ServiceDown: ...`` for an Alertmanager alert; ``Lambda throttles: ...`` for an alarm."""
    for rule in SHIPPED:
        symptom, _, why = rule.description.partition(": ")
        assert why and len(symptom) < 40, rule.name
        if rule.alertname is not None:
            assert symptom.startswith(rule.alertname), rule.name


# -- through the service, against the engines ------------------------------------------


def shipped(*names: str, **changes: Any) -> str:
    """The shipped rules of those names, as rule text (``changes`` replace top-level keys)."""
    rules = []
    for path in sorted(DEFAULT_RULES_DIR.glob("*.yaml")):
        for rule in yaml.safe_load(path.read_text())["rules"]:
            if rule["name"] in names:
                rules.append({**rule, **changes})
    assert sorted(r["name"] for r in rules) == sorted(names)
    return yaml.safe_dump({"rules": rules}, sort_keys=False)


async def approve_pending(server: RemedyClient, rule: str) -> None:
    _, body = await server.get_json("/api/v1/remediations", params={"state": "pending_approval"})
    (pending,) = [r for r in body["remediations"] if r["rule"] == rule]
    response = await server.client.post(f"/api/v1/remediations/{pending['id']}/approve")
    assert response.status == 200, await response.text()
    await server.settle()


async def test_errors_after_a_rollout_roll_back_once_approved_and_never_scale_out(
    remedy: StartRemedy, fake_kube: FakeKube
) -> None:
    fake_kube.add_deployment("shop", "web", replicas=2, image="shop/web:1.0")
    await set_image(fake_kube, "shop", "web", "shop/web:2.0-bad")
    server = await remedy(
        shipped("high-error-rate-scale-out", "high-error-rate-rollback"),
        dry_run=False,
        kubernetes=KubernetesConfig(kubeconfig=str(fake_kube.kubeconfig)),
        allow={"kubernetes": ("^shop$",)},
    )
    labels = {**KUBE, "alertname": "HighErrorRateAfterRollout"}
    await server.post_alerts(am_payload(am_alert("HighErrorRateAfterRollout", labels=labels)))
    await server.settle()
    assert await server.events(outcome="succeeded") == []
    image = fake_kube.deployment("shop", "web")["spec"]["template"]["spec"]["containers"][0]
    assert image["image"] == "shop/web:2.0-bad"  # nothing rolled back before approval

    await approve_pending(server, "high-error-rate-rollback")
    rolled = [
        e
        for e in await server.events(outcome="succeeded")
        if e["action"] == "kubernetes.rollout_undo"
    ]
    assert rolled[0]["result"]["images"] == {
        "before": ["shop/web:2.0-bad"],
        "after": ["shop/web:1.0"],
    }
    assert (
        fake_kube.deployment("shop", "web")["spec"]["replicas"] == 2
    )  # a bad release: no scale-out

    # An hour after the rollout, errors are plain HighErrorRate: one more replica.
    labels = {**KUBE, "alertname": "HighErrorRate"}
    await server.post_alerts(am_payload(am_alert("HighErrorRate", labels=labels)))
    await server.settle()
    (scaled,) = [
        e for e in await server.events(outcome="succeeded") if e["action"] == "kubernetes.scale"
    ]
    assert scaled["result"]["replicas"] == {"before": 2, "after": 3}


async def test_a_dlq_alarm_redrives_only_once_approved(
    remedy: StartRemedy, moto_server: str
) -> None:
    aws = AwsSession(REGION, moto_server)
    await make_queue(aws, "orders-dlq")
    await make_queue(aws, "orders", dlq="orders-dlq")
    async with aws.client("sqs") as sqs:
        url = (await sqs.get_queue_url(QueueName="orders-dlq"))["QueueUrl"]
        for n in range(3):
            await sqs.send_message(QueueUrl=url, MessageBody=f"order {n}")
    server = await remedy(
        shipped("dlq-depth-redrive"),
        dry_run=False,
        aws=AwsConfig(REGION, moto_server),
        allow={"aws.sqs_redrive": ("-dlq$", "^orders$")},
        sns=SnsConfig(verify_signature=False, allowed_topics=(TOPIC,)),
    )
    status, _ = await server.post_sns(sns_notification(alarm(queue="orders-dlq")))
    assert status == 200
    await server.settle()
    assert [e["event"] for e in await server.events(rule="dlq-depth-redrive")][
        -1
    ] == "pending_approval"
    assert (await count(aws, "orders-dlq"), await count(aws, "orders")) == (3, 0)

    await approve_pending(server, "dlq-depth-redrive")
    (moved,) = await server.events(outcome="succeeded")
    assert moved["result"]["moved"] == 3
    assert (await count(aws, "orders-dlq"), await count(aws, "orders")) == (0, 3)


async def test_lambda_throttles_raise_the_reservation_within_its_bound(
    remedy: StartRemedy, moto_server: str
) -> None:
    aws = AwsSession(REGION, moto_server)
    await make_function(aws, "resize", reserved=195)
    server = await remedy(
        shipped("lambda-throttles-raise-concurrency"),
        dry_run=False,
        aws=AwsConfig(REGION, moto_server),
        allow={"aws.lambda_concurrency": ("^resize$",)},
        sns=SnsConfig(verify_signature=False, allowed_topics=(TOPIC,)),
    )
    throttled = metric_alarm(
        "resize-throttles", "AWS/Lambda", "Throttles", {"FunctionName": "resize"}
    )
    await server.post_sns(sns_notification(throttled))
    await server.settle()
    (raised,) = await server.events(outcome="succeeded")
    assert raised["result"]["reserved"] == {"before": 195, "after": 200}  # +10, capped at 200
    assert await reserved_concurrency(aws, "resize") == 200


async def test_a_cold_cache_is_asked_to_warm_up(remedy: StartRemedy, recorder: Recorder) -> None:
    server = await remedy(shipped("low-cache-hit-rate-warm"), dry_run=False)
    instance = recorder.url("/").split("/")[2]
    labels = {"job": "web", "instance": instance}
    await server.post_alerts(am_payload(am_alert("LowCacheHitRate", labels=labels)))
    await server.settle()
    (request,) = recorder.received
    assert (request.method, request.path) == ("POST", "/cache/warm")
    assert request.json()["reason"] == "LowCacheHitRate"
    assert (await server.events(outcome="succeeded"))[0]["target"] == f"cache:{instance}"


@pytest.mark.parametrize(
    ("rule", "alarm_of"),
    [
        (
            "rds-cpu-page",
            metric_alarm(
                "orders-db-cpu", "AWS/RDS", "CPUUtilization", {"DBInstanceIdentifier": "orders-db"}
            ),
        ),
        (
            "lambda-errors-page",
            # named like an alert remedy handles: the page must still go to people only
            metric_alarm("HighErrorRate", "AWS/Lambda", "Errors", {"FunctionName": "resize"}),
        ),
    ],
)
async def test_a_page_reaches_the_people_on_call_through_alertmanager(
    remedy: StartRemedy, monitoring: Monitoring, rule: str, alarm_of: dict[str, Any]
) -> None:
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    alertmanager = await monitoring.alertmanager(config)
    text = shipped(rule).replace("http://alertmanager:9093", alertmanager.url)
    server = await remedy(
        text, dry_run=False, sns=SnsConfig(verify_signature=False, allowed_topics=(TOPIC,))
    )
    status, _ = await server.post_sns(sns_notification(alarm_of))
    assert status == 200
    await server.settle()
    (paged,) = await server.events(outcome="succeeded")
    assert paged["rule"] == rule

    (alert,) = await alertmanager.get_json("/api/v2/alerts", filter='paged_by="remedy"')
    assert alert["labels"]["alertname"] == alarm_of["AlarmName"]
    assert alert["labels"]["severity"] == "page"
    assert alarm_of["AlarmName"] in alert["annotations"]["description"]
    # deploy/alertmanager/alertmanager.yml sends it to people, never back to remedy
    assert [r["name"] for r in alert["receivers"]] == ["default"]

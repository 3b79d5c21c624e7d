"""Shared fixtures: a fresh store, service and HTTP recorder per test; payload builders."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from receiver.app import build_app, build_service
from receiver.clock import Clock
from receiver.config import Config
from receiver.service import SERVICE, Service
from receiver.store.base import Store
from remediations import builtin_registry
from rules.index import RuleSet
from rules.loader import load_rules_text
from tests.support.database import Database
from tests.support.postgres import postgres_schema
from tests.support.rawhttp import RawAnswer, raw_request

pytest_plugins = [
    "tests.support.recorder",
    "tests.support.podman",
    "tests.support.kube",
    "tests.support.kubectl",
    "tests.support.sns",
    "tests.support.moto",
    "tests.support.prometheus",
    "tests.support.redis",
]


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Each test starts with structlog's defaults and no bound request id."""
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()


ALL_BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a module's store-backed tests on every backend it lists in ``BACKENDS``.

    A test marked ``sqlite_only`` (it reads or copies the SQLite file itself)
    runs on SQLite alone, visibly: its id says ``[sqlite]``.
    """
    if "backend" not in metafunc.fixturenames or not hasattr(metafunc.module, "BACKENDS"):
        return
    backends = metafunc.module.BACKENDS
    if metafunc.definition.get_closest_marker("sqlite_only") is not None:
        backends = ("sqlite",)
    metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Which store the test's remedy uses: ``sqlite`` unless the module asks for more."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file for one test."""
    return tmp_path / "remedy.db"


@pytest.fixture
async def storage(backend: str, db_path: Path) -> AsyncIterator[str]:
    """The test's own storage URL: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{db_path}"
        return
    async with postgres_schema() as url:
        yield url


@pytest.fixture
def database(storage: str) -> Database:
    """The test's database, reached around remedy (to tamper with it, or count rows)."""
    return Database(storage)


@pytest.fixture
def config(storage: str) -> Config:
    """The no-config-file defaults, on a per-test database, with no rules."""
    return Config(storage=storage, rules=())


def ruleset(text: str, file: str = "test.yaml") -> RuleSet:
    """Rules from YAML text, checked against the built-in actions."""
    return load_rules_text(text, file, builtin_registry())


StartRemedy = Callable[..., Awaitable["RemedyClient"]]


@pytest.fixture
async def remedy(config: Config) -> AsyncIterator[StartRemedy]:
    """Start remedy's real app on a loopback port: ``await remedy(rules_text, **config)``.

    ``store=`` and ``clock=`` hand it a store or clock of the test's making; other
    keywords change the config.
    """
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(
        rules_text: str = "rules: []\n",
        store: Store | None = None,
        clock: Clock | None = None,
        **changes: Any,
    ) -> RemedyClient:
        cfg = dataclasses.replace(config, **changes)
        # rules= in the config means: load them from those files, as serve does
        loaded = None if "rules" in changes else ruleset(rules_text)
        service = build_service(cfg, rules=loaded, store=store, clock=clock)
        client: TestClient[web.Request, web.Application] = TestClient(
            TestServer(build_app(service))
        )
        await client.start_server()
        clients.append(client)
        return RemedyClient(client)

    yield start
    for client in clients:
        await client.close()


class RemedyClient:
    """A running remedy and helpers to talk to it."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.client = client

    @property
    def service(self) -> Service:
        return self.client.app[SERVICE]

    async def post_alerts(self, payload: Any, **kwargs: Any) -> tuple[int, Any]:
        raw = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        body = io.BytesIO(raw.encode() if isinstance(raw, str) else raw)
        response = await self.client.post(
            "/webhook/alertmanager",
            data=body,
            headers={"Content-Type": "application/json", **kwargs.pop("headers", {})},
            **kwargs,
        )
        return response.status, await response.json()

    async def post_sns(self, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """POST to ``/webhook/sns`` as SNS does: JSON, with the content type ``text/plain``."""
        response = await self.client.post(
            "/webhook/sns",
            data=json.dumps(body),
            headers={"Content-Type": "text/plain; charset=UTF-8", **(headers or {})},
        )
        return response.status, await response.json()

    async def raw(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
    ) -> RawAnswer:
        """A request written byte for byte (see :mod:`tests.support.rawhttp`)."""
        port = self.client.server.port
        assert port is not None
        return await raw_request(port, method, path, headers, body)

    async def rejections(self) -> dict[tuple[str, str], float]:
        """``remedy_webhook_rejected_total`` by (source, reason), as Prometheus scrapes it."""
        text = await (await self.client.get("/metrics")).text()
        counts: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "remedy_webhook_rejected_total":
                    counts[(sample.labels["source"], sample.labels["reason"])] = sample.value
        return counts

    async def stored(self, headers: dict[str, str] | None = None) -> tuple[Any, Any]:
        """All an operator can see of the store: every audit event and every remediation."""
        audit = await self.client.get("/api/v1/audit", params={"limit": "1000"}, headers=headers)
        listed = await self.client.get("/api/v1/remediations", headers=headers)
        assert (audit.status, listed.status) == (200, 200)
        return (await audit.json())["events"], (await listed.json())["remediations"]

    async def get_json(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = await self.client.get(path, **kwargs)
        return response.status, await response.json()

    async def settle(self) -> None:
        """Wait until every queued remediation has an outcome."""
        await self.service.running_executor.join()

    async def events(self, **query: str) -> list[dict[str, Any]]:
        """Audit events, oldest first."""
        status, body = await self.get_json("/api/v1/audit", params={"limit": "1000", **query})
        assert status == 200, body
        return list(reversed(body["events"]))


def moved(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]
) -> dict[tuple[str, str], float]:
    """How far each counter of :meth:`RemedyClient.rejections` moved between two readings."""
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key)}


def am_alert(
    name: str = "ServiceDown",
    status: str = "firing",
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    starts_at: str = "2026-11-24T05:00:00.000Z",
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """One alert as Alertmanager puts it in a webhook."""
    alert: dict[str, Any] = {
        "status": status,
        "labels": {"alertname": name, **(labels or {})},
        "annotations": annotations or {},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-24T06:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
    }
    if fingerprint is not None:
        alert["fingerprint"] = fingerprint
    return alert


def am_payload(*alerts: dict[str, Any], truncated: int = 0) -> dict[str, Any]:
    """An Alertmanager webhook body, version 4, around ``alerts``."""
    first = alerts[0] if alerts else am_alert()
    name = first["labels"].get("alertname", "")
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": truncated,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": "remedy",
        "groupLabels": {"alertname": name},
        "commonLabels": {"alertname": name},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }

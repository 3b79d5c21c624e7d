"""The aiohttp application: routes, middlewares, and every client's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import aiodocker
import aiohttp
import structlog
from aiohttp import web
from kubernetes_asyncio import client as kube_client
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient

from receiver import api, preflight, webhooks
from receiver import web as web_page
from receiver.allowlist import compile_allow
from receiver.auth import Authenticator
from receiver.clock import Clock, SystemClock
from receiver.config import BackendError, Config, KubernetesConfig
from receiver.execute import Clients, RetryPolicy
from receiver.executor import Executor, ExecutorSettings
from receiver.guards import GlobalLimits
from receiver.ingest.sns_signature import CertificateCache, http_fetcher
from receiver.listener import HANDLER_ARGS, track_requests
from receiver.match import Planner
from receiver.metrics import Metrics
from receiver.middleware import authenticate, request_context, same_origin
from receiver.preconditions import Asks, Prometheus
from receiver.ruleset import load_ruleset, longest_window, registry_for, reload_rules
from receiver.scheduler import Scheduler
from receiver.service import SERVICE, Service
from receiver.silences import Alertmanager, Silences
from receiver.store.base import Store
from receiver.store.url import store_for
from receiver.verifier import Verifier
from remediations import Registry
from remediations.aws.session import AwsSession
from remediations.postgresql.servers import PostgresServers
from remediations.redis.servers import RedisServers
from rules import RuleLoadError
from rules.index import RuleSet

log = structlog.get_logger("remedy.app")


def build_service(
    config: Config,
    *,
    registry: Registry | None = None,
    clock: Clock | None = None,
    rules: RuleSet | None = None,
    store: Store | None = None,
) -> Service:
    """Load rules and assemble the service; raises ``RuleLoadError`` before anything starts."""
    registry = registry or registry_for(config)
    clock = clock or SystemClock()
    metrics = Metrics()
    ruleset = rules if rules is not None else load_ruleset(config.rules, registry)
    metrics.rules_loaded.set(len(ruleset))
    metrics.dry_run.set(1 if config.dry_run else 0)
    auth = Authenticator(
        config.auth.webhook_tokens if config.auth else (),
        config.auth.api_tokens if config.auth else (),
        enabled=config.auth is not None,
    )
    if store is None:
        store = store_for(config, clock=clock, on_commit=metrics.observe_commit)
    return Service(
        config=config,
        store=store,
        registry=registry,
        metrics=metrics,
        auth=auth,
        planner=Planner(ruleset, registry, metrics, dry_run=config.dry_run),
        clock=clock,
    )


def executor_settings(config: Config, *, previews: bool = True) -> ExecutorSettings:
    """The executor's settings from the config; allow-list patterns compiled once."""
    return ExecutorSettings(
        previews=previews,
        dry_run=config.dry_run,
        workers=config.max_concurrent,
        max_queue=config.max_queue,
        limits=GlobalLimits(max_actions=config.max_actions, max_concurrent=config.max_concurrent),
        allow=compile_allow(config.allow),
        retry=RetryPolicy(initial=config.retry_initial, maximum=config.retry_max),
    )


def _on_sighup(service: Service) -> None:
    async def reload() -> None:
        with contextlib.suppress(RuleLoadError):
            await reload_rules(service, "SIGHUP")

    task = asyncio.get_running_loop().create_task(reload())
    service.background.add(task)
    task.add_done_callback(service.background.discard)


async def kubernetes_client(config: KubernetesConfig | None) -> ApiClient | None:
    """One Kubernetes API client for the process lifetime, when backends.kubernetes is set."""
    if config is None:
        return None
    configuration = kube_client.Configuration()
    try:
        if config.in_cluster:
            kube_config.load_incluster_config(  # type: ignore[no-untyped-call]  # untyped upstream
                client_configuration=configuration
            )
        else:
            await kube_config.load_kube_config(
                config_file=config.kubeconfig,
                context=config.context,
                client_configuration=configuration,
            )
    except (kube_config.ConfigException, OSError) as exc:
        raise BackendError(f"backends.kubernetes: {exc}") from None
    return ApiClient(configuration=configuration)


@contextlib.asynccontextmanager
async def running(
    service: Service, *, timers: bool = True, answers: Asks | None = None, previews: bool = True
) -> AsyncIterator[Service]:
    """Open the store, the shared HTTP client, the executor and the timers; close in reverse.

    ``timers=False`` leaves the timer loop to the caller (replay ticks it itself);
    ``answers`` stand in for Prometheus (a rule test's); ``previews=False`` keeps
    dry-runs from asking the backends what they would do (replay's simulated time).
    """
    await service.store.open()
    service.http = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=60), headers={"User-Agent": "remedy"}
    )
    service.certificates = CertificateCache(http_fetcher(service.http))
    kubernetes = await kubernetes_client(service.config.kubernetes)
    # One Docker client for the process lifetime, only when backends.docker is configured.
    docker = aiodocker.Docker(url=service.config.docker_url) if service.config.docker_url else None
    # One client (and pool) per Redis server and database, opened at first use, closed below.
    redis_servers = (
        RedisServers(redis.servers, allow_flush=redis.allow_flush)
        if (redis := service.config.redis)
        else None
    )
    postgresql = service.config.postgresql
    prometheus: Asks | None = answers
    if prometheus is None and (prom := service.config.prometheus) is not None:
        prometheus = Prometheus(service.http, prom)
    manager = service.config.alertmanager
    silences = Silences(
        Alertmanager(service.http, manager) if manager else None,
        service.store,
        service.clock,
        service.config.page_url,
    )
    service.executor = Executor(
        service.store,
        service.registry,
        Clients(
            service.http,
            docker=docker,
            kubernetes=kubernetes,
            aws=AwsSession(aws.region, aws.endpoint_url) if (aws := service.config.aws) else None,
            redis=redis_servers,
            postgresql=PostgresServers(postgresql.servers) if postgresql else None,
            prometheus=prometheus,
        ),
        service.metrics,
        executor_settings(service.config, previews=previews),
        silences=silences,
    )
    service.scheduler = Scheduler(
        service.store,
        service.executor,
        service.clock,
        service.metrics,
        retention=service.config.retention,
        guard_window=lambda: longest_window(service.planner.rules, service.config),
        heartbeat_every=service.config.storage_lease / 3,
    )
    verifier = Verifier(service.store, service.executor, prometheus, service.clock)
    try:
        await service.executor.start()
        if timers:
            service.scheduler.start()
            verifier.start()
            silences.start()
        yield service
    finally:
        await silences.stop()
        await verifier.stop()
        await service.scheduler.stop()
        async with service.scheduler.leased():  # running actions stay this replica's
            await service.executor.stop(service.config.shutdown_grace)
        await service.http.close()
        if docker is not None:
            await docker.close()
        if kubernetes is not None:
            await kubernetes.close()
        if redis_servers is not None:
            await redis_servers.close()
        await service.store.close()


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    """The service's lifetime as the app's cleanup context, with SIGHUP reloading rules."""
    service = app[SERVICE]
    async with running(service):
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not off the main thread
            loop.add_signal_handler(signal.SIGHUP, _on_sighup, service)
        log.info(
            "service.started",
            rules=len(service.planner.rules),
            rules_version=service.planner.rules.version,
            dry_run=service.config.dry_run,
            mode=preflight.mode(service.config, service.planner.rules),
            storage=service.store.backend,
            auth=service.auth.enabled,
        )
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGHUP)
    log.info("service.stopped")


async def _closing(app: web.Application) -> None:
    """Tell long-lived responses (the audit tail) to finish, so shutdown is not held up."""
    app[SERVICE].closing.set()


def build_app(service: Service) -> web.Application:
    """The HTTP application around a service."""
    app = web.Application(
        client_max_size=service.config.max_body_bytes,
        middlewares=[track_requests, request_context, same_origin, authenticate],
        handler_args=dict(HANDLER_ARGS),
    )
    app[SERVICE] = service
    app.cleanup_ctx.append(_lifetime)
    app.on_shutdown.append(_closing)
    app.router.add_post("/webhook/alertmanager", webhooks.alertmanager)
    app.router.add_post("/webhook/sns", webhooks.sns)
    app.router.add_get("/api/v1/audit", api.audit)
    app.router.add_get("/api/v1/audit/verify", api.audit_verify)
    app.router.add_get("/api/v1/audit/stream", api.audit_stream)
    app.router.add_get("/api/v1/remediations", api.remediations)
    app.router.add_get("/api/v1/status", api.status)
    app.router.add_get("/api/v1/rules", api.rules)
    app.router.add_post("/-/reload", api.reload)
    app.router.add_post("/api/v1/pause", api.pause)
    app.router.add_post("/api/v1/resume", api.resume)
    app.router.add_post("/api/v1/remediations/{id}/approve", api.approve)
    app.router.add_post("/api/v1/remediations/{id}/reject", api.reject)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/", web_page.page)
    app.router.add_get("/ui/style.css", web_page.stylesheet)
    app.router.add_get("/ui/page.js", web_page.script)
    app.router.add_post("/ui/pause", web_page.pause)
    app.router.add_post("/ui/resume", web_page.resume)
    app.router.add_post("/ui/remediations/{id}/approve", web_page.approve)
    app.router.add_post("/ui/remediations/{id}/reject", web_page.reject)
    return app

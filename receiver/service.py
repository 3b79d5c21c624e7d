"""The running service's parts, wired once per app and reached through ``web.AppKey``."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
from aiohttp import web

from receiver.auth import Authenticator
from receiver.clock import Clock
from receiver.config import Config
from receiver.executor import Executor
from receiver.ingest.sns_signature import CertificateCache
from receiver.match import Planner
from receiver.metrics import Metrics
from receiver.scheduler import Scheduler
from receiver.store.base import Store
from remediations import Registry


@dataclasses.dataclass(slots=True)
class Service:
    """Everything a handler may use. Clients are opened and closed by the app's cleanup_ctx."""

    config: Config
    store: Store
    registry: Registry
    metrics: Metrics
    auth: Authenticator
    planner: Planner
    clock: Clock
    http: aiohttp.ClientSession | None = None
    executor: Executor | None = None
    scheduler: Scheduler | None = None
    certificates: CertificateCache | None = None
    background: set[asyncio.Task[None]] = dataclasses.field(default_factory=set)
    closing: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @property
    def running_executor(self) -> Executor:
        """The executor, which exists once the app has started."""
        if self.executor is None:
            raise RuntimeError("the service has not started")
        return self.executor

    @property
    def running_certificates(self) -> CertificateCache:
        """The SNS signing certificates' cache, which exists once the app has started."""
        if self.certificates is None:
            raise RuntimeError("the service has not started")
        return self.certificates

    @property
    def running_scheduler(self) -> Scheduler:
        """The timer loop, which exists once the app has started."""
        if self.scheduler is None:
            raise RuntimeError("the service has not started")
        return self.scheduler


SERVICE = web.AppKey("service", Service)

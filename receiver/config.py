"""The service's configuration (SPEC §4): values here, strict loading in ``load_config``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from receiver.auth import Token
from remediations.address import Server
from rules.loader import DEFAULT_RULES_DIR

DEFAULT_LISTEN = ("127.0.0.1", 9095)
DEFAULT_STORAGE = "sqlite:///./remedy.db"
DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_STORAGE_LEASE = 15.0  # a PostgreSQL replica's work is taken over this long after it stops
DEFAULT_PAUSE_HOLD = 3600.0  # guards.pause_hold: held work older than this is dropped at resume
POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")


def is_postgresql(storage: str) -> bool:
    """Whether a storage URL names a PostgreSQL database (else it is SQLite)."""
    return storage.startswith(POSTGRESQL_SCHEMES)


@dataclasses.dataclass(frozen=True, slots=True)
class AuthConfig:
    """Resolved tokens; present only when the config has an ``auth:`` section."""

    webhook_tokens: tuple[Token, ...] = ()
    api_tokens: tuple[Token, ...] = ()


class BackendError(Exception):
    """A configured backend cannot be set up (an unreadable kubeconfig, say)."""


@dataclasses.dataclass(frozen=True, slots=True)
class KubernetesConfig:
    """How to reach the cluster: a kubeconfig (and context), or the pod's service account."""

    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ApiServer:
    """An HTTP API remedy asks: ``backends.prometheus`` (``when:``, ``verify.query``) or
    ``backends.alertmanager`` (silences).

    ``headers`` (a bearer token, say) are secrets: never shown.
    """

    url: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    timeout: float = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class SnsConfig:
    """How ``POST /webhook/sns`` trusts what it receives."""

    verify_signature: bool = True
    allowed_topics: tuple[str, ...] = ()  # empty: no topic at all until configured
    cert_url_pattern: str = (
        r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/SimpleNotificationService-[a-f0-9]+\.pem$"
    )
    max_age: float | None = 3600.0
    insufficient_data: str = "ignore"  # ignore | firing | resolved
    subscribe_url_pattern: str = (
        r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/\?Action=ConfirmSubscription&"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class AwsConfig:
    """Where the AWS actions go: a region, and an endpoint (moto, a VPC endpoint) if not AWS's."""

    region: str
    endpoint_url: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RedisConfig:
    """``backends.redis``: the servers the Redis actions may touch, with their passwords
    (never shown), and whether ``redis.flushdb`` may run at all."""

    servers: tuple[Server, ...]
    allow_flush: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class PostgresqlConfig:
    """``backends.postgresql``: the servers ``postgresql.*`` actions may touch."""

    servers: tuple[Server, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class HttpConfig:
    """What an idle or slow client may hold: connections and how long each may take."""

    max_connections: int | None = None  # None: derived from the open-file limit at start
    header_timeout: float = 10.0  # a new connection sends its first request's headers within this
    body_timeout: float = 30.0  # a request body arrives whole within this, from its headers on
    idle_timeout: float = 75.0  # a kept-alive connection sends its next request within this


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """Everything ``remedy serve`` needs; the defaults are the no-config-file defaults."""

    host: str = DEFAULT_LISTEN[0]
    port: int = DEFAULT_LISTEN[1]
    storage: str = DEFAULT_STORAGE
    # The PostgreSQL password, never part of ``storage`` (which logs and errors may show).
    storage_password: str | None = dataclasses.field(default=None, repr=False)
    storage_lease: float = DEFAULT_STORAGE_LEASE
    rules: tuple[str, ...] = (str(DEFAULT_RULES_DIR),)
    dry_run: bool = True
    auth: AuthConfig | None = None
    max_concurrent: int = 4
    max_queue: int = 10_000
    max_actions: tuple[int, float] | None = None
    retry_initial: float = 1.0
    retry_max: float = 30.0
    pause_hold: float = DEFAULT_PAUSE_HOLD
    allow: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    docker_url: str | None = None  # None: backends.docker not configured, docker.* fail
    kubernetes: KubernetesConfig | None = None  # None: kubernetes.* fail
    aws: AwsConfig | None = None  # None: aws.* fail
    redis: RedisConfig | None = None  # None: redis.* fail (and redis.flushdb does not load)
    postgresql: PostgresqlConfig | None = None  # None: postgresql.* fail
    command_enabled: bool = False  # False: a rule with command.run does not load
    prometheus: ApiServer | None = None  # None: a rule's when: is never met (fail closed)
    alertmanager: ApiServer | None = None  # None: rules' silence: is skipped (audited)
    sns: SnsConfig = dataclasses.field(default_factory=SnsConfig)
    max_body_bytes: int = DEFAULT_MAX_BODY
    http: HttpConfig = dataclasses.field(default_factory=HttpConfig)
    shutdown_grace: float = 25.0
    retention: float | None = None  # seconds of audit log kept; None: all of it
    log_level: str = "info"
    external_url: str | None = None  # where people reach remedy's page (silence comments)
    file: str | None = None
    # The line of each top-level setting in ``file``, for messages about the whole config.
    lines: Mapping[str, int] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def page_url(self) -> str:
        """remedy's page as people reach it: ``external_url``, else the listen address."""
        if self.external_url:
            return self.external_url.rstrip("/") + "/"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def sqlite_path(self) -> Path:
        """The database file of a ``sqlite:///`` storage URL."""
        if not self.storage.startswith("sqlite:///"):
            raise ValueError(f"storage {self.storage!r} is not a sqlite:/// URL")
        return Path(self.storage.removeprefix("sqlite:///"))

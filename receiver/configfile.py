"""Reading ``remedy.yaml`` strictly: unknown keys and wrong types name file, line and field.

Secrets named by the config (``{env: VAR}``, ``{file: PATH}``) are resolved
here, once; a missing one is an error that names where it should come from,
never what it contains.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from yaml.nodes import Node, ScalarNode

from receiver.audit import redact
from receiver.auth import ROLES, Token
from receiver.config import (
    DEFAULT_MAX_BODY,
    DEFAULT_PAUSE_HOLD,
    ApiServer,
    AuthConfig,
    AwsConfig,
    Config,
    HttpConfig,
    KubernetesConfig,
    PostgresqlConfig,
    RedisConfig,
    SnsConfig,
    is_postgresql,
)
from remediations.address import Server, userinfo
from remediations.postgresql.servers import server_dsn
from remediations.redis.servers import server_url
from rules.yamlnodes import NULL as NULL_TAG
from rules.yamlnodes import (
    Invalid,
    NodeReader,
    Problem,
    YamlLoader,
    join_path,
    line_of,
    parse_document,
)

_TOP_KEYS = (
    "listen",
    "storage",
    "storage_password",
    "storage_lease",
    "rules",
    "dry_run",
    "log_level",
    "max_body_bytes",
    "http",
    "auth",
    "guards",
    "backends",
    "shutdown_grace",
    "sns",
    "retention",
    "external_url",
)
_SNS_KEYS = (
    "verify_signature",
    "allowed_topics",
    "cert_url_pattern",
    "max_age",
    "insufficient_data",
    "subscribe_url_pattern",
)
_HTTP_KEYS = ("max_connections", "header_timeout", "body_timeout", "idle_timeout")
_AUTH_KEYS = ("webhook_tokens", "api_tokens")
_GUARD_KEYS = ("max_concurrent", "max_actions", "max_queue", "retry", "pause_hold")
_BACKENDS = (
    "http",
    "docker",
    "kubernetes",
    "aws",
    "redis",
    "postgresql",
    "command",
    "prometheus",
    "alertmanager",
)
_AWS_ALLOW = {
    "allow_queues": ("aws.sqs_redrive",),
    "allow_functions": ("aws.lambda_concurrency", "aws.lambda_rollback"),
    "allow_services": ("aws.ecs_redeploy",),
}
_BACKEND_KEYS = {
    "http": ("allow",),
    "docker": ("url", "allow"),
    "kubernetes": ("kubeconfig", "context", "in_cluster", "namespaces"),
    "aws": ("region", "endpoint_url", *_AWS_ALLOW),
    "redis": ("servers", "allow_flush"),
    "postgresql": ("servers",),
    "command": ("enabled", "allow"),
    "prometheus": ("url", "headers", "timeout"),
    "alertmanager": ("url", "headers", "timeout"),
}
DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclasses.dataclass(slots=True)
class _Backends:
    allow: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    docker_url: str | None = None
    kubernetes: KubernetesConfig | None = None
    aws: AwsConfig | None = None
    redis: RedisConfig | None = None
    postgresql: PostgresqlConfig | None = None
    command_enabled: bool = False
    prometheus: ApiServer | None = None
    alertmanager: ApiServer | None = None


class ConfigError(Exception):
    """The config file is invalid; one line per problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_config(path: Path, unresolved: list[Problem] | None = None) -> Config:
    """The config in ``path``; relative paths inside it are relative to its directory.

    With ``unresolved``, a ``{env:}`` or ``{file:}`` secret that cannot be read
    is recorded there instead of failing the load, and stands for itself as a
    placeholder: for commands that never use it (``remedy audit``) and for
    ``remedy check --no-secrets`` in CI, where the secrets do not exist.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8"
        raise ConfigError(
            [Problem(str(path), 0, None, f"cannot read the config: {reason}")]
        ) from None
    return load_config_text(text, str(path), base=path.parent, unresolved=unresolved)


def load_config_text(
    text: str, file: str, base: Path = Path(), unresolved: list[Problem] | None = None
) -> Config:
    """The config in a YAML text (as if read from ``file``); ``unresolved`` as for a file."""
    problems: list[Problem] = []
    document = parse_document(text, file, problems)
    if document is None:
        raise ConfigError(problems)
    loader, root = document
    try:
        config = _ConfigReader(file, loader, problems, base, unresolved).read(root)
    finally:
        loader.dispose()
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line))
    assert config is not None
    return config


class _ConfigReader(NodeReader):
    def __init__(
        self,
        file: str,
        loader: YamlLoader,
        problems: list[Problem],
        base: Path,
        unresolved: list[Problem] | None,
    ) -> None:
        super().__init__(file, loader, problems)
        self.base = base
        self.unresolved = unresolved

    def read(self, root: Node | None) -> Config | None:
        if root is None:
            return Config(file=self.file)
        try:
            fields = self.mapping(root, "", _TOP_KEYS, what="a mapping of settings")
        except Invalid:
            return None
        defaults = Config()
        host, port = self.optional(
            fields, "listen", "", self.listen, (defaults.host, defaults.port)
        )
        storage = self.optional(fields, "storage", "", self.storage, defaults.storage)
        storage_password = self.optional(
            fields, "storage_password", "", self.storage_password, None
        )
        if storage_password is not None and not is_postgresql(storage):
            node = fields["storage_password"][0]
            self.problem(node, "storage_password", "only a postgresql:// storage takes a password")
        storage_lease = self.optional(
            fields, "storage_lease", "", self.duration, defaults.storage_lease
        )
        if "storage_lease" in fields and not is_postgresql(storage):
            node = fields["storage_lease"][0]
            self.problem(node, "storage_lease", "only a postgresql:// storage has replica leases")
        elif storage_lease < 1:
            node = fields["storage_lease"][0]
            self.problem(node, "storage_lease", "expected at least 1s")
        rules = self.optional(fields, "rules", "", self.rule_sources, defaults.rules)
        auth = self.optional(fields, "auth", "", self.auth, None)
        no_guards: dict[str, Any] = {}
        no_backends = _Backends()
        guards = self.optional(fields, "guards", "", self.guards, no_guards)
        backends = self.optional(fields, "backends", "", self.backends, no_backends)
        return Config(
            host=host,
            port=port,
            storage=storage,
            storage_password=storage_password,
            storage_lease=storage_lease,
            rules=rules,
            dry_run=self.optional(fields, "dry_run", "", self.boolean, defaults.dry_run),
            auth=auth,
            allow=backends.allow,
            docker_url=backends.docker_url,
            kubernetes=backends.kubernetes,
            aws=backends.aws,
            redis=backends.redis,
            postgresql=backends.postgresql,
            command_enabled=backends.command_enabled,
            prometheus=backends.prometheus,
            alertmanager=backends.alertmanager,
            sns=self.optional(fields, "sns", "", self.sns, SnsConfig()),
            http=self.optional(fields, "http", "", self.http, HttpConfig()),
            shutdown_grace=self.optional(
                fields, "shutdown_grace", "", self.duration, defaults.shutdown_grace
            ),
            retention=self.optional(fields, "retention", "", self.retention, None),
            **guards,
            max_body_bytes=self.optional(
                fields,
                "max_body_bytes",
                "",
                lambda n, p: self.integer(n, p, 1024),
                DEFAULT_MAX_BODY,
            ),
            log_level=self.optional(
                fields, "log_level", "", lambda n, p: self.choice(n, p, _LOG_LEVELS), "info"
            ),
            external_url=self.optional(fields, "external_url", "", self.url, None),
            file=self.file,
            lines={key: line_of(key_node) for key, (key_node, _) in fields.items()},
        )

    def listen(self, node: Node, path: str) -> tuple[str, int]:
        value = self.string(node, path)
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise self.invalid(node, path, f"expected HOST:PORT, got {value!r}")
        return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an empty host means all

    def storage(self, node: Node, path: str) -> str:
        value = self.string(node, path)
        if is_postgresql(value):
            return self.postgresql(node, path, value)
        if not value.startswith("sqlite:///"):
            raise self.invalid(
                node,
                path,
                "expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE,"
                f" got {redact(value)!r}",
            )
        db = Path(value.removeprefix("sqlite:///"))
        return f"sqlite:///{db if db.is_absolute() else self.base / db}"

    def postgresql(self, node: Node, path: str, value: str) -> str:
        """A PostgreSQL URL without a password (that comes from ``storage_password``)."""
        if ":" in (userinfo(value) or ""):
            raise self.invalid(
                node,
                path,
                "a password in the URL would be shown wherever the URL is:"
                " give it as storage_password: {env: VAR} or {file: PATH}",
            )
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            # urlsplit's words may quote a password's characters as the port
            raise self.invalid(
                node,
                path,
                "not a valid PostgreSQL URL: expected postgresql://USER@HOST:PORT/DATABASE",
            ) from None
        if not parts.hostname or not parts.path.strip("/"):
            raise self.invalid(
                node,
                path,
                f"expected postgresql://USER@HOST:PORT/DATABASE, got {redact(value)!r}",
            )
        return value

    def storage_password(self, node: Node, path: str) -> str:
        """The PostgreSQL password, given as a token is: ``{value}``, ``{env}`` or ``{file}``."""
        return self.secret(node, path, self.mapping(node, path, ("value", "env", "file")))

    def secret(self, node: Node, path: str, fields: dict[str, Any]) -> str:
        """The secret of a reference with exactly one of ``value``, ``env`` or ``file``."""
        sources = [key for key in ("value", "env", "file") if key in fields]
        if len(sources) != 1:
            raise self.invalid(node, path, "give exactly one of value, env or file")
        kind = sources[0]
        key_path = join_path(path, kind)
        ref = self.string(fields[kind][1], key_path)
        return self.resolve(fields[kind][1], key_path, kind, ref)

    def rule_sources(self, node: Node, path: str) -> tuple[str, ...]:
        sources = []
        for i, item in enumerate(self.sequence(node, path, "a list of rule files or globs")):
            source = Path(self.string(item, join_path(path, i)))
            sources.append(str(source if source.is_absolute() else self.base / source))
        return tuple(sources)

    def guards(self, node: Node, path: str) -> dict[str, Any]:
        fields = self.mapping(node, path, _GUARD_KEYS)
        out: dict[str, Any] = {}

        def positive(node: Node, path: str) -> int:
            return self.integer(node, path, 1)

        if "max_concurrent" in fields:
            out["max_concurrent"] = self.optional(fields, "max_concurrent", path, positive, 4)
        if "max_queue" in fields:
            out["max_queue"] = self.optional(fields, "max_queue", path, positive, 10_000)
        if "max_actions" in fields:
            out["max_actions"] = self.optional(fields, "max_actions", path, self.window, None)
        if "retry" in fields:
            retry_path = join_path(path, "retry")
            retry = self.mapping(fields["retry"][1], retry_path, ("initial", "max"))
            out["retry_initial"] = self.optional(retry, "initial", retry_path, self.duration, 1.0)
            out["retry_max"] = self.optional(retry, "max", retry_path, self.duration, 30.0)
        if "pause_hold" in fields:
            hold = self.optional(fields, "pause_hold", path, self.duration, DEFAULT_PAUSE_HOLD)
            out["pause_hold"] = hold
        return out

    def http(self, node: Node, path: str) -> HttpConfig:
        fields = self.mapping(node, path, _HTTP_KEYS)
        defaults = HttpConfig()

        def timeout(key: str, default: float) -> float:
            return self.optional(fields, key, path, self.duration, default)

        return HttpConfig(
            max_connections=self.optional(
                fields,
                "max_connections",
                path,
                lambda n, p: self.integer(n, p, 1),
                defaults.max_connections,
            ),
            header_timeout=timeout("header_timeout", defaults.header_timeout),
            body_timeout=timeout("body_timeout", defaults.body_timeout),
            idle_timeout=timeout("idle_timeout", defaults.idle_timeout),
        )

    def retention(self, node: Node, path: str) -> float:
        """How long audit events are kept: at least a day (``30m`` is a typo for ``30d``)."""
        seconds = self.duration(node, path)
        if seconds < 86400:
            raise self.invalid(node, path, "must be at least 1d: the audit log is the record")
        return seconds

    def window(self, node: Node, path: str) -> tuple[int, float]:
        fields = self.mapping(node, path, ("count", "per"), ("count", "per"))
        count = self.optional(fields, "count", path, lambda n, p: self.integer(n, p, 1), None)
        per = self.optional(fields, "per", path, self.duration, None)
        if count is None or per is None:
            raise Invalid
        return count, per

    def backends(self, node: Node, path: str) -> _Backends:
        fields = self.mapping(node, path, _BACKENDS)
        found = _Backends()
        for name, (_key, value) in fields.items():
            backend_path = join_path(path, name)
            backend = self.mapping(value, backend_path, _BACKEND_KEYS[name])
            if "allow" in backend:
                found.allow[name] = self.optional(backend, "allow", backend_path, self.patterns, ())
            if name == "docker":
                found.docker_url = self.optional(
                    backend, "url", backend_path, self.docker_url, DEFAULT_DOCKER_URL
                )
            if name == "kubernetes":
                found.kubernetes = self.kubernetes(backend, backend_path, found.allow)
            if name == "aws":
                found.aws = self.aws(backend, backend_path, value, found.allow)
            if name == "redis":
                found.redis = RedisConfig(
                    servers=self.servers(backend, backend_path, value, "url", server_url),
                    allow_flush=self.optional(
                        backend, "allow_flush", backend_path, self.boolean, False
                    ),
                )
                found.allow["redis"] = _exactly(found.redis.servers)
            if name == "postgresql":
                found.postgresql = PostgresqlConfig(
                    servers=self.servers(backend, backend_path, value, "dsn", server_dsn)
                )
                found.allow["postgresql"] = _exactly(found.postgresql.servers)
            if name == "prometheus":
                found.prometheus = self.api_server(backend, backend_path, value, 9090)
            if name == "alertmanager":
                found.alertmanager = self.api_server(backend, backend_path, value, 9093)
            if name == "command":
                found.command_enabled = self.optional(
                    backend, "enabled", backend_path, self.boolean, False
                )
                if found.command_enabled and "allow" not in backend:
                    self.problem(
                        backend["enabled"][0],
                        join_path(backend_path, "allow"),
                        "is required with enabled: true (the programs command.run may run)",
                    )
        return found

    def servers(
        self,
        fields: dict[str, tuple[Node, Node]],
        path: str,
        node: Node,
        key: str,
        spell: Callable[[str], str],
    ) -> tuple[Server, ...]:
        """``servers: [{url: ..., password: {env: VAR}}]`` (``dsn`` for PostgreSQL).

        The address (under ``key``) is what rules name, in the one spelling
        ``spell`` gives it, and never holds the password, which is given as a
        token is and never shown.
        """
        if "servers" not in fields:
            self.problem(node, path, "servers is required (the servers its actions may touch)")
            return ()
        servers_path = join_path(path, "servers")
        items = self.sequence(fields["servers"][1], servers_path, "a list of servers")
        if not items:
            self.problem(fields["servers"][1], servers_path, "at least one server is required")
        found: dict[str, str | None] = {}
        for i, item in enumerate(items):
            item_path = join_path(servers_path, i)
            with contextlib.suppress(Invalid):
                server = self.mapping(item, item_path, (key, "password"), (key,))
                if key not in server:
                    continue
                address_path = join_path(item_path, key)
                try:
                    address = spell(self.string(server[key][1], address_path))
                except ValueError as exc:
                    # never echo what was given: it may hold the password it should not
                    raise self.invalid(server[key][1], address_path, str(exc)) from None
                if address in found:
                    self.problem(item, address_path, f"{address} is listed twice")
                    continue
                password = None
                if "password" in server:
                    secret_node = server["password"][1]
                    secret_path = join_path(item_path, "password")
                    ref = self.mapping(secret_node, secret_path, ("value", "env", "file"))
                    password = self.secret(secret_node, secret_path, ref)
                found[address] = password
        return tuple(Server(address, password) for address, password in found.items())

    def api_server(
        self, fields: dict[str, tuple[Node, Node]], path: str, node: Node, port: int
    ) -> ApiServer | None:
        """``{url, headers, timeout}``; header values are given as tokens are (secrets)."""
        url = self.optional(fields, "url", path, self.url, None)
        if url is None:
            self.problem(node, path, f"url is required (http://HOST:{port})")
            return None
        headers: dict[str, str] = {}
        if "headers" in fields:
            headers_path = join_path(path, "headers")
            given = self.mapping(fields["headers"][1], headers_path, None, what="header: value")
            for name, (_key, value) in given.items():
                header_path = join_path(headers_path, name)
                with contextlib.suppress(Invalid):
                    if isinstance(value, ScalarNode):
                        if value.tag != "tag:yaml.org,2002:str" or not value.value:
                            # a header may hold a secret: never echo what was given
                            raise self.invalid(value, header_path, "expected a quoted string")
                        headers[name] = value.value
                    else:
                        ref = self.mapping(value, header_path, ("value", "env", "file"))
                        headers[name] = self.secret(value, header_path, ref)
        timeout = self.optional(fields, "timeout", path, self.duration, 10.0)
        return ApiServer(url=url.rstrip("/"), headers=headers, timeout=timeout)

    def aws(
        self,
        fields: dict[str, tuple[Node, Node]],
        path: str,
        node: Node,
        allow: dict[str, tuple[str, ...]],
    ) -> AwsConfig | None:
        for key, actions in _AWS_ALLOW.items():
            if key in fields:
                no_patterns: tuple[str, ...] = ()
                patterns = self.optional(fields, key, path, self.patterns, no_patterns)
                allow.update(dict.fromkeys(actions, patterns))
        if "region" not in fields:
            self.problem(node, path, "region is required")
            return None
        return AwsConfig(
            region=self.optional(fields, "region", path, self.string, "us-east-1"),
            endpoint_url=self.optional(fields, "endpoint_url", path, self.url, None),
        )

    def url(self, node: Node, path: str) -> str | None:
        if node.tag == NULL_TAG:
            return None
        value = self.string(node, path)
        if not value.startswith(("http://", "https://")):
            raise self.invalid(node, path, f"expected an http:// or https:// URL, got {value!r}")
        return value

    def sns(self, node: Node, path: str) -> SnsConfig:
        fields = self.mapping(node, path, _SNS_KEYS)
        defaults = SnsConfig()
        no_topics: tuple[str, ...] = ()
        pattern = self.optional(
            fields, "cert_url_pattern", path, self.pattern, defaults.cert_url_pattern
        )
        return SnsConfig(
            verify_signature=self.optional(fields, "verify_signature", path, self.boolean, True),
            allowed_topics=self.optional(fields, "allowed_topics", path, self.names, no_topics),
            cert_url_pattern=pattern,
            subscribe_url_pattern=self.optional(
                fields,
                "subscribe_url_pattern",
                path,
                self.pattern,
                defaults.subscribe_url_pattern,
            ),
            max_age=self.optional(fields, "max_age", path, self.duration, defaults.max_age),
            insufficient_data=self.optional(
                fields,
                "insufficient_data",
                path,
                lambda n, p: self.choice(n, p, ("ignore", "firing", "resolved")),
                "ignore",
            ),
        )

    def pattern(self, node: Node, path: str) -> str:
        text = self.string(node, path)
        try:
            re.compile(text)
        except re.error as exc:
            raise self.invalid(node, path, f"invalid regular expression: {exc}") from None
        return text

    def kubernetes(
        self,
        fields: dict[str, tuple[Node, Node]],
        path: str,
        allow: dict[str, tuple[str, ...]],
    ) -> KubernetesConfig:
        in_cluster = self.optional(fields, "in_cluster", path, self.boolean, False)
        kubeconfig = self.optional(fields, "kubeconfig", path, self.string, None)
        if in_cluster and kubeconfig is not None:
            self.problem(
                fields["kubeconfig"][0],
                join_path(path, "kubeconfig"),
                "give kubeconfig or in_cluster: true, not both",
            )
        if kubeconfig is not None:
            expanded = Path(kubeconfig).expanduser()
            kubeconfig = str(expanded if expanded.is_absolute() else self.base / expanded)
        if "namespaces" in fields:
            no_names: tuple[str, ...] = ()
            names = self.optional(fields, "namespaces", path, self.names, no_names)
            # The allow-list is exact names: a namespace is matched whole.
            allow["kubernetes"] = tuple(f"^{re.escape(n)}$" for n in names)
        return KubernetesConfig(
            kubeconfig=kubeconfig,
            context=self.optional(fields, "context", path, self.string, None),
            in_cluster=in_cluster,
        )

    def names(self, node: Node, path: str) -> tuple[str, ...]:
        items = self.sequence(node, path, "a list of names")
        return tuple(self.string(item, join_path(path, i)) for i, item in enumerate(items))

    def docker_url(self, node: Node, path: str) -> str:
        url = self.string(node, path)
        if not url.startswith(("unix://", "tcp://", "http://", "https://")):
            raise self.invalid(node, path, f"expected unix://PATH or tcp://HOST:PORT, got {url!r}")
        return url

    def patterns(self, node: Node, path: str) -> tuple[str, ...]:
        found = []
        for i, item in enumerate(self.sequence(node, path, "a list of regular expressions")):
            item_path = join_path(path, i)
            text = self.string(item, item_path)
            try:
                re.compile(text)
            except re.error as exc:
                self.problem(item, item_path, f"invalid regular expression: {exc}")
                continue
            found.append(text)
        return tuple(found)

    def auth(self, node: Node, path: str) -> AuthConfig:
        fields = self.mapping(node, path, _AUTH_KEYS)
        if "webhook_tokens" not in fields:
            # Alertmanager drops what is answered 401: an auth section without
            # webhook tokens would silently lose every alert.
            raise self.invalid(node, path, "webhook_tokens: at least one token is required")
        return AuthConfig(
            webhook_tokens=self.optional(
                fields, "webhook_tokens", path, lambda n, p: self.tokens(n, p, api=False), ()
            ),
            api_tokens=self.optional(
                fields, "api_tokens", path, lambda n, p: self.tokens(n, p, api=True), ()
            ),
        )

    def tokens(self, node: Node, path: str, *, api: bool) -> tuple[Token, ...]:
        tokens = []
        items = self.sequence(node, path, "a list of tokens")
        if not items and not api:
            raise self.invalid(node, path, "at least one token is required")
        for i, item in enumerate(items):
            try:
                tokens.append(self.token(item, join_path(path, i), i, api=api))
            except Invalid:
                continue
        return tuple(tokens)

    def token(self, node: Node, path: str, index: int, *, api: bool) -> Token:
        keys = (
            ("value", "env", "file", "name", "role")
            if api
            else ("value", "env", "file", "name", "username")
        )
        fields = self.mapping(node, path, keys, ("role",) if api else ())
        secret = self.secret(node, path, fields)
        default_name = f"{'api' if api else 'webhook'}-{index}"
        return Token(
            name=self.optional(fields, "name", path, self.string, default_name),
            secret=secret,
            role=self.optional(
                fields, "role", path, lambda n, p: self.choice(n, p, ROLES), "viewer"
            )
            if api
            else "webhook",
            username=self.optional(fields, "username", path, self.string, None),
        )

    def resolve(self, node: Node, path: str, kind: str, ref: str) -> str:
        if kind == "value":
            return ref
        value, missing = self.read_secret(kind, ref)
        if missing is None:
            return value
        if self.unresolved is None:
            raise self.invalid(node, path, missing)
        self.unresolved.append(Problem(self.file, line_of(node), None, f"{path}: {missing}"))
        return f"<unresolved {kind}: {ref}>"

    def read_secret(self, kind: str, ref: str) -> tuple[str, str | None]:
        """The secret an ``env`` or ``file`` reference names, or why it cannot be had."""
        if kind == "env":
            value = os.environ.get(ref, "")
            return value, None if value else f"environment variable {ref} is not set or empty"
        file = Path(ref) if Path(ref).is_absolute() else self.base / ref
        try:
            value = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8"
            return "", f"cannot read {file}: {reason}"
        return value, None if value else f"{file} is empty"


def _exactly(servers: tuple[Server, ...]) -> tuple[str, ...]:
    """The allow-list of a backend's servers: each address, matched whole."""
    return tuple(f"^{re.escape(server.address)}$" for server in servers)

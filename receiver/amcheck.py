"""``remedy check --alertmanager FILE``: does this Alertmanager config deliver to remedy?

Alertmanager validates its own config (``amtool check-config``); this checks
what only remedy knows: that a receiver posts to ``/webhook/alertmanager``
with the resolves remedy needs, untruncated, and with credentials that
remedy's ``auth.webhook_tokens`` accept.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from receiver.auth import Token
from receiver.config import Config
from receiver.preflight import Finding

WEBHOOK_PATH = "/webhook/alertmanager"


def check_alertmanager(path: Path, config: Config, *, tokens_known: bool = True) -> list[Finding]:
    """Findings about the Alertmanager config in ``path`` as a sender to remedy.

    ``tokens_known=False`` (remedy's own secrets could not be read) checks only
    that credentials are sent, not that they are the right ones.
    """
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8"
        return [Finding("error", str(path), f"cannot read the Alertmanager config: {reason}")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        return [Finding("error", where, f"invalid YAML: {getattr(exc, 'problem', exc)}")]
    return list(_Reader(path, tokens_known).findings(root, config))


class _Reader:
    def __init__(self, path: Path, tokens_known: bool) -> None:
        self.path = path
        self.tokens_known = tokens_known

    def at(self, node: Node) -> str:
        return f"{self.path}:{node.start_mark.line + 1}"

    def findings(self, root: Node | None, config: Config) -> Iterator[Finding]:
        receivers = _get(root, "receivers")
        used = set(_receivers_in_routes(_get(root, "route")))
        found = False
        for receiver in _items(receivers):
            name = _text(_get(receiver, "name"))
            for hook in _items(_get(receiver, "webhook_configs")):
                url = self.url(hook)
                if url is None or urlsplit(url).path.rstrip("/") != WEBHOOK_PATH:
                    continue
                found = True
                yield from self.webhook(hook, name, name in used, config)
        if not found:
            yield Finding(
                "error",
                str(self.path),
                f"no receiver has a webhook_config whose url ends in {WEBHOOK_PATH}:"
                " Alertmanager sends remedy nothing",
            )

    def url(self, hook: Node) -> str | None:
        if (url := _text(_get(hook, "url"))) is not None:
            return url
        if (file := _text(_get(hook, "url_file"))) is not None:
            try:
                return self.file(file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                return None
        return None

    def file(self, name: str) -> Path:
        """A file the config names: Alertmanager reads a relative one from the config's folder."""
        return Path(name) if Path(name).is_absolute() else self.path.parent / name

    def webhook(
        self, hook: Node, name: str | None, routed: bool, config: Config
    ) -> Iterator[Finding]:
        where = self.at(hook)
        if not routed:
            yield Finding("warning", where, f"receiver {name}: no route sends alerts to it")
        resolved = _get(hook, "send_resolved")
        if resolved is not None and (_text(resolved) or "").lower() in ("false", "no", "off", "n"):
            yield Finding(
                "error",
                self.at(resolved),
                f"receiver {name}: send_resolved: false — remedy would never hear that an"
                " alert resolved (resolves cancel waiting work and verify fixes)",
            )
        limit = _get(hook, "max_alerts")
        if limit is not None and _text(limit) not in ("0", None):
            yield Finding(
                "warning",
                self.at(limit),
                f"receiver {name}: max_alerts: {_text(limit)} — Alertmanager drops the alerts"
                " of a group beyond it, and remedy never sees them (use 0)",
            )
        if config.auth is not None:
            yield from self.credentials(hook, name, config.auth.webhook_tokens)

    def credentials(
        self, hook: Node, name: str | None, tokens: tuple[Token, ...]
    ) -> Iterator[Finding]:
        http = _get(hook, "http_config")
        bearer = _get(http, "authorization")
        basic = _get(http, "basic_auth")
        if bearer is None and (_get(http, "bearer_token") or _get(http, "bearer_token_file")):
            assert http is not None  # the older spelling: bearer_token / bearer_token_file
            yield from self.matching(http, "bearer_token", None, name, tokens)
            return
        if bearer is None and basic is None:
            yield Finding(
                "error",
                self.at(hook),
                f"receiver {name}: sends no credentials, and remedy's auth.webhook_tokens"
                " require them: every delivery would be answered 401",
            )
            return
        if bearer is not None:
            kind = _text(_get(bearer, "type")) or "Bearer"
            if kind.lower() != "bearer":
                yield Finding(
                    "error",
                    self.at(bearer),
                    f"receiver {name}: authorization type {kind}: remedy takes Bearer or"
                    " basic_auth",
                )
                return
            yield from self.matching(bearer, "credentials", None, name, tokens)
            return
        assert basic is not None
        user: str | None = ""
        if _get(basic, "username") is not None or _get(basic, "username_file") is not None:
            user, why = self.secret(basic, "username")
            if user is None:
                yield Finding("warning", self.at(basic), f"receiver {name}: {why}")
                return
        yield from self.matching(basic, "password", user, name, tokens)

    def matching(
        self,
        node: Node,
        key: str,
        username: str | None,
        name: str | None,
        tokens: tuple[Token, ...],
    ) -> Iterator[Finding]:
        """Whether the secret under ``key`` (or ``key_file``) is one remedy takes.

        A token without a username takes any basic-auth user, as the server does.
        """
        if not self.tokens_known:
            return
        secret, why = self.secret(node, key)
        if secret is None:
            yield Finding(
                "warning",
                self.at(node),
                f"receiver {name}: cannot compare its credentials with remedy's: {why}",
            )
            return
        if not any(t.secret == secret and t.username in (None, username) for t in tokens):
            kind = "bearer token" if username is None else f"basic auth for user {username}"
            yield Finding(
                "error",
                self.at(node),
                f"receiver {name}: its {kind} is not one of remedy's auth.webhook_tokens:"
                " every delivery would be answered 401",
            )

    def secret(self, node: Node, key: str) -> tuple[str | None, str]:
        if (value := _text(_get(node, key))) is not None:
            return value, ""
        file = _text(_get(node, f"{key}_file"))
        if file is None:
            return None, f"it has neither {key} nor {key}_file"
        try:
            return self.file(file).read_text(encoding="utf-8").strip(), ""
        except (OSError, UnicodeDecodeError):
            return None, f"{key}_file {file} cannot be read here"


def _receivers_in_routes(route: Node | None) -> Iterator[str]:
    if route is None:
        return
    if (name := _text(_get(route, "receiver"))) is not None:
        yield name
    for child in _items(_get(route, "routes")):
        yield from _receivers_in_routes(child)


def _get(node: Node | None, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    for key_node, value in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            found: Node = value
            return found
    return None


def _items(node: Node | None) -> list[Node]:
    return list(node.value) if isinstance(node, SequenceNode) else []


def _text(node: Node | None) -> str | None:
    return (
        node.value
        if isinstance(node, ScalarNode) and node.tag != "tag:yaml.org,2002:null"
        else None
    )

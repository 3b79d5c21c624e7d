"""What ``serve`` would refuse, or could not make work, found before it starts.

``remedy check`` reports every finding and fails on errors; ``serve`` refuses
on the ones marked ``refuses`` and logs the rest, so that a check that passes
predicts a server that starts and can do what its rules say.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Iterator

from receiver.config import Config, is_postgresql
from rules import RuleSet

# Actions of these backends need the backend's section in the config (a client to call).
CLIENT_BACKENDS = ("docker", "kubernetes", "aws", "redis", "postgresql")


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong: an ``error`` fails ``remedy check``, a ``warning`` is only shown.

    ``refuses`` marks what ``serve`` refuses to start with.
    """

    level: str
    where: str
    message: str
    refuses: bool = False

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


def findings(config: Config, ruleset: RuleSet) -> list[Finding]:
    """Everything in ``config`` and ``ruleset`` that serve refuses or that cannot work."""
    return [
        *_listen(config),
        *_storage(config),
        *_backends(config, ruleset),
        *_preconditions(config, ruleset),
        *_silences(config, ruleset),
    ]


def mode(config: Config, ruleset: RuleSet) -> str:
    """Dry-run or LIVE, in plain words, with the rules that stay dry-run in a live config."""
    if config.dry_run:
        return "dry-run: records what it would do, touches nothing"
    dry = [rule.name for rule in ruleset if rule.guards.dry_run]
    also = f" ({len(dry)} of {len(ruleset)} rules dry-run: {', '.join(dry)})" if dry else ""
    return f"LIVE: rules act on their targets{also}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _where(config: Config, key: str) -> str:
    if config.file is None:
        return ""
    line = config.lines.get(key, 0)
    return f"{config.file}:{line}" if line else config.file


def _listen(config: Config) -> Iterator[Finding]:
    if config.auth is None and not is_loopback(config.host):
        yield Finding(
            "error",
            _where(config, "listen"),
            f"refusing to listen on {config.host}: without an auth section remedy listens "
            "only on loopback (configure auth: or listen on 127.0.0.1)",
            refuses=True,
        )


def _storage(config: Config) -> Iterator[Finding]:
    if is_postgresql(config.storage):
        return
    folder = config.sqlite_path.parent.absolute()
    if not folder.is_dir():
        yield Finding(
            "error",
            _where(config, "storage"),
            f"storage: the directory {folder} does not exist (remedy creates the file, not "
            "its directory)",
        )
    elif not os.access(folder, os.W_OK | os.X_OK):
        yield Finding("error", _where(config, "storage"), f"storage: cannot write in {folder}")


def _backends(config: Config, ruleset: RuleSet) -> Iterator[Finding]:
    """Rules whose actions need a backend the config lacks: an error for a live rule.

    Dry-run rules only record, so for them it is one warning per backend.
    """
    configured = {
        "docker": config.docker_url is not None,
        "kubernetes": config.kubernetes is not None,
        "aws": config.aws is not None,
        "redis": config.redis is not None,
        "postgresql": config.postgresql is not None,
    }
    dry: dict[str, list[str]] = {}
    for rule in ruleset:
        for step in (*rule.actions, *rule.on_failure):
            backend = step.action.split(".", 1)[0]
            if backend not in CLIENT_BACKENDS or configured[backend]:
                continue
            if config.dry_run or rule.guards.dry_run:
                dry.setdefault(backend, []).append(rule.name)
                continue
            yield Finding(
                "error",
                f"{rule.file}:{step.line or rule.line}",
                f"rule {rule.name}: {step.action} needs backends.{backend}, which the config "
                "lacks: it would fail every time",
            )
    for backend, names in dry.items():
        unique = list(dict.fromkeys(names))
        yield Finding(
            "warning",
            _where(config, "backends"),
            f"backends.{backend} is not configured: {len(unique)} dry-run"
            f" {'rule' if len(unique) == 1 else 'rules'} would fail if"
            f" {'it' if len(unique) == 1 else 'they'} ran live ({', '.join(unique)})",
        )


def _preconditions(config: Config, ruleset: RuleSet) -> Iterator[Finding]:
    """Rules asking Prometheus (``when:``, ``verify.query``) with no ``backends.prometheus``."""
    if config.prometheus is not None:
        return
    for rule in ruleset:
        live = not (config.dry_run or rule.guards.dry_run)
        level = "error" if live else "warning"
        if rule.when:
            yield Finding(
                level,
                f"{rule.file}:{rule.when[0].line or rule.line}",
                f"rule {rule.name}: when: needs backends.prometheus, which the config lacks:"
                " every remediation would end precondition_error",
            )
        if rule.verify is not None and rule.verify.query is not None:
            yield Finding(
                level,
                f"{rule.file}:{rule.verify.query.line or rule.line}",
                f"rule {rule.name}: verify.query needs backends.prometheus, which the config"
                " lacks: every success would end ineffective",
            )


def _silences(config: Config, ruleset: RuleSet) -> Iterator[Finding]:
    """Rules with ``silence:`` and no ``backends.alertmanager``: they run, unsilenced."""
    if config.alertmanager is not None:
        return
    for rule in ruleset:
        if rule.silence is not None:
            yield Finding(
                "warning",
                f"{rule.file}:{rule.line}",
                f"rule {rule.name}: silence: needs backends.alertmanager: its alert would page"
                " people while it is remediated (audited as a failed silence)",
            )

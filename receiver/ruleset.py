"""The rule set a service runs: loading it, refusing what it cannot enforce, reloading it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from receiver.audit import AuditRecord
from receiver.config import Config
from receiver.service import Service
from remediations import Registry, builtin_registry
from rules import RuleLoadError
from rules.index import RuleSet
from rules.loader import load_rules

log = structlog.get_logger("remedy.rules")


def longest_window(ruleset: RuleSet, config: Config) -> float:
    """The longest look back any guard takes over past executions, in seconds."""
    windows = [config.max_actions[1]] if config.max_actions else []
    for rule in ruleset:
        guards = rule.guards
        windows += [guards.rate_limit.per] if guards.rate_limit else []
        windows += [guards.cooldown] if guards.cooldown else []
        windows += [guards.blast_radius.per] if guards.blast_radius else []
    return max(windows, default=0.0)


def registry_for(config: Config) -> Registry:
    """The built-in actions as ``config`` allows them: command.run only when enabled,
    redis.flushdb only with ``backends.redis.allow_flush``."""
    registry = builtin_registry()
    if not config.command_enabled:
        registry.disable("command.run", "set backends.command.enabled: true (and its allow)")
    if config.redis is None or not config.redis.allow_flush:
        registry.disable("redis.flushdb", "set backends.redis.allow_flush: true (and its servers)")
    return registry


def load_ruleset(sources: Sequence[str], registry: Registry) -> RuleSet:
    """Load and validate rules against the actions of ``registry``."""
    return load_rules(sources, registry)


async def reload_rules(service: Service, actor: str) -> RuleSet:
    """Load the rules from disk again; an invalid set raises and the old one stays."""
    old = service.planner.rules
    try:
        ruleset = await asyncio.to_thread(load_ruleset, service.config.rules, service.registry)
    except RuleLoadError as exc:
        log.error("rules.reload_rejected", problems=[str(p) for p in exc.problems], actor=actor)
        raise
    service.planner.rules = ruleset
    service.metrics.rules_loaded.set(len(ruleset))
    await service.store.record(
        [
            AuditRecord(
                "rules_reloaded",
                actor=actor,
                reason=f"{len(ruleset)} rules, version {old.version} -> {ruleset.version}",
            )
        ]
    )
    log.info("rules.reloaded", rules=len(ruleset), version=ruleset.version, actor=actor)
    return ruleset

"""The rule set a service runs: loading it, refusing what it cannot enforce, reloading it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import structlog

from receiver.audit import AuditRecord
from receiver.service import Service
from remediations import Registry, builtin_registry
from rules import Problem, Rule, RuleLoadError
from rules.index import RuleSet
from rules.loader import load_rules

log = structlog.get_logger("remedy.rules")


def load_ruleset(sources: Sequence[str], registry: Registry | None = None) -> RuleSet:
    """Load and validate rules against the actions of ``registry`` (default: the built-ins)."""
    return load_rules(sources, registry or builtin_registry())


_NOT_YET_ENFORCED: tuple[tuple[str, Callable[[Rule], object]], ...] = (
    ("for", lambda rule: rule.for_),
    ("guards.rate_limit", lambda rule: rule.guards.rate_limit),
    ("guards.cooldown", lambda rule: rule.guards.cooldown),
    ("guards.require_approval", lambda rule: rule.guards.require_approval),
    ("guards.lock_wait", lambda rule: rule.guards.lock_wait),
    ("guards.blast_radius", lambda rule: rule.guards.blast_radius),
)


def check_enforceable(ruleset: RuleSet) -> None:
    """Refuse to run live a rule that relies on a guard this version does not enforce yet.

    A rule that says ``rate_limit`` must never run without one: until the
    guarded executor lands, such a rule may only run in dry-run.
    """
    problems = [
        Problem(
            rule.file,
            rule.line,
            rule.name,
            f"{key} is not enforced by this version of remedy yet; keep dry_run on "
            "(dry_run: true in the config, or guards.dry_run: true on this rule)",
        )
        for rule in ruleset.rules
        if not rule.guards.dry_run
        for key, uses in _NOT_YET_ENFORCED
        if uses(rule)
    ]
    if problems:
        raise RuleLoadError(problems)


async def reload_rules(service: Service, actor: str) -> RuleSet:
    """Load the rules from disk again; an invalid set raises and the old one stays."""
    old = service.planner.rules
    try:
        ruleset = await asyncio.to_thread(load_ruleset, service.config.rules, service.registry)
        if not service.config.dry_run:
            check_enforceable(ruleset)
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

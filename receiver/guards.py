"""The guard stage: may this remediation run now? One decision, one reason.

The decision is a pure function of facts read inside the claim transaction,
so two workers (or two replicas) can never both pass a guard that only one
of them should: the store serialises claims, and every fact — executions,
locks, breakers, pause — lives in the store and survives restarts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from receiver.clock import timestamp

GLOBAL_BREAKER = "global"
BUSY = "busy"  # max_concurrent actions are running: the claim waits (never a skip reason)
DEFAULT_APPROVAL_TIMEOUT = 3600.0
"""How long a remediation waits for an operator when its rule sets no approval_timeout."""


def scope_breaker(scope: str) -> str:
    """The breaker name of one blast-radius scope."""
    return f"scope:{scope}"


@dataclasses.dataclass(frozen=True, slots=True)
class GuardSpec:
    """A rule's guard rails as snapshotted into a remediation when it was planned."""

    rate_limit: tuple[int, float] | None = None
    cooldown: float | None = None
    lock_wait: float | None = None
    blast_radius: tuple[str, int, float] | None = None  # rendered scope, max targets, window
    require_approval: bool = False
    approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT
    for_: float | None = None
    verify_within: float | None = None  # resolved_within: the alert's resolve verifies
    # verify.query, rendered: {query, expect, within}; the verifier asks it until it holds
    verify_query: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON kept with the remediation (one level: its tuples are written as lists)."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> GuardSpec:
        """Read back what :meth:`to_json` wrote (tuples come back as lists)."""
        if not data:
            return cls()
        rate = data.get("rate_limit")
        blast = data.get("blast_radius")
        return cls(
            rate_limit=(int(rate[0]), float(rate[1])) if rate else None,
            cooldown=data.get("cooldown"),
            lock_wait=data.get("lock_wait"),
            blast_radius=(str(blast[0]), int(blast[1]), float(blast[2])) if blast else None,
            require_approval=bool(data.get("require_approval")),
            approval_timeout=float(data.get("approval_timeout") or DEFAULT_APPROVAL_TIMEOUT),
            for_=data.get("for_"),
            verify_within=data.get("verify_within"),
            verify_query=data.get("verify_query"),
        )


FOLLOWUP_GUARDS = GuardSpec()
"""An on_failure run's own guards: none of the rule's (its rate limit and cooldown count the
remediation, not the page about it), so only pause, resolve, allow-lists, the global breaker
and the target's lock apply."""


@dataclasses.dataclass(frozen=True, slots=True)
class GlobalLimits:
    """Service-wide guard rails from the config (``guards.max_actions``, ``max_concurrent``).

    Both count every replica's actions: they are read from the store.
    """

    max_actions: tuple[int, float] | None = None
    max_concurrent: int | None = None


class GuardFacts(Protocol):
    """What the guards read, inside the claim transaction. ``dry_run`` keeps what-if apart."""

    def resolved(self, occurrence: str) -> bool: ...

    def paused(self) -> bool: ...

    def open_breakers(self, names: list[str]) -> list[str]: ...

    def executions(
        self, *, since: str, dry_run: bool, rule: str | None = None, target: str | None = None
    ) -> int: ...

    def last_execution(self, rule: str, target: str, dry_run: bool) -> str | None: ...

    def lock_holder(self, target: str) -> int | None: ...

    def running(self) -> int:
        """Live actions running now, on every replica (each holds its target's lock)."""
        ...

    def reset_at(self, breaker: str) -> str | None: ...

    def scope_targets(self, scope: str, since: str, dry_run: bool) -> set[str]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """The guards' answer: run, or skip with a reason (and maybe a breaker to open)."""

    reason: str | None = None
    detail: str | None = None
    open_breaker: str | None = None

    @property
    def allowed(self) -> bool:
        """Whether the remediation may run."""
        return self.reason is None


ALLOW = Decision()


def decide(
    facts: GuardFacts,
    *,
    rule: str,
    target: str,
    occurrence: str | None,
    spec: GuardSpec,
    limits: GlobalLimits,
    now: datetime,
    dry_run: bool,
    denied: str | None = None,
    before: str = "the remediation could run",
    precondition: Decision | None = None,
) -> Decision:
    """Apply every guard in order; the first that objects decides.

    ``occurrence`` is the firing alert's occurrence, checked for a resolve;
    ``None`` for remediations that a resolved notification itself triggered.
    ``before`` names what would start, for the reason given when a resolve
    stops it. ``precondition`` is what Prometheus answered to the rule's
    ``when:`` (a ``precondition`` or ``precondition_error`` decision when not
    met). Every claim goes through here, ``on_failure`` included (with
    :data:`FOLLOWUP_GUARDS`).
    """
    if not (stop := halt(facts, occurrence=occurrence, before=before)).allowed:
        return stop
    if denied is not None:
        return Decision("denied", denied)
    scope = spec.blast_radius[0] if spec.blast_radius else None
    names = [GLOBAL_BREAKER] + ([scope_breaker(scope)] if scope is not None else [])
    if opened := facts.open_breakers(names):
        return Decision("breaker_open", f"breaker {opened[0]} is open until an operator resumes")
    if spec.rate_limit is not None:
        count, per = spec.rate_limit
        done = facts.executions(since=_ago(now, per), dry_run=dry_run, rule=rule, target=target)
        if done >= count:
            return Decision("rate_limited", f"{done} executions on {target} in the last {per:g}s")
    if spec.cooldown is not None:
        last = facts.last_execution(rule, target, dry_run)
        if last is not None and last > _ago(now, spec.cooldown):
            return Decision("cooldown", f"last execution on {target} at {last}")
    if not dry_run and (holder := facts.lock_holder(target)) is not None:
        return Decision("locked", f"remediation {holder} holds {target}")
    if spec.blast_radius is not None:
        scope_name, max_targets, per = spec.blast_radius
        since = _window_start(facts, scope_breaker(scope_name), now, per)
        touched = facts.scope_targets(scope_name, since, dry_run)
        if target not in touched and len(touched) >= max_targets:
            return Decision(
                "breaker_open",
                f"{len(touched)} targets in scope {scope_name} within {per:g}s; breaker opened",
                open_breaker=scope_breaker(scope_name),
            )
    if limits.max_actions is not None:
        count, per = limits.max_actions
        done = facts.executions(
            since=_window_start(facts, GLOBAL_BREAKER, now, per), dry_run=dry_run
        )
        if done >= count:
            return Decision(
                "breaker_open",
                f"{done} actions within {per:g}s; global breaker opened",
                open_breaker=GLOBAL_BREAKER,
            )
    busy = limits.max_concurrent
    if not dry_run and busy is not None and (running := facts.running()) >= busy:
        return Decision(BUSY, f"{running} actions running (max_concurrent {busy})")
    if precondition is not None and not precondition.allowed:
        return precondition  # last: Prometheus is asked of the present, the guards first
    return ALLOW


def waits(decision: Decision, spec: GuardSpec, *, give_up: bool, followup: bool = False) -> bool:
    """Whether a claim the guards refused stays queued, to be tried again soon.

    It waits while ``max_concurrent`` actions run, and for a locked target as
    long as the rule's ``lock_wait`` allows (``give_up`` once that has
    passed); an on_failure run always waits for its target's lock.
    """
    if decision.reason == BUSY:
        return True
    if decision.reason == "locked":
        return followup or (bool(spec.lock_wait) and not give_up)
    return False


def halt(facts: GuardFacts, *, occurrence: str | None, before: str) -> Decision:
    """Whether anything more may start for a remediation: a resolve or a pause stops it.

    Asked before the first step (as part of :func:`decide`), before every
    further step and retry, and before ``on_failure``; ``before`` names what
    would have started, for the audit.
    """
    if occurrence is not None and facts.resolved(occurrence):
        return Decision("cancelled", f"the alert resolved before {before}")
    if facts.paused():
        return Decision("paused", "remedy is paused")
    return ALLOW


def held_too_long(held_since: str, now: datetime, pause_hold: float) -> bool:
    """Whether work held by a pause has waited past ``guards.pause_hold`` and is dropped.

    Held work that is still fresh goes through every guard at resume, as if it
    had just come due; older work describes a past that no longer holds.
    """
    return held_since < _ago(now, pause_hold)


def _ago(now: datetime, seconds: float) -> str:
    return timestamp(now - timedelta(seconds=seconds))


def _window_start(facts: GuardFacts, breaker: str, now: datetime, per: float) -> str:
    """A breaker's window starts ``per`` ago, or when an operator last closed it if later."""
    return max(_ago(now, per), facts.reset_at(breaker) or "")

"""The parsed rule: immutable values the loader builds and the pipeline reads.

Everything here has already been validated by :mod:`rules.loader`; these
types carry no parsing logic, only the meaning of a loaded rule (which alerts
it matches, what it targets, which guard rails apply, which steps run).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Protocol

from rules.alert import Alert
from rules.matchers import Matcher
from rules.promql import Precondition
from rules.template import Template

RULE_SOURCES: tuple[str, ...] = ("any", "alertmanager", "cloudwatch")
RULE_STATUSES: tuple[str, ...] = ("firing", "resolved")


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` executions per rule and target in any ``per`` seconds."""

    count: int
    per: float


@dataclasses.dataclass(frozen=True, slots=True)
class BlastRadius:
    """At most ``max_targets`` distinct targets per rendered ``scope`` in ``per`` seconds.

    Past it the scope's breaker opens until an operator resumes it, so one bad
    rule cannot walk through a whole namespace or account.
    """

    scope: Template
    max_targets: int
    per: float


@dataclasses.dataclass(frozen=True, slots=True)
class Guards:
    """The guard rails of one rule; the defaults are the least restrictive.

    Durations are in seconds. ``dry_run`` can only make a rule safer than the
    global setting, never less safe.
    """

    rate_limit: RateLimit | None = None
    cooldown: float | None = None
    require_approval: bool = False
    approval_timeout: float | None = None
    dry_run: bool = False
    lock_wait: float | None = None
    blast_radius: BlastRadius | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ActionStep:
    """One step of a playbook: an action name and its compiled params.

    ``params`` is the output of :func:`rules.template.compile_params`; render
    it per alert with :func:`rules.template.render_params`. ``line`` is where
    the step starts in its rule file, for error messages and the audit log.
    """

    action: str
    params: object
    timeout: float = 60.0
    retries: int = 0
    continue_on_error: bool = False
    line: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Verify:
    """Did it work? The alert resolves within ``resolved_within``, and/or ``query`` holds.

    With ``query``, Prometheus is asked until it holds (``verified``) or
    ``within`` passes (``ineffective``, and ``on_failure`` runs); with both,
    the alert must also have resolved. Without, the resolve alone verifies.
    """

    resolved_within: float | None = None
    query: Precondition | None = None
    within: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Silence:
    """While the remediation runs, silence its alert in Alertmanager for up to ``duration``."""

    duration: float
    comment: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """One loaded rule: which alerts it matches and the guarded playbook it runs."""

    name: str
    description: str
    source: str
    status: str
    alertname: str | None
    matchers: tuple[Matcher, ...]
    for_: float | None
    target: Template
    guards: Guards
    actions: tuple[ActionStep, ...]
    verify: Verify | None
    on_failure: tuple[ActionStep, ...]
    file: str
    line: int
    when: tuple[Precondition, ...] = ()
    silence: Silence | None = None

    def matches(self, alert: Alert) -> bool:
        """Whether the alert passes the rule's source, status, alertname and matchers."""
        return self._failed(alert) is None

    def mismatch(self, alert: Alert) -> str | None:
        """Why the alert does not match the rule, or ``None`` when it does."""
        failed = self._failed(alert)
        if failed is None:
            return None
        if isinstance(failed, Matcher):
            value = self._value(failed, alert)
            shown = "absent" if value is None else repr(value)
            return f"matcher {failed}: {failed.name} is {shown}"
        if failed == "source":
            return f"source: the rule takes {self.source}, the alert came from {alert.source}"
        if failed == "status":
            return f"status: the rule takes {self.status} alerts, this one is {alert.status}"
        return f"alertname: the rule takes {self.alertname!r}, the alert is {alert.name!r}"

    def _failed(self, alert: Alert) -> str | Matcher | None:
        """The first condition the alert fails: a field's name or a matcher; ``None`` if none.

        A matcher on ``alertname`` falls back to the alert's name when the
        alert carries no such label (CloudWatch alarms), so both spellings of
        "this alert" select the same alerts. Nothing is formatted here: this
        runs for every candidate rule of every alert.
        """
        if self.source not in ("any", alert.source):
            return "source"
        if alert.status != self.status:
            return "status"
        if self.alertname is not None and alert.name != self.alertname:
            return "alertname"
        for matcher in self.matchers:
            if not matcher.matches_value(self._value(matcher, alert) or ""):
                return matcher
        return None

    @staticmethod
    def _value(matcher: Matcher, alert: Alert) -> str | None:
        if matcher.name == "alertname":
            return alert.labels.get("alertname", alert.name)
        return alert.labels.get(matcher.name)

    @property
    def fixed_alertname(self) -> str | None:
        """The one alert name this rule can match, if the rule pins it down.

        From ``match.alertname`` or an ``alertname="X"`` matcher; used to index rules.
        """
        if self.alertname is not None:
            return self.alertname
        for matcher in self.matchers:
            if matcher.name == "alertname" and matcher.op == "=":
                return matcher.value
        return None


class ActionCatalog(Protocol):
    """What the rule loader needs to know about actions, without importing them.

    ``rules`` must not depend on ``remediations``; the receiver passes the
    action registry, which satisfies this protocol.
    """

    def action_names(self) -> Collection[str]:
        """Every action a rule may name."""
        ...

    def check_params(self, action: str, params: object) -> list[tuple[str, str]]:
        """Problems with ``params`` as (field path relative to params, message); empty if valid.

        The loader passes :func:`rules.template.sample_params` of the compiled params.
        """
        ...

"""Every metric remedy exports, defined once on a registry of its own.

Labels are bounded: source, status, rule, action, outcome, route — never a
fingerprint, a pod or a container name.
"""

from __future__ import annotations

from typing import Any, Self

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as _Counter
from prometheus_client import Histogram as _Histogram
from prometheus_client.metrics import MetricWrapperBase

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_ACTIONS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class _Remembered(MetricWrapperBase):
    """A labelled metric whose children are looked up once per label set.

    ``labels()`` validates and locks on every call; remedy's label values are
    bounded (see above), so each set's child is kept after its first use: the
    webhook path asks for several per request. Only label sets of strings are
    kept (the client files a child under ``str()`` of each value, which
    ``1``, ``1.0`` and ``True`` would not share as keys here).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._remembered: dict[tuple[str, ...], Self] = {}

    def labels(self, *values: Any, **named: Any) -> Self:
        child = None if named else self._remembered.get(values)
        if child is None:
            child = super().labels(*values, **named)
            if values and all(type(value) is str for value in values):
                self._remembered[values] = child
        return child

    def remove(self, *values: Any) -> None:
        self._remembered.clear()
        super().remove(*values)

    def remove_by_labels(self, labels: dict[str, str]) -> None:
        self._remembered.clear()
        super().remove_by_labels(labels)

    def clear(self) -> None:
        self._remembered.clear()
        super().clear()


class Counter(_Remembered, _Counter):
    """A counter (see :class:`_Remembered`)."""


class Histogram(_Remembered, _Histogram):
    """A histogram (see :class:`_Remembered`)."""


class Metrics:
    """The service's metrics; one instance per app, so tests never share counters."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.alerts_received = Counter(
            "remedy_alerts_received",
            "Alerts received, by source and status.",
            ["source", "status"],
            registry=r,
        )
        self.alerts_duplicate = Counter(
            "remedy_alerts_duplicate",
            "Alerts delivered again and ignored, by source.",
            ["source"],
            registry=r,
        )
        self.audit_pruned = Counter(
            "remedy_audit_pruned_events",
            "Audit events dropped by retention (the checkpoint keeps the chain verifiable).",
            registry=r,
        )
        self.alerts_truncated = Counter(
            "remedy_alerts_truncated",
            "Alerts Alertmanager left out of a webhook (truncatedAlerts).",
            registry=r,
        )
        self.webhook_rejected = Counter(
            "remedy_webhook_rejected",
            "Webhook deliveries refused, by source and reason.",
            ["source", "reason"],
            registry=r,
        )
        self.rule_matches = Counter(
            "remedy_rule_matches",
            "Alerts a rule matched, by rule.",
            ["rule"],
            registry=r,
        )
        self.actions = Counter(
            "remedy_actions",
            "Action runs by action and outcome.",
            ["action", "outcome"],
            registry=r,
        )
        self.precondition_errors = Counter(
            "remedy_precondition_errors",
            "Preconditions (when:) that could not be asked of Prometheus, by rule: the"
            " remediation did not run.",
            ["rule"],
            registry=r,
        )
        self.remediations = Counter(
            "remedy_remediations",
            "Remediations reaching a final state, by rule and state.",
            ["rule", "state"],
            registry=r,
        )
        self.guard_decisions = Counter(
            "remedy_guard_decisions",
            "Guard decisions on claimed remediations, by rule and decision"
            " (allowed, dry_run, or the reason to skip).",
            ["rule", "decision"],
            registry=r,
        )
        self.skipped = Counter(
            "remedy_remediations_skipped",
            "Remediations skipped, by rule and reason.",
            ["rule", "reason"],
            registry=r,
        )
        self.verifications = Counter(
            "remedy_verifications",
            "Remediations checked by verify, by rule and result (verified or ineffective).",
            ["rule", "result"],
            registry=r,
        )
        self.paused = Gauge("remedy_paused", "1 while an operator has paused remedy.", registry=r)
        self.breakers_open = Gauge(
            "remedy_breakers_open", "Circuit breakers open (global and per scope).", registry=r
        )
        self.action_duration = Histogram(
            "remedy_action_duration_seconds",
            "How long actions ran, by action.",
            ["action"],
            buckets=_ACTIONS,
            registry=r,
        )
        self.store_write = Histogram(
            "remedy_store_write_seconds",
            "Time of one group commit to storage.",
            buckets=_FAST,
            registry=r,
        )
        self.store_batch = Histogram(
            "remedy_store_batch_size",
            "Write jobs in one group commit.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.http_requests = Histogram(
            "remedy_http_request_duration_seconds",
            "HTTP requests served, by route and status.",
            ["method", "route", "status"],
            buckets=_FAST,
            registry=r,
        )
        self.http_connections = Gauge(
            "remedy_http_connections",
            "HTTP connections open now (remedy serve only).",
            registry=r,
        )
        self.http_connections_closed = Counter(
            "remedy_http_connections_closed",
            "Connections remedy closed on a client, by reason: limit (the longest idle, to"
            " make room), refused (at the limit with none idle), header_timeout, body_timeout.",
            ["reason"],
            registry=r,
        )
        self.http_accept_errors = Counter(
            "remedy_http_accept_errors",
            "Failed accept() calls (out of file descriptors or memory).",
            registry=r,
        )
        self.queue_depth = Gauge(
            "remedy_queue_depth",
            "Remediations waiting for a worker.",
            registry=r,
        )
        self.rules_loaded = Gauge("remedy_rules_loaded", "Rules currently loaded.", registry=r)
        self.dry_run = Gauge(
            "remedy_dry_run", "1 when the service runs in dry-run mode.", registry=r
        )

    def observe_commit(self, seconds: float, jobs: int) -> None:
        """Record one group commit (called from the writer thread; the client is thread-safe)."""
        self.store_write.observe(seconds)
        self.store_batch.observe(jobs)

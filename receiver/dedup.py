"""The dedup stage: when two deliveries are one alert, and which firing episode a resolve ends.

A delivery is the same notification as another when source, fingerprint,
start and status agree (:attr:`rules.alert.Alert.dedup_key`); the store keeps
that unique, so retries, HA peers and SNS redeliveries start nothing new.
CloudWatch needs two more rules, because its OK carries the time the alarm
cleared, not when it began, and SNS may deliver out of order:

* an OK ends the latest ALARM episode of the same alarm that began before it;
* an ALARM that arrives after the OK that ended it is stale and starts nothing.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Protocol

from rules.alert import Alert

STALE_ALARM = "the alarm had already returned to OK when this ALARM arrived"


class EpisodeFacts(Protocol):
    """What the episode rules read about an alarm's stored history, inside the ingest."""

    def latest_firing_start(self, source: str, fingerprint: str, until: str) -> str | None:
        """The start of the latest firing episode that began at or before ``until``."""
        ...

    def resolved_after(self, source: str, fingerprint: str, since: str) -> bool:
        """Whether a resolve of this alarm ended after ``since``."""
        ...


def episode(alert: Alert, facts: EpisodeFacts) -> Alert:
    """The alert with a CloudWatch OK tied to the ALARM episode it ends (others unchanged)."""
    if alert.source != "cloudwatch" or alert.status != "resolved":
        return alert
    start = facts.latest_firing_start(alert.source, alert.fingerprint, alert.starts_at.isoformat())
    if start is None:
        return alert
    return dataclasses.replace(alert, starts_at=datetime.fromisoformat(start))


def stale(alert: Alert, facts: EpisodeFacts) -> bool:
    """A CloudWatch ALARM that SNS delivered after the OK that ended it."""
    if alert.source != "cloudwatch" or alert.status != "firing":
        return False
    return facts.resolved_after(alert.source, alert.fingerprint, alert.starts_at.isoformat())

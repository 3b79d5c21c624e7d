"""The verify stage: did the remediation work? The alert must resolve within ``verify``.

A success with ``verify.resolved_within`` waits (``verifying``) for the
alert's resolve: the resolve makes it ``verified``, the deadline
``ineffective`` (and its ``on_failure`` is due). When the alert had already
resolved by the time the last step finished, it is verified at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from receiver.clock import timestamp
from receiver.store.base import VERIFYING, Remediation
from receiver.transition import Move


def after_success(rem: Remediation, *, resolved: bool, now: datetime) -> Move | None:
    """A success that must be verified; ``None`` when its rule asks for no verification."""
    within = rem.guards.verify_within
    if not within or rem.on_resolved_alert:
        return None
    if resolved:
        return Move("verified", events=[("verified", None, None)])
    return Move(VERIFYING, due_at=timestamp(now + timedelta(seconds=within)))


def resolved() -> Move:
    """The resolve arrived in time."""
    return Move("verified", events=[("verified", None, None)])


def deadline(rem: Remediation) -> Move:
    """The deadline passed and the alert still fires: ineffective; on_failure is due."""
    return Move(
        "ineffective",
        followup=bool(rem.on_failure),
        events=[("ineffective", "the alert did not resolve in time", None)],
    )

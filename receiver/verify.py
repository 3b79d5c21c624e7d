"""The verify stage: did the remediation work?

By the alert: a success with ``verify.resolved_within`` waits (``verifying``)
for the alert's resolve: the resolve makes it ``verified``, the deadline
``ineffective`` (and its ``on_failure`` is due). When the alert had already
resolved by the time the last step finished, it is verified at once.

By a query: with ``verify.query`` the verifier (:mod:`receiver.verifier`)
asks Prometheus until the query holds — and, with ``resolved_within`` too,
the alert has resolved — or ``within`` passes; it owns that deadline, so no
timer is set, and a resolve alone verifies nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from receiver.clock import timestamp
from receiver.store.base import VERIFYING, Remediation
from receiver.transition import Move


def after_success(rem: Remediation, *, resolved: bool, now: datetime) -> Move | None:
    """A success that must be verified; ``None`` when its rule asks for no verification."""
    if rem.on_resolved_alert:
        return None
    if rem.guards.verify_query is not None:
        return Move(VERIFYING)  # the verifier asks Prometheus and keeps the deadline
    within = rem.guards.verify_within
    if not within:
        return None
    if resolved:
        return Move("verified", events=[("verified", None, None)])
    return Move(VERIFYING, due_at=timestamp(now + timedelta(seconds=within)))


def resolved(rem: Remediation) -> Move | None:
    """The resolve arrived in time: verified, unless a query decides (``None``)."""
    if rem.guards.verify_query is not None:
        return None
    return Move("verified", events=[("verified", None, None)])


def deadline(rem: Remediation) -> Move:
    """The deadline passed and the alert still fires: ineffective; on_failure is due."""
    return Move(
        "ineffective",
        followup=bool(rem.on_failure),
        events=[("ineffective", "the alert did not resolve in time", None)],
    )


def by_query(rem: Remediation, *, held: bool, observed: str) -> Move:
    """What the verifier found: the query held (verified), or the time ran out (ineffective).

    ``observed`` (the query, its answer, what was expected) is in the event.
    """
    if held:
        return Move("verified", events=[("verified", f"verify.query held: {observed}", None)])
    return Move(
        "ineffective",
        followup=bool(rem.on_failure),
        events=[("ineffective", "verify.query did not hold in time", observed)],
    )


def query_deadline(rem: Remediation) -> datetime:
    """When a query-verified remediation runs out of time: from when it began verifying."""
    spec = rem.guards.verify_query or {}
    longest = max(float(spec.get("within") or 0), float(rem.guards.verify_within or 0))
    return datetime.fromisoformat(rem.updated_at) + timedelta(seconds=longest)

"""The remediation lifecycle: which state a remediation takes, and why, at each turn.

Pure functions of a remediation (or a plan), the time and what the store
knows, answering a :class:`Move`: the new state, its reason and timer, the
audit events that say so, and whether the work is now ready for a worker.
Every store applies the same moves, so SQLite and PostgreSQL cannot drift;
a store adapter only persists and queries.

    planned ─┬─ skipped (template_error...)
             ├─ waiting ── for: elapsed ─┬─ queued
             │                           └─ pending_approval
             ├─ pending_approval ─┬─ approved → queued
             │                    ├─ rejected / expired → skipped
             └─ queued ── claimed (guards) → running → succeeded ─┬─ verifying ─┬─ verified
                                                   → failed...    │             └─ ineffective
                                                                  └─ verified (already resolved)

A resolve cancels what still waits (``waiting``, ``pending_approval``,
``queued``) and verifies what waited for it (``verifying``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from receiver import verify
from receiver.clock import timestamp
from receiver.guards import held_too_long
from receiver.store.base import (
    PENDING_APPROVAL,
    QUEUED,
    VERIFYING,
    WAITING,
    Plan,
    Remediation,
)
from receiver.transition import Move
from rules.alert import Alert


def planned(plan: Plan, alert: Alert, now: datetime) -> Move:
    """The state a new remediation starts in.

    A plan that could not be rendered is skipped; a firing alert younger than
    ``for:`` waits; an approval holds it; otherwise it is queued at once.
    """
    spec = plan.guards
    if plan.skip_reason:
        return Move("skipped", plan.skip_reason, events=[("skipped", plan.skip_reason, plan.error)])
    if alert.status == "firing" and spec.for_:
        due = alert.starts_at + timedelta(seconds=spec.for_)
        if due > now:
            at = timestamp(due)
            return Move(WAITING, due_at=at, events=[("queued", f"waiting for: until {at}", None)])
    if spec.require_approval:
        return _awaiting_approval(now, spec.approval_timeout)
    return Move(QUEUED, ready=True)


def resolved(rem: Remediation) -> Move | None:
    """What a stored resolve does to a remediation of its occurrence; ``None``: nothing.

    What still waits is cancelled; what waited for the resolve is verified.
    Work that a resolved notification itself started is not touched.
    """
    if rem.on_resolved_alert:
        return None
    if rem.state == VERIFYING:
        return verify.resolved(rem)
    if rem.state in (WAITING, PENDING_APPROVAL, QUEUED):
        error = f"the alert resolved while the remediation was {rem.state}"
        return Move("skipped", "cancelled", events=[("skipped", "cancelled", error)])
    return None


def timer(rem: Remediation, now: datetime) -> Move:
    """A due timer fires: ``for:`` elapsed, approval expired, or verification ran out."""
    if rem.state == WAITING and rem.guards.require_approval:
        return _awaiting_approval(now, rem.guards.approval_timeout)
    if rem.state == WAITING:
        return Move(QUEUED, events=[("queued", "for: elapsed", None)], ready=True)
    if rem.state == PENDING_APPROVAL:
        return Move(
            "skipped", "expired", events=[("skipped", "expired", "no operator decided in time")]
        )
    if rem.state == VERIFYING:
        return verify.deadline(rem)
    raise ValueError(f"remediation {rem.id} in state {rem.state} has no timer")


def finished(rem: Remediation, state: str, *, resolved: bool, now: datetime) -> Move:
    """The state after the last step: a success may still have to be verified.

    ``resolved`` is whether the alert had already resolved (see :mod:`receiver.verify`).
    """
    if state == "succeeded" and (move := verify.after_success(rem, resolved=resolved, now=now)):
        return move
    return Move(state)


def approved(*, paused: bool, now: str, actor: str) -> Move:
    """An operator approved: queued to run now, or held until resume (the approval is kept)."""
    if paused:
        note = "runs when resumed: remedy is paused"
        return Move(QUEUED, held_since=now, events=[("approved", note, None)], actor=actor)
    return Move(QUEUED, events=[("approved", None, None)], ready=True, actor=actor)


def rejected(actor: str, why: str | None = None) -> Move:
    """An operator rejected, saying ``why`` (recorded as the event's error): it never runs."""
    return Move("skipped", "rejected", events=[("rejected", "rejected", why)], actor=actor)


def held(now: str) -> Move:
    """A claim met a pause: the remediation stays queued, held until resume."""
    return Move(QUEUED, held_since=now, events=[("queued", "held: remedy is paused", None)])


def released(rem: Remediation, now: datetime, pause_hold: float) -> Move:
    """A resume releases held work to the guards, unless it was held past ``pause_hold``."""
    assert rem.held_since is not None
    if held_too_long(rem.held_since, now, pause_hold):
        error = f"held by the pause since {rem.held_since}, past guards.pause_hold"
        return Move("skipped", "paused", events=[("skipped", "paused", error)])
    return Move(QUEUED, events=[("queued", "released: remedy resumed", None)], ready=True)


ON_FAILURE_HELD = "on_failure held: remedy is paused"


def followup_released(
    rem: Remediation, now: datetime, pause_hold: float
) -> tuple[bool, tuple[str, str | None, str | None]]:
    """Whether a resume lets a held on_failure run, and the audit event that says so."""
    assert rem.held_since is not None
    if held_too_long(rem.held_since, now, pause_hold):
        error = f"on_failure held by the pause since {rem.held_since}, past guards.pause_hold"
        return False, ("skipped", "paused", error)
    return True, ("queued", "on_failure released: remedy resumed", None)


def interrupted(rem: Remediation, why: str) -> Move:
    """Found running after its process stopped: reported, never re-run; on_failure is due."""
    return Move("interrupted", followup=bool(rem.on_failure), events=[("interrupted", why, None)])


def _awaiting_approval(now: datetime, timeout: float) -> Move:
    due = timestamp(now + timedelta(seconds=timeout))
    return Move(PENDING_APPROVAL, due_at=due, events=[("pending_approval", f"expires {due}", None)])

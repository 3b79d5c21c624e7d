"""The lifecycle stage on its own: each turn of a remediation, as an operator reads it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from receiver import lifecycle
from receiver.guards import GuardSpec
from receiver.store.base import Plan, Remediation
from rules.alert import Alert

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
STEP = {"action": "http.request", "params": {"url": "http://127.0.0.1:1/"}}


def alert(started: timedelta = timedelta(minutes=1)) -> Alert:
    return Alert(
        source="alertmanager",
        name="Broken",
        status="firing",
        labels={"alertname": "Broken"},
        annotations={},
        starts_at=NOW - started,
        ends_at=None,
        fingerprint="f1",
    )


def plan(**guards: Any) -> Plan:
    return Plan("fix", "svc:a", [STEP], guards=GuardSpec(**guards))


def remediation(state: str, **changes: Any) -> Remediation:
    rem = Remediation(
        7,
        "fix",
        "svc:a",
        state,
        None,
        {"status": "firing"},
        [STEP],
        [STEP],
        False,
        "t",
        "t",
        "alertmanager|f1|t",
    )
    return dataclasses.replace(rem, **changes)


def test_a_plain_plan_is_ready_at_once() -> None:
    move = lifecycle.planned(plan(), alert(), NOW)
    assert (move.state, move.ready, move.events) == ("queued", True, ())


def test_for_waits_until_the_alert_has_lasted() -> None:
    move = lifecycle.planned(plan(for_=300.0), alert(), NOW)
    assert (move.state, move.due_at) == ("waiting", "2026-11-24T06:04:00.000Z")
    assert not move.ready
    # an alert that already lasted long enough does not wait
    assert lifecycle.planned(plan(for_=30.0), alert(), NOW).state == "queued"


def test_approval_holds_with_an_expiry() -> None:
    move = lifecycle.planned(plan(require_approval=True, approval_timeout=600.0), alert(), NOW)
    assert move.state == "pending_approval"
    assert move.events == [("pending_approval", "expires 2026-11-24T06:10:00.000Z", None)]


def test_a_plan_that_could_not_render_is_skipped_with_its_error() -> None:
    failed = dataclasses.replace(plan(), skip_reason="template_error", error="no label svc")
    move = lifecycle.planned(failed, alert(), NOW)
    assert (move.state, move.reason, move.final) == ("skipped", "template_error", True)
    assert move.events == [("skipped", "template_error", "no label svc")]


@pytest.mark.parametrize(
    ("state", "after"),
    [
        ("waiting", ("skipped", "cancelled")),
        ("pending_approval", ("skipped", "cancelled")),
        ("queued", ("skipped", "cancelled")),
        ("verifying", ("verified", None)),
    ],
)
def test_a_resolve_cancels_what_waits_and_verifies_what_waited(
    state: str, after: tuple[str, str | None]
) -> None:
    move = lifecycle.resolved(remediation(state))
    assert move is not None
    assert (move.state, move.reason) == after


def test_a_resolve_leaves_running_work_and_work_a_resolve_started() -> None:
    assert lifecycle.resolved(remediation("running")) is None
    assert lifecycle.resolved(remediation("queued", alert={"status": "resolved"})) is None


def test_timers() -> None:
    assert lifecycle.timer(remediation("waiting"), NOW).state == "queued"
    approval = remediation("waiting", guards=GuardSpec(require_approval=True))
    assert lifecycle.timer(approval, NOW).state == "pending_approval"
    expired = lifecycle.timer(remediation("pending_approval"), NOW)
    assert (expired.state, expired.reason) == ("skipped", "expired")
    ineffective = lifecycle.timer(remediation("verifying"), NOW)
    assert (ineffective.state, ineffective.followup) == ("ineffective", True)


def test_a_success_with_verify_waits_for_the_resolve() -> None:
    rem = remediation("running", guards=GuardSpec(verify_within=60.0))
    verifying = lifecycle.finished(rem, "succeeded", resolved=False, now=NOW)
    assert (verifying.state, verifying.due_at) == ("verifying", "2026-11-24T06:01:00.000Z")
    assert lifecycle.finished(rem, "succeeded", resolved=True, now=NOW).state == "verified"
    assert lifecycle.finished(rem, "failed", resolved=False, now=NOW).state == "failed"


def test_a_pause_holds_an_approval_and_a_resume_releases_or_drops() -> None:
    kept = lifecycle.approved(paused=True, now="2026-11-24T06:00:00.000Z", actor="oncall")
    assert (kept.state, kept.ready, kept.held_since) == (
        "queued",
        False,
        "2026-11-24T06:00:00.000Z",
    )
    assert kept.records(remediation("pending_approval"))[0].actor == "oncall"
    held = remediation("queued", held_since="2026-11-24T05:30:00.000Z")
    assert lifecycle.released(held, NOW, pause_hold=3600.0).ready
    dropped = lifecycle.released(held, NOW, pause_hold=600.0)
    assert (dropped.state, dropped.reason) == ("skipped", "paused")

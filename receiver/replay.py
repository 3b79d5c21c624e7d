"""``remedy replay``: a recorded alert stream through the live code path, in simulated time.

Every line goes through the same ingest, match stage, store, guards and timers as
the service; only the clock differs (it jumps to each line's receive time)
and nothing executes (dry-run), so the result is what the guards would have
decided. The store is a throwaway SQLite file.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from receiver.app import build_service, running
from receiver.audit import redact
from receiver.clock import SimulatedClock, timestamp
from receiver.config import Config
from receiver.ingest import PayloadError
from receiver.ingest.alertmanager import parse_webhook
from receiver.preconditions import Asks
from receiver.webhooks import ingest_alerts
from rules.alert import Alert


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One recorded webhook: when it arrived and its alerts."""

    received_at: datetime
    alerts: tuple[Alert, ...]


def read_stream(lines: Iterable[str], name: str = "-") -> list[Delivery]:
    """Parse NDJSON lines ``{"received_at": RFC 3339, "body": webhook}``, in time order.

    A bad line is a :class:`PayloadError` naming its line number.
    """
    deliveries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            raise PayloadError(where, "not a JSON object") from None
        if not isinstance(record, dict) or not isinstance(record.get("received_at"), str):
            raise PayloadError(f"{where}.received_at", "an RFC 3339 time is required")
        try:
            received_at = datetime.fromisoformat(record["received_at"])
        except ValueError:
            raise PayloadError(f"{where}.received_at", "not an RFC 3339 time") from None
        if received_at.tzinfo is None:
            raise PayloadError(f"{where}.received_at", "the time needs a timezone")
        try:
            message = parse_webhook(record.get("body"))
        except PayloadError as exc:
            raise PayloadError(f"{where}.body.{exc.field}".rstrip("."), exc.message) from None
        deliveries.append(Delivery(received_at, message.alerts))
    return sorted(deliveries, key=lambda d: d.received_at)


async def replay(
    deliveries: list[Delivery],
    config: Config,
    until: datetime | None = None,
    *,
    answers: Asks | None = None,
) -> dict[str, Any]:
    """What the rules and guards would have done with the stream.

    Timers (``for:``, approval expiry, verification deadlines) fire at their
    own simulated times between deliveries; after the last delivery, time
    runs on to ``until`` when given, else it stops there.
    """
    if not deliveries:
        return {"decisions": [], "totals": {}}
    clock = SimulatedClock(deliveries[0].received_at)
    with tempfile.TemporaryDirectory(prefix="remedy-replay-") as tmp:
        cfg = dataclasses.replace(
            config,
            storage=f"sqlite:///{Path(tmp) / 'replay.db'}",
            dry_run=True,
            max_concurrent=1,
            max_queue=10**9,
            # Simulated time: today's Prometheus cannot answer for then. A rule's when:
            # ends precondition_error ("not configured") unless a rule test answers.
            prometheus=None,
        )
        service = build_service(cfg, clock=clock)
        # Nor do today's Redis or PostgreSQL: no dry-run previews.
        async with running(service, timers=False, answers=answers, previews=False):
            executor = service.running_executor
            scheduler = service.running_scheduler

            async def run_until(moment: datetime) -> None:
                """Fire every timer due up to ``moment``, each at its own time."""
                previous = None
                while (due := await service.store.next_due()) is not None:
                    if due > timestamp(moment) or due == previous:
                        break
                    previous = due
                    clock.set(datetime.fromisoformat(due))
                    await scheduler.tick()
                    await executor.join()
                clock.set(moment)
                await scheduler.tick()
                await executor.join()

            for delivery in deliveries:
                await run_until(delivery.received_at)
                await ingest_alerts(service, delivery.alerts)
                await executor.join()
            if until is not None:
                await run_until(until)
            remediations = await service.store.remediations()
    decisions = [
        {
            "remediation": rem.id,
            "at": rem.updated_at,
            "rule": rem.rule,
            "target": rem.target,
            "alert": rem.alert.get("fingerprint"),
            "decision": decision_of(rem.state, rem.reason),
            "actions": [step["action"] for step in rem.steps],
            "params": [redact(step["params"]) for step in rem.steps],
            "verify_query": rem.guards.verify_query,
        }
        for rem in remediations
    ]
    totals = collections.Counter(d["decision"] for d in decisions)
    return {"decisions": decisions, "totals": dict(sorted(totals.items()))}


def decision_of(state: str, reason: str | None) -> str:
    """One word for what happened to a remediation: ``would_run``, or why not."""
    if state == "dry_run":
        return "would_run"
    if state == "skipped" and reason:
        return reason
    return state

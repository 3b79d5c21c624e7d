"""A turn of a remediation's lifecycle, as a value: the state it moves to and what is audited.

The lifecycle and verify stages answer moves; every store applies them the
same way (state, reason, timer, flags, audit events), so policy stays out of
the store adapters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from receiver.audit import AuditRecord
from receiver.store.base import OPEN_STATES, Remediation


@dataclasses.dataclass(frozen=True, slots=True)
class Move:
    """One remediation's next state, and what the audit log says about it.

    ``events`` are (event, reason, error) triples about the remediation,
    recorded as done by ``actor``; ``ready`` means a worker should claim it
    now; ``followup`` that its ``on_failure`` is due; ``held_since`` that a
    pause holds it.
    """

    state: str
    reason: str | None = None
    due_at: str | None = None
    followup: bool = False
    events: Sequence[tuple[str, str | None, str | None]] = ()
    ready: bool = False
    held_since: str | None = None
    actor: str = "system"

    @property
    def final(self) -> bool:
        """Whether the remediation ends here (counted in the remediation metrics)."""
        return self.state not in OPEN_STATES

    def records(self, rem: Remediation) -> list[AuditRecord]:
        """The move's audit events about ``rem``."""
        return [
            about(event, rem, reason=why, error=error, actor=self.actor)
            for event, why, error in self.events
        ]


def about(event: str, rem: Remediation, **fields: Any) -> AuditRecord:
    """An audit record about one remediation (its alert, rule, target and id)."""
    return AuditRecord(
        event, rem.alert, rule=rem.rule, target=rem.target, remediation=rem.id, **fields
    )

"""The audit log's query parameters, checked: one reading for the API, the page and the CLI."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime, timedelta

from receiver.audit import OUTCOMES
from receiver.clock import timestamp
from receiver.ingest import PayloadError
from receiver.store.base import AuditQuery
from rules.duration import parse_duration

MAX_LIMIT = 1000


def encode_cursor(event_id: int) -> str:
    """An opaque cursor for the page after ``event_id``."""
    return base64.urlsafe_b64encode(f"before:{event_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The event id a cursor continues before; :class:`PayloadError` when it is not ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        event_id = bounded_int(value, 1, 2**62)
        if kind != "before" or event_id is None:
            raise ValueError(kind)
        return event_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise PayloadError("cursor", "not a cursor this server issued") from None


def bounded_int(text: str, low: int, high: int) -> int | None:
    """An ASCII decimal integer within [low, high], else ``None``."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_time(value: str, field: str, now: datetime) -> str:
    """An RFC 3339 time, or a duration meaning that long ago, as a stored timestamp."""
    try:
        return timestamp(now - timedelta(seconds=parse_duration(value)))
    except ValueError:
        pass
    except OverflowError:
        raise PayloadError(field, f"duration out of range: {value!r}") from None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(
            field, f"expected an RFC 3339 time or a duration, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        raise PayloadError(field, f"time without a timezone: {value!r}")
    try:
        return timestamp(moment)
    except OverflowError:
        raise PayloadError(field, f"time out of range: {value!r}") from None


def audit_query(params: Mapping[str, str], now: datetime) -> AuditQuery:
    """The filters of an audit request, checked."""
    unknown = set(params) - {
        "since",
        "until",
        "rule",
        "target",
        "outcome",
        "alert",
        "limit",
        "cursor",
    }
    if unknown:
        raise PayloadError(sorted(unknown)[0], "unknown query parameter")
    outcome = params.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise PayloadError("outcome", f"unknown outcome {outcome!r} (known: {', '.join(OUTCOMES)})")
    limit = bounded_int(params.get("limit", "100"), 1, MAX_LIMIT)
    if limit is None:
        raise PayloadError("limit", f"expected an integer from 1 to {MAX_LIMIT}")
    return AuditQuery(
        since=parse_time(params["since"], "since", now) if "since" in params else None,
        until=parse_time(params["until"], "until", now) if "until" in params else None,
        rule=params.get("rule"),
        target=params.get("target"),
        outcome=outcome,
        alert=params.get("alert"),
        limit=limit,
        before_id=decode_cursor(params["cursor"]) if "cursor" in params else None,
    )

"""Alertmanager webhook payloads (version 4) into alerts, strictly checked.

Alertmanager never retries a 4xx, so a payload we reject is lost to us: the
error must say exactly which field was wrong, so that the sender can be fixed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from receiver.ingest import PayloadError, unicode_text
from rules.alert import Alert, fingerprint_of

_STATUSES = ("firing", "resolved")
_GO_ZERO_TIME_YEAR = 1
_MAX_TRUNCATED = 2**64 - 1  # Alertmanager counts in a uint64; anything more is not its count


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookMessage:
    """One webhook delivery: its group and its alerts."""

    receiver: str
    status: str
    group_key: str
    truncated_alerts: int
    external_url: str
    alerts: tuple[Alert, ...]


def parse_webhook(payload: object) -> WebhookMessage:
    """Check and normalise a decoded webhook body; :class:`PayloadError` names the bad field."""
    # Exact types, not the Mapping ABC (whose check costs a Python call each time):
    # what reaches here comes from a JSON or YAML decoder, which makes dicts.
    if not isinstance(payload, dict):
        raise PayloadError("", "the body must be a JSON object")
    version = payload.get("version")
    if version != "4":
        raise PayloadError("version", f'unsupported webhook version {version!r} (expected "4")')
    status = _status(payload, "status", "")
    alerts_raw = payload.get("alerts")
    if not isinstance(alerts_raw, list):
        raise PayloadError("alerts", "must be a list")
    truncated = payload.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError("truncatedAlerts", "must be a non-negative integer")
    if truncated > _MAX_TRUNCATED:
        raise PayloadError("truncatedAlerts", "is larger than any count Alertmanager sends (2^64)")
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        if key in payload:
            _string_map(payload[key], key)
    return WebhookMessage(
        receiver=_optional_str(payload, "receiver", ""),
        status=status,
        group_key=_optional_str(payload, "groupKey", ""),
        truncated_alerts=truncated,
        external_url=_optional_str(payload, "externalURL", ""),
        alerts=tuple(_alert(raw, f"alerts[{i}]") for i, raw in enumerate(alerts_raw)),
    )


def _alert(raw: object, where: str) -> Alert:
    if not isinstance(raw, dict):
        raise PayloadError(where, "must be an object")
    labels = _string_map(raw.get("labels"), f"{where}.labels")
    name = labels.get("alertname")
    if not name:
        raise PayloadError(f"{where}.labels.alertname", "is required")
    annotations = _string_map(raw.get("annotations", {}), f"{where}.annotations")
    fingerprint = raw.get("fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise PayloadError(f"{where}.fingerprint", "must be a string")
    if fingerprint:
        unicode_text(fingerprint, f"{where}.fingerprint")
    else:
        fingerprint = fingerprint_of(labels)
    starts_at = _time(raw.get("startsAt"), f"{where}.startsAt")
    if starts_at is None:
        raise PayloadError(f"{where}.startsAt", "is required")
    return Alert(
        source="alertmanager",
        name=name,
        status=_status(raw, "status", where),  # type: ignore[arg-type]  # checked by _status
        labels=labels,
        annotations=annotations,
        starts_at=starts_at,
        ends_at=_time(raw.get("endsAt"), f"{where}.endsAt"),
        fingerprint=fingerprint,
        generator_url=_optional_str(raw, "generatorURL", "", where),
    )


def _status(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if value not in _STATUSES:
        field = f"{where}.{key}" if where else key
        raise PayloadError(field, f'must be "firing" or "resolved", got {value!r}')
    return str(value)


def _string_map(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise PayloadError(where, "must be an object of strings")
    for key, item in value.items():
        unicode_text(key, where)
        if not isinstance(item, str):
            raise PayloadError(f"{where}.{key}", f"must be a string, got {type(item).__name__}")
        unicode_text(item, f"{where}.{key}")
    return dict(value)


def _optional_str(raw: Mapping[str, Any], key: str, default: str, where: str = "") -> str:
    value = raw.get(key, default)
    field = f"{where}.{key}" if where else key
    if not isinstance(value, str):
        raise PayloadError(field, "must be a string")
    return unicode_text(value, field)


def _time(value: object, where: str) -> datetime | None:
    """An RFC 3339 time; Go's zero time and absence are ``None``."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(where, "must be an RFC 3339 time string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(where, f"not an RFC 3339 time: {value!r}") from None
    if moment.tzinfo is None:
        raise PayloadError(where, f"time without a timezone: {value!r}")
    if moment.year == _GO_ZERO_TIME_YEAR:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise PayloadError(where, f"time out of range: {value!r}") from None

"""The audit log's values: events, their canonical form, the hash chain, redaction.

Every event is hashed over the previous event's hash and its own canonical
JSON, so editing, inserting or deleting a stored event breaks the chain at
that event. Secrets are redacted before an event is ever serialised.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

GENESIS_HASH = "0" * 64

EVENTS = (
    "received",
    "matched",
    "queued",
    "pending_approval",
    "approved",
    "rejected",
    "started",
    "succeeded",
    "failed",
    "timeout",
    "skipped",
    "dry_run",
    "verified",
    "ineffective",
    "interrupted",
    "paused",
    "resumed",
    "rules_reloaded",
)
# Why a remediation was skipped (SPEC §7), and the other reason codes events carry.
SKIP_REASONS = (
    "duplicate",
    "rate_limited",
    "cooldown",
    "locked",
    "breaker_open",
    "paused",
    "denied",
    "template_error",
    "cancelled",
    "expired",
    "rejected",
    "precondition",
    "precondition_error",
)
REASONS = (
    *SKIP_REASONS,
    "on_failure",
    "silence",
    "preview",
    "encoding",
    "insufficient_data",
    "sns_unsubscribed",
    "sns_subscription_confirmed",
    "sns_subscription_failed",
    # SNS deliveries refused (``sns_`` and the webhook's or the signature check's word)
    "sns_malformed",
    "sns_topic",
    "sns_unsigned",
    "sns_version",
    "sns_cert_url",
    "sns_expired",
    "sns_cert_fetch",
    "sns_bad_signature",
)
# What ``outcome`` filters on: an event, or a reason code.
OUTCOMES = EVENTS + tuple(reason for reason in REASONS if reason not in EVENTS)

_SECRET_KEY = re.compile(
    r"(authorization|token|secret|password|passwd|api[-_]?key|cookie|credential|private[-_]?key)",
    re.IGNORECASE,
)
REDACTED = "<redacted>"


def redact(value: Any) -> Any:
    """A copy of JSON-like data with secrets replaced.

    Secrets are the values of secret-looking keys, and in URLs the userinfo
    and the values of secret-looking query parameters.
    """
    kind = type(value)
    if kind is str:  # the commonest values first, by exact type: this runs for every event
        return _redact_url(value) if "://" in value and ("@" in value or "?" in value) else value
    if value is None or kind is int or kind is bool or kind is float:
        return value
    if kind is dict or isinstance(value, Mapping):
        return {k: REDACTED if _secret_key(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str) and "://" in value and ("@" in value or "?" in value):
        return _redact_url(value)
    return value


def _secret_key(key: object) -> bool:
    """Whether a mapping's key names a secret."""
    if type(key) is str and len(key) <= _CACHED_KEY:
        return _short_secret_key(key)
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


_CACHED_KEY = 64  # a sender's label names have no length limit: only short ones are kept


@functools.lru_cache(maxsize=4096)
def _short_secret_key(key: str) -> bool:
    """:func:`_secret_key` of a short key, remembered (keys repeat: label and header names)."""
    return _SECRET_KEY.search(key) is not None


_URL_DELIMITERS = frozenset("/?#")


def _redact_url(text: str) -> str:
    start = text.find("://") + 3
    info, at, host = text[start:].rpartition("@")
    if at and ":" in info and not _URL_DELIMITERS.isdisjoint(info):
        # A password holding / ? or #: urlsplit would end the userinfo there and keep
        # it. Everything up to the last @ goes (an odd URL loses more than it must).
        text = f"{text[:start]}{REDACTED}@{host}"
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = (
        "&".join(
            f"{key}={REDACTED}" if _SECRET_KEY.search(key) else pair
            for pair in parts.query.split("&")
            for key in (pair.partition("=")[0],)
        )
        if parts.query
        else ""
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text: one spelling per value, so one hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, data: str) -> str:
    """SHA-256 over the previous hash and the event's canonical JSON."""
    return hashlib.sha256((prev_hash + data).encode()).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class AuditRecord:
    """An event the pipeline asks to append; the store gives it id, time and hashes."""

    event: str
    alert: Mapping[str, Any] | None = None
    rule: str | None = None
    action: str | None = None
    target: str | None = None
    params: Any = None
    reason: str | None = None
    error: str | None = None
    duration_ms: int | None = None
    actor: str = "system"
    remediation: int | None = None
    result: Any = None

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown audit event {self.event!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEvent:
    """A stored, chained audit event."""

    id: int
    ts: str
    record: AuditRecord
    prev_hash: str
    hash: str

    @property
    def data(self) -> str:
        """The canonical JSON this event's hash covers."""
        return canonical_json(event_body(self.id, self.ts, self.record))

    def to_dict(self) -> dict[str, Any]:
        """The event as the API, the CLI and the NDJSON stream show it."""
        return {
            **event_body(self.id, self.ts, self.record),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_data(cls, data: str, prev_hash: str, hash_: str) -> AuditEvent:
        """Rebuild an event from its stored canonical JSON."""
        body = json.loads(data)
        record = AuditRecord(
            **{
                f.name: body.get(f.name)
                for f in dataclasses.fields(AuditRecord)
                if f.name != "actor"
            },
            actor=body.get("actor", "system"),
        )
        return cls(id=body["id"], ts=body["ts"], record=record, prev_hash=prev_hash, hash=hash_)


def event_body(event_id: int, ts: str, record: AuditRecord) -> dict[str, Any]:
    """The hashed fields of an event, with secrets redacted."""
    return {
        "id": event_id,
        "ts": ts,
        "event": record.event,
        "alert": redact(record.alert) if record.alert is not None else None,
        "rule": record.rule,
        "action": record.action,
        "target": record.target,
        "params": redact(record.params),
        "reason": record.reason,
        "error": record.error,
        "duration_ms": record.duration_ms,
        "actor": record.actor,
        "remediation": record.remediation,
        "result": redact(record.result),
    }


_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_encode_str: Callable[[str], str] = json.encoder.encode_basestring  # what _encode does for a str


def _json(value: Any) -> str:
    """``canonical_json(value)``, with the commonest values spelt at once."""
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if value is None:
        return "null"
    if kind is int:
        return str(value)
    return _encode(value)


class Alerts:
    """Each alert's redacted canonical JSON, made once for every event that carries it.

    Keyed by the mapping's identity, and holding the mapping, so that the id
    stays its own: one lives as long as a write transaction, whose events
    (received, matched, the claim's) carry the same alert. An alert mapping
    is never changed once made (:meth:`rules.alert.Alert.summary`).
    """

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Mapping[str, Any], str, Any]] = {}

    def encoded(self, alert: Mapping[str, Any] | None) -> tuple[str, Any]:
        """The alert's JSON as the event's body holds it, and its (redacted) fingerprint."""
        if alert is None:
            return "null", None
        found = self._seen.get(id(alert))
        if found is None:
            redacted = redact(alert)
            fingerprint = redacted.get("fingerprint") if isinstance(redacted, dict) else None
            found = self._seen[id(alert)] = (alert, _encode(redacted), fingerprint)
        return found[1], found[2]


def event_data(event_id: int, ts: str, record: AuditRecord, alerts: Alerts) -> tuple[str, Any]:
    """``canonical_json(event_body(...))`` and the fingerprint, built field by field.

    The same text, byte for byte, as the dict's canonical JSON (its keys in
    sorted order), without redacting and serialising a shared alert again for
    every event that carries it.
    """
    alert, fingerprint = alerts.encoded(record.alert)
    data = (
        f'{{"action":{_json(record.action)},"actor":{_json(record.actor)},"alert":{alert},'
        f'"duration_ms":{_json(record.duration_ms)},"error":{_json(record.error)},'
        f'"event":{_json(record.event)},"id":{_json(event_id)},'
        f'"params":{_json(redact(record.params))},"reason":{_json(record.reason)},'
        f'"remediation":{_json(record.remediation)},"result":{_json(redact(record.result))},'
        f'"rule":{_json(record.rule)},"target":{_json(record.target)},"ts":{_json(ts)}}}'
    )
    return data, fingerprint


VERIFY_COLUMNS = "id, ts, event, rule, target, reason, fingerprint, data, prev_hash, hash"
"""What verification reads of each stored row, in this order (a :data:`StoredRow`)."""

StoredRow = Sequence[Any]
"""An audit row as :data:`VERIFY_COLUMNS` reads it: id, the indexed columns, data, hashes."""


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of checking the chain."""

    ok: bool
    events: int
    first_bad_id: int | None = None
    reason: str | None = None
    pruned: Mapping[str, Any] | None = None  # the retention checkpoint: through, events, at

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``GET /api/v1/audit/verify``."""
        extra = {"pruned": dict(self.pruned)} if self.pruned else {}
        if self.ok:
            return {"ok": True, "events": self.events, **extra}
        return {
            "ok": False,
            "events": self.events,
            "first_bad_id": self.first_bad_id,
            "reason": self.reason,
            **extra,
        }


INDEXED_COLUMNS = ("ts", "event", "rule", "target", "reason", "fingerprint")


def indexed_values(body: Mapping[str, Any]) -> dict[str, Any]:
    """The values a store keeps in columns for filtering, taken from the hashed body."""
    alert = body.get("alert")
    return {
        "ts": body.get("ts"),
        "event": body.get("event"),
        "rule": body.get("rule"),
        "target": body.get("target"),
        "reason": body.get("reason"),
        "fingerprint": alert.get("fingerprint") if isinstance(alert, Mapping) else None,
    }


class _AlertColumn(msgspec.Struct):
    fingerprint: Any = None


class _Columns(msgspec.Struct):
    """The fields of an event's body that its row repeats; msgspec skips the rest unread."""

    id: Any = None
    ts: Any = None
    event: Any = None
    rule: Any = None
    target: Any = None
    reason: Any = None
    alert: _AlertColumn | None = None


_read_columns = msgspec.json.Decoder(_Columns).decode


def _repeated(data: str) -> tuple[Any, ...] | None:
    """(id, *INDEXED_COLUMNS) as the event's body holds them; ``None`` when it is not JSON."""
    try:
        body = _read_columns(data)
    except msgspec.MsgspecError:  # unusual content (NaN, an alert that is no object): slowly
        try:
            loaded = json.loads(data)
        except ValueError:
            return None
        if not isinstance(loaded, dict):
            return ()
        return (loaded.get("id"), *indexed_values(loaded).values())
    fingerprint = body.alert.fingerprint if body.alert is not None else None
    return (body.id, body.ts, body.event, body.rule, body.target, body.reason, fingerprint)


def verify_chain(
    rows: Iterable[StoredRow],
    head: tuple[int, str] | None,
    start: tuple[int, str] = (0, GENESIS_HASH),
) -> VerifyResult:
    """Walk rows in id order and name the first one that breaks the chain.

    ``start`` is the last pruned (id, hash), ``head`` the (id, hash) the store
    recorded for its newest event, which catches deletion at the end.
    """
    expected_id, prev_hash = start
    count = 0
    for row in rows:
        event_id, data, stored_prev, stored_hash = row[0], row[7], row[8], row[9]
        expected_id += 1
        if event_id != expected_id:
            return VerifyResult(False, count, expected_id, f"event {expected_id} is missing")
        if stored_prev != prev_hash:
            return VerifyResult(False, count, event_id, "prev_hash does not match the event before")
        if chain_hash(prev_hash, data) != stored_hash:
            return VerifyResult(False, count, event_id, "hash does not match the event's content")
        repeated = _repeated(data)
        if repeated is None:
            return VerifyResult(False, count, event_id, "event content is not JSON")
        if repeated != tuple(row[:7]):
            return VerifyResult(False, count, event_id, "indexed columns differ from the event")
        prev_hash = stored_hash
        count += 1
    return _check_head(head, expected_id, prev_hash, count, start)


def _check_head(
    head: tuple[int, str] | None,
    last_id: int,
    last_hash: str,
    count: int,
    start: tuple[int, str],
) -> VerifyResult:
    """Compare the chain's end with the head the store recorded at every commit."""
    if head is None:
        if last_id == start[0]:
            return VerifyResult(True, count)
        return VerifyResult(False, count, last_id, "the recorded head of the log is missing")
    head_id, head_hash = head
    if head_id > last_id:
        reason = f"events {last_id + 1} to {head_id} are missing: the log was cut"
        return VerifyResult(False, count, last_id + 1, reason)
    if head_id < last_id:
        reason = f"events after {head_id} were written outside remedy"
        return VerifyResult(False, count, head_id + 1, reason)
    if head_hash != last_hash:
        return VerifyResult(False, count, last_id, "the last event differs from the recorded head")
    return VerifyResult(True, count)

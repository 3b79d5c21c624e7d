"""PostgreSQL storage (``postgresql://user@host:port/db``) on asyncpg, shared by replicas.

The adapter only persists and queries: each lifecycle write is a flow of
:mod:`receiver.store.flows`, the same SQLite runs, over this module's
:class:`_Tx` rows. The policy those flows ask is the pipeline's pure
functions; here each decision is made against a :class:`_Facts` snapshot
that loads, inside the transaction, exactly the facts the function asks for
(see :func:`_answer`).

Writes go through one group-committing writer: every job waiting at that
moment runs in one transaction, each in its own savepoint, and commits once.
Every write transaction first takes one transaction-scoped advisory lock
(:data:`WRITER_LOCK`, per schema) and then the audit head's row
``FOR UPDATE``. That is the simplest correct choice: claims and every guard
counter (rate limit, cooldown, breakers, blast radius, target locks,
max_concurrent, pause) are read and written by one transaction at a time,
across replicas too, and the audit chain's ids and hashes stay linear. Work
is leased to the replica that queued or claimed it (:meth:`PostgresStore.heartbeat`).
The schema is created by versioned migrations under an advisory lock at
:meth:`PostgresStore.open`, so replicas starting together migrate once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from receiver.audit import (
    GENESIS_HASH,
    VERIFY_COLUMNS,
    AuditEvent,
    AuditRecord,
    StoredRow,
    VerifyResult,
    verify_chain,
)
from receiver.clock import Clock, SystemClock, timestamp, woken
from receiver.config import DEFAULT_STORAGE_LEASE
from receiver.guards import (
    Decision,
    GlobalLimits,
    GuardSpec,
    decide,
    halt,
)
from receiver.store import flows
from receiver.store.base import (
    FINAL_STATES,
    PENDING_APPROVAL,
    QUEUED,
    RUNNING,
    VERIFYING,
    WAITING,
    AuditQuery,
    Due,
    NotFound,
    Pause,
    Remediation,
    StateConflict,
    Status,
    StoreCorrupt,
    StoreUnavailable,
)
from receiver.store.writer import AuditChain
from rules.alert import Alert

T = TypeVar("T")
log = structlog.get_logger("remedy.store")

# Text compares bytewise (COLLATE "C"), as SQLite's does: timestamps and
# occurrence keys are compared and ordered as strings by the same queries.
_T = 'TEXT COLLATE "C"'
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        f"""
CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY,
    source {_T} NOT NULL,
    fingerprint {_T} NOT NULL,
    starts_at {_T} NOT NULL,
    status {_T} NOT NULL,
    occurrence {_T} NOT NULL,
    name {_T} NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    ends_at {_T},
    received_at {_T} NOT NULL,
    UNIQUE (source, fingerprint, starts_at, status)
);
CREATE INDEX alerts_occurrence ON alerts (occurrence, status);
CREATE TABLE remediations (
    id BIGSERIAL PRIMARY KEY,
    occurrence {_T} NOT NULL,
    rule {_T} NOT NULL,
    alert_id BIGINT NOT NULL REFERENCES alerts (id),
    target {_T},
    state {_T} NOT NULL,
    reason {_T},
    dry_run BOOLEAN NOT NULL,
    plan TEXT NOT NULL,
    created_at {_T} NOT NULL,
    updated_at {_T} NOT NULL,
    due_at {_T},
    followup SMALLINT NOT NULL DEFAULT 0,
    held_since {_T},
    UNIQUE (occurrence, rule)
);
CREATE INDEX remediations_state ON remediations (state, due_at);
CREATE INDEX remediations_followup ON remediations (followup) WHERE followup > 0;
CREATE TABLE executions (
    id BIGSERIAL PRIMARY KEY,
    remediation BIGINT NOT NULL,
    rule {_T} NOT NULL,
    target {_T} NOT NULL,
    scope {_T},
    dry_run BOOLEAN NOT NULL,
    at {_T} NOT NULL
);
CREATE INDEX executions_rule_target ON executions (rule, target, dry_run, at);
CREATE INDEX executions_scope ON executions (scope, dry_run, at);
CREATE INDEX executions_at ON executions (dry_run, at);
CREATE TABLE locks (
    target {_T} PRIMARY KEY,
    remediation BIGINT NOT NULL,
    at {_T} NOT NULL
);
CREATE TABLE breakers (
    name {_T} PRIMARY KEY,
    opened_at {_T} NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE deliveries (
    message_id {_T} PRIMARY KEY,
    received_at {_T} NOT NULL
);
CREATE TABLE breaker_resets (
    name {_T} PRIMARY KEY,
    at {_T} NOT NULL
);
CREATE TABLE control (
    key {_T} PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE audit (
    id BIGINT PRIMARY KEY,
    ts {_T} NOT NULL,
    event {_T} NOT NULL,
    rule {_T},
    target {_T},
    reason {_T},
    fingerprint {_T},
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_ts ON audit (ts);
CREATE INDEX audit_rule ON audit (rule, id);
CREATE INDEX audit_target ON audit (target, id);
CREATE INDEX audit_fingerprint ON audit (fingerprint, id);
CREATE TABLE audit_head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    last_id BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);
CREATE TABLE audit_checkpoint (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    last_id BIGINT NOT NULL,
    last_hash TEXT NOT NULL,
    pruned BIGINT NOT NULL,
    at {_T} NOT NULL
);
""",
    ),
    (
        2,
        f"""
CREATE TABLE replicas (
    id {_T} PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL
);
ALTER TABLE remediations ADD COLUMN owner {_T};
""",
    ),
)
"""Schema versions in order; each runs once, in the transaction that records it."""

MIGRATION_LOCK = "remedy.migrations:"
WRITER_LOCK = "remedy.writer:"
"""Advisory lock names, suffixed with the schema in use (so two remedy schemas never contend)."""
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1 || current_schema(), 0))"

AUDIT_CHANNEL = "remedy_audit"
"""Notified at each commit that appended audit events, with the schema and the last id."""
_ADVANCE_HEAD = (
    "WITH head AS (INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, $1, $2)"
    " ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id,"
    " last_hash = excluded.last_hash)"
    f" SELECT pg_notify('{AUDIT_CHANNEL}', current_schema() || ' ' || $1::text)"
)
"""Record the chain's new end and tell every replica's tail, delivered at commit: one
round trip."""
TAIL_POLL = 5.0  # the tail also looks without a notification (one lost in an outage)
TAIL_BATCH = 1000
PRUNE_CHUNK = 5000  # audit events deleted per write transaction
HISTORY_CHUNK = 1000  # alert occurrences examined per write transaction
VERIFY_CHUNK = 10_000  # audit rows read at a time by verify
FINALS = ", ".join(f"'{state}'" for state in FINAL_STATES)  # for SQL: constants only
CONNECT_TIMEOUT = 5.0
_REMEDIATION_COLUMNS = (
    "id, rule, target, state, reason, dry_run, plan, created_at, updated_at, occurrence,"
    " due_at, followup, held_since"
)
_UNAVAILABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
"""What asyncpg raises when the database cannot take a statement now (the caller answers 503)."""

Job = Callable[["_Tx"], Awaitable[T]]


def display_url(url: str) -> str:
    """The URL as logs and errors may show it: no password, no query options."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = (f"{parts.username}@" if parts.username else "") + host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _remediation(row: Mapping[str, Any] | Sequence[Any]) -> Remediation:
    values = list(row.values()) if isinstance(row, Mapping) else list(row)
    plan = json.loads(values[6])
    return Remediation(
        id=values[0],
        rule=values[1],
        target=values[2],
        state=values[3],
        reason=values[4],
        alert=plan["alert"],
        steps=plan["steps"],
        on_failure=plan["on_failure"],
        dry_run=bool(values[5]),
        created_at=values[7],
        updated_at=values[8],
        occurrence=values[9],
        guards=GuardSpec.from_json(plan.get("guards")),
        due_at=values[10],
        followup=bool(values[11]),
        held_since=values[12],
        link=plan.get("link", ""),
        when=plan.get("when", ()),
        silence=plan.get("silence"),
    )


async def _select(conn: Any, where: str, *args: Any) -> list[Remediation]:
    """Remediations matching a WHERE clause of constant text with placeholders."""
    rows = await conn.fetch(f"SELECT {_REMEDIATION_COLUMNS} FROM remediations WHERE {where}", *args)
    return [_remediation(row) for row in rows]


def _count(status: str) -> int:
    """The row count of an ``INSERT``/``UPDATE``/``DELETE`` command status."""
    return int(status.rsplit(" ", 1)[-1])


_RESOLVED = "EXISTS (SELECT 1 FROM alerts WHERE occurrence = $1 AND status = 'resolved')"
_STANDING = (
    "SELECT EXISTS (SELECT 1 FROM control WHERE key = 'paused'),"
    " ARRAY(SELECT name FROM breakers), (SELECT COUNT(*) FROM locks)"
)
_STANDING_FACTS = {"resolved", "paused", "open_breakers", "running"}


class _Missing(Exception):
    """A fact the snapshot has not loaded yet."""

    def __init__(self, key: tuple[Any, ...]) -> None:
        super().__init__(key[0])
        self.key = key


class _Facts:
    """The facts one decision read, loaded from its transaction.

    It answers :class:`receiver.guards.GuardFacts` and :class:`receiver.dedup.EpisodeFacts`
    synchronously from what it holds; a fact it lacks raises :class:`_Missing`,
    which :func:`_answer` loads before asking the pure function again.
    """

    def __init__(self, dry_run: bool = False) -> None:
        self.prefix = flows.DRY_RUN_BREAKER_PREFIX if dry_run else ""
        self.known: dict[tuple[Any, ...], Any] = {}
        self.breakers: frozenset[str] | None = None  # every open breaker, once read

    async def read_standing(self, conn: Any, key: tuple[Any, ...]) -> None:
        """Read the facts nearly every decision asks, with ``key``, in one round trip.

        The pause, the open breakers and the running count, and the missing
        fact when it is whether an occurrence resolved: a claim asks all of
        them, and one query instead of three or four is most of its cost.
        """
        if key[0] == "resolved":
            row = await conn.fetchrow(f"{_STANDING}, {_RESOLVED}", *key[1:])
            self.known[key] = row[3]
        else:
            row = await conn.fetchrow(_STANDING)
        self.known["paused",], self.known["running",] = row[0], row[2]
        self.breakers = frozenset(row[1])

    def _get(self, *key: Any) -> Any:
        try:
            return self.known[key]
        except KeyError:
            raise _Missing(key) from None

    def resolved(self, occurrence: str) -> bool:
        return bool(self._get("resolved", occurrence))

    def paused(self) -> bool:
        return bool(self._get("paused"))

    def open_breakers(self, names: list[str]) -> list[str]:
        if self.breakers is not None:
            return sorted(name for name in names if self.prefix + name in self.breakers)
        return list(self._get("open_breakers", tuple(self.prefix + name for name in names)))

    def executions(
        self, *, since: str, dry_run: bool, rule: str | None = None, target: str | None = None
    ) -> int:
        return int(self._get("executions", since, dry_run, rule, target))

    def last_execution(self, rule: str, target: str, dry_run: bool) -> str | None:
        found: str | None = self._get("last_execution", rule, target, dry_run)
        return found

    def reset_at(self, breaker: str) -> str | None:
        found: str | None = self._get("reset_at", self.prefix + breaker)
        return found

    def lock_holder(self, target: str) -> int | None:
        found = self._get("lock_holder", target)
        return None if found is None else int(found)

    def running(self) -> int:
        return int(self._get("running"))

    def latest_firing_start(self, source: str, fingerprint: str, until: str) -> str | None:
        found: str | None = self._get("latest_firing_start", source, fingerprint, until)
        return found

    def resolved_after(self, source: str, fingerprint: str, since: str) -> bool:
        return bool(self._get("resolved_after", source, fingerprint, since))

    def scope_targets(self, scope: str, since: str, dry_run: bool) -> set[str]:
        return set(self._get("scope_targets", scope, since, dry_run))

    async def load(self, conn: Any, key: tuple[Any, ...]) -> Any:
        """Read one fact (``key`` is the protocol method and its arguments)."""
        name, *args = key
        if name == "resolved":
            return await conn.fetchval(f"SELECT {_RESOLVED}", *args)
        if name == "paused":
            return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM control WHERE key = 'paused')")
        if name == "open_breakers":
            rows = await conn.fetch(
                "SELECT name FROM breakers WHERE name = ANY($1::text[]) ORDER BY name",
                list(args[0]),
            )
            return tuple(row[0].removeprefix(self.prefix) for row in rows)
        if name == "executions":
            since, dry_run, rule, target = args
            if rule is None:
                sql = "SELECT COUNT(*) FROM executions WHERE dry_run = $1 AND at > $2"
                return await conn.fetchval(sql, dry_run, since)
            return await conn.fetchval(
                "SELECT COUNT(*) FROM executions WHERE dry_run = $1 AND at > $2"
                " AND rule = $3 AND target = $4",
                dry_run,
                since,
                rule,
                target,
            )
        if name == "last_execution":
            return await conn.fetchval(
                "SELECT MAX(at) FROM executions WHERE rule = $1 AND target = $2 AND dry_run = $3",
                *args,
            )
        if name == "reset_at":
            return await conn.fetchval("SELECT at FROM breaker_resets WHERE name = $1", *args)
        if name == "lock_holder":
            return await conn.fetchval("SELECT remediation FROM locks WHERE target = $1", *args)
        if name == "running":
            return await conn.fetchval("SELECT COUNT(*) FROM locks")
        if name == "latest_firing_start":
            return await conn.fetchval(
                "SELECT starts_at FROM alerts WHERE source = $1 AND fingerprint = $2"
                " AND status = 'firing' AND starts_at <= $3 ORDER BY starts_at DESC LIMIT 1",
                *args,
            )
        if name == "resolved_after":
            return await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM alerts WHERE source = $1 AND fingerprint = $2"
                " AND status = 'resolved' AND COALESCE(ends_at, starts_at) > $3)",
                *args,
            )
        if name == "scope_targets":
            rows = await conn.fetch(
                "SELECT DISTINCT target FROM executions WHERE scope = $1 AND dry_run = $3"
                " AND at > $2",
                *args,
            )
            return frozenset(row[0] for row in rows)
        raise AssertionError(f"no query for the fact {name}")


async def _answer(conn: Any, decision: Callable[[_Facts], T], *, dry_run: bool = False) -> T:
    """Call a pure policy function against the facts of this transaction.

    The function is asked again after each fact it lacked is loaded; being
    pure, it asks the same questions in the same order, so each fact is read
    once (about as many queries as SQLite's direct reads).
    """
    facts = _Facts(dry_run)
    while True:
        try:
            return decision(facts)
        except _Missing as missing:
            if facts.breakers is None and missing.key[0] in _STANDING_FACTS:
                await facts.read_standing(conn, missing.key)
            else:
                facts.known[missing.key] = await facts.load(conn, missing.key)


class _Chain(AuditChain):
    """The end of the audit chain within one write transaction (read under the head's lock)."""

    def __init__(self, mark: tuple[int, str]) -> None:
        super().__init__(*mark)
        self.start = mark
        self.rows: list[tuple[Any, ...]] = []
        """Events chained in this transaction, inserted together at its end (:meth:`flush`)."""

    def add(self, ts: str, records: Sequence[AuditRecord]) -> list[AuditEvent]:
        """Chain events for ``records`` at time ``ts``, to be inserted by :meth:`flush`."""
        events, rows = self.link(ts, records)
        self.rows += rows
        return events

    async def flush(self, conn: Any) -> None:
        """Insert every event chained so far: one round trip for the whole batch."""
        if self.rows:
            await conn.executemany(
                "INSERT INTO audit (id, ts, event, rule, target, reason, fingerprint, data,"
                " prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                self.rows,
            )
            self.rows = []


_MOVE = (
    "UPDATE remediations SET state = $1, reason = $2, updated_at = $3, due_at = $4,"
    " followup = $5, held_since = $6, owner = $7 WHERE id = $8"
)
"""A remediation's new state (:meth:`_Tx.move`), written by this replica, its owner."""

_INSERT_ALERT = (
    "INSERT INTO alerts (source, fingerprint, starts_at, status, occurrence,"
    " name, labels, annotations, ends_at, received_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
)
_INSERT_ALERT_WITH_REMEDIATIONS = (
    f"WITH stored AS ({_INSERT_ALERT} RETURNING id),"
    " planned AS (INSERT INTO remediations (occurrence, rule, alert_id, target, state,"
    " reason, dry_run, plan, created_at, updated_at, due_at, owner)"
    " SELECT $5, p.rule, stored.id, p.target, p.state, p.reason, p.dry_run, p.plan, $10, $10,"
    " p.due_at, $11 FROM stored, unnest($12::text[], $13::text[], $14::text[], $15::text[],"
    " $16::boolean[], $17::text[], $18::text[]) WITH ORDINALITY AS p (rule, target, state,"
    " reason, dry_run, plan, due_at, n) ORDER BY p.n ON CONFLICT DO NOTHING RETURNING rule, id)"
    " SELECT (SELECT id FROM stored), ARRAY(SELECT rule FROM planned ORDER BY id),"
    " ARRAY(SELECT id FROM planned ORDER BY id)"
)
"""A new alert and its remediations in one statement, ids in the plans' order; each
remediation's id comes back with its rule's name (an alert has one plan per rule)."""


@dataclasses.dataclass(slots=True)
class _Tx:
    """One job's transaction: what the flows persist and query (:class:`flows.Rows`).

    Every state it writes makes this replica the remediation's ``owner``.
    """

    conn: Any
    now: str
    moment: datetime
    chain: _Chain
    events: list[AuditEvent]
    owner: str

    async def audit(self, records: Sequence[AuditRecord]) -> list[AuditEvent]:
        """Append chained audit events, stamped with the job's time."""
        events = self.chain.add(self.now, records)
        self.events.extend(events)
        return events

    async def answer(self, decision: Callable[[Any], T], *, dry_run: bool = False) -> T:
        return await _answer(self.conn, decision, dry_run=dry_run)

    async def new_delivery(self, message_id: str) -> bool:
        return bool(
            await self.conn.fetchval(
                "INSERT INTO deliveries (message_id, received_at) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING RETURNING true",
                message_id,
                self.now,
            )
        )

    async def insert_alert(
        self,
        alert: Alert,
        occurrence: str,
        remediations: Callable[[], Sequence[tuple[Remediation, str]]],
    ) -> tuple[int | None, list[int | None]]:
        args = [
            alert.source,
            alert.fingerprint,
            alert.starts_at.isoformat(),
            alert.status,
            occurrence,
            alert.name,
            json.dumps(dict(alert.labels)),
            json.dumps(dict(alert.annotations)),
            alert.ends_at.isoformat() if alert.ends_at else None,
            self.now,
        ]
        planned = remediations()  # before the insert: both go in one round trip
        if not planned:
            found = await self.conn.fetchval(f"{_INSERT_ALERT} RETURNING id", *args)
            return (None if found is None else int(found)), []
        rems = [rem for rem, _ in planned]
        if len({rem.rule for rem in rems}) < len(rems):  # the ids come back by rule
            raise ValueError(f"two plans of one rule for alert {alert.fingerprint}")
        row = await self.conn.fetchrow(
            _INSERT_ALERT_WITH_REMEDIATIONS,
            *args,
            self.owner,
            [rem.rule for rem in rems],
            [rem.target for rem in rems],
            [rem.state for rem in rems],
            [rem.reason for rem in rems],
            [rem.dry_run for rem in rems],
            [plan for _, plan in planned],
            [rem.due_at for rem in rems],
        )
        if row is None or row[0] is None:
            return None, []
        ids = dict(zip(row[1], row[2], strict=True))  # rule -> id: one plan per rule
        return int(row[0]), [ids.get(rem.rule) for rem in rems]

    async def waiting_on(self, occurrence: str) -> list[Remediation]:
        return await _select(
            self.conn,
            "occurrence = $1 AND state IN ($2, $3, $4, $5) ORDER BY id",
            occurrence,
            WAITING,
            PENDING_APPROVAL,
            QUEUED,
            VERIFYING,
        )

    async def due(self, at: str) -> list[Remediation]:
        return await _select(
            self.conn,
            "state IN ($1, $2, $3) AND due_at <= $4 ORDER BY due_at, id",
            WAITING,
            PENDING_APPROVAL,
            VERIFYING,
            at,
        )

    async def held(self) -> list[Remediation]:
        return await _select(self.conn, "state = $1 AND held_since IS NOT NULL ORDER BY id", QUEUED)

    async def with_followup(self, flag: int) -> list[Remediation]:
        return await _select(self.conn, "followup = $1 ORDER BY id", flag)

    async def for_update(self, rem_id: int) -> Remediation | None:
        found = await _select(self.conn, "id = $1 FOR UPDATE", rem_id)
        return found[0] if found else None

    async def claim_row(self, rem_id: int) -> tuple[str, str | None] | None:
        row = await self.conn.fetchrow(
            "SELECT state, held_since FROM remediations WHERE id = $1 FOR UPDATE", rem_id
        )
        return None if row is None else (row[0], row[1])

    async def followup_state(self, rem_id: int) -> int | None:
        found = await self.conn.fetchval(
            "SELECT followup FROM remediations WHERE id = $1 FOR UPDATE", rem_id
        )
        return None if found is None else int(found)

    async def move(
        self,
        rem_id: int,
        state: str,
        reason: str | None = None,
        *,
        due_at: str | None = None,
        followup: bool = False,
        expect: str | None = None,
        held_since: str | None = None,
    ) -> None:
        sql = _MOVE
        args: list[Any] = [state, reason, self.now, due_at, int(followup), held_since]
        args += [self.owner, rem_id]
        if expect is not None:
            sql += " AND state = $9"
            args.append(expect)
        if _count(await self.conn.execute(sql, *args)) == 0:
            raise StateConflict(f"remediation {rem_id} is not {expect or 'there'}")

    async def set_followup(self, rem_id: int, flag: int, *, held_since: str | None = None) -> None:
        await self.conn.execute(
            "UPDATE remediations SET followup = $1, held_since = $2, owner = $3 WHERE id = $4",
            flag,
            held_since,
            self.owner,
            rem_id,
        )

    async def end_followup(self, rem_id: int) -> bool:
        done = await self.conn.execute(
            "UPDATE remediations SET followup = 0 WHERE id = $1 AND followup = $2 AND owner = $3",
            rem_id,
            flows.FOLLOWUP_RUNNING,
            self.owner,
        )
        return _count(done) > 0

    async def owned(self, rem_id: int) -> bool:
        owner = await self.conn.fetchval("SELECT owner FROM remediations WHERE id = $1", rem_id)
        return bool(owner == self.owner)

    async def record_execution(
        self, rem_id: int, rule: str, target: str, scope: str | None, dry_run: bool
    ) -> None:
        await self.conn.execute(
            "INSERT INTO executions (remediation, rule, target, scope, dry_run, at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            rem_id,
            rule,
            target,
            scope,
            dry_run,
            self.now,
        )

    async def take(self, rem_id: int, state: str, run: flows.Execution) -> None:
        # One round trip: the execution is recorded only if the remediation moved. Taken,
        # it has no reason, timer or on_failure flag, and is not held.
        taken = await self.conn.execute(
            f"WITH moved AS ({_MOVE} AND state = $9 RETURNING id)"
            " INSERT INTO executions (remediation, rule, target, scope, dry_run, at)"
            " SELECT id, $10, $11, $12, $13, $3 FROM moved",
            *(state, None, self.now, None, 0, None, self.owner, rem_id, QUEUED),
            *run,
        )
        if _count(taken) == 0:
            raise StateConflict(f"remediation {rem_id} is not {QUEUED}")

    async def lock(self, target: str, rem_id: int) -> None:
        await self.conn.execute(
            "INSERT INTO locks (target, remediation, at) VALUES ($1, $2, $3)",
            target,
            rem_id,
            self.now,
        )

    async def unlock(self, rem_id: int) -> None:
        await self.conn.execute("DELETE FROM locks WHERE remediation = $1", rem_id)

    async def open_breaker(self, name: str, reason: str) -> None:
        await self.conn.execute(
            "INSERT INTO breakers (name, opened_at, reason) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            name,
            self.now,
            reason,
        )

    async def close_breaker(self, name: str) -> None:
        await self.conn.execute("DELETE FROM breakers WHERE name = $1", name)
        await self.conn.execute(
            "INSERT INTO breaker_resets (name, at) VALUES ($1, $2)"
            " ON CONFLICT (name) DO UPDATE SET at = excluded.at",
            name,
            self.now,
        )

    async def open_breakers(self, names: Sequence[str] | None = None) -> list[str]:
        if names is None:
            rows = await self.conn.fetch("SELECT name FROM breakers ORDER BY name")
        else:
            rows = await self.conn.fetch(
                "SELECT name FROM breakers WHERE name = ANY($1::text[]) ORDER BY name", list(names)
            )
        return [row[0] for row in rows]

    async def pause(self, value: str) -> None:
        await self.conn.execute(
            "INSERT INTO control (key, value) VALUES ('paused', $1) ON CONFLICT DO NOTHING", value
        )

    async def unpause(self) -> None:
        await self.conn.execute("DELETE FROM control WHERE key = 'paused'")


_STOP = object()


class _GroupWriter:
    """Runs write jobs on one connection at a time, every waiting job in one transaction."""

    def __init__(self, pool: Any, on_commit: Callable[[float, int], None] | None) -> None:
        self._pool = pool
        self._on_commit = on_commit
        self._jobs: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None  # held across batches: no pool round trip to reset it each time

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Finish every queued job, then stop."""
        if self._task is not None:
            self._jobs.put_nowait(_STOP)
            await self._task
            self._task = None

    async def run(self, job: Callable[[Any, _Chain], Awaitable[T]]) -> T:
        """Run ``job`` in the next group commit; its result once committed."""
        if not self.alive:
            raise StoreUnavailable("the store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put_nowait((job, future))
        return await future

    async def _loop(self) -> None:
        stopping = False
        try:
            while not stopping:
                first = await self._jobs.get()
                if first is _STOP:
                    break
                batch = [first]
                while not self._jobs.empty():
                    item = self._jobs.get_nowait()
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
                await self._run_batch(batch)
        finally:
            await self._give_back()

    async def _run_batch(self, batch: list[Any]) -> None:
        """One group commit; whatever goes wrong, every job gets an answer."""
        started = time.perf_counter()
        try:
            results = await self._in_transaction(batch)
        except _UNAVAILABLE as exc:
            log.error("store.batch_failed", error_type=type(exc).__name__, error=str(exc))
            results = [(None, StoreUnavailable(f"storage unavailable: {exc}"))] * len(batch)
        except Exception as exc:  # the writer must outlive any failure, or callers hang
            log.error("store.batch_failed", error_type=type(exc).__name__, error=str(exc))
            results = [(None, StoreUnavailable(f"storage unavailable: {exc}"))] * len(batch)
        if self._on_commit is not None:
            with contextlib.suppress(Exception):
                self._on_commit(time.perf_counter() - started, len(batch))
        for (_job, future), (value, error) in zip(batch, results, strict=True):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    async def _in_transaction(self, batch: list[Any]) -> list[tuple[Any, BaseException | None]]:
        """Run the batch's jobs in one transaction and commit it.

        Jobs rarely fail, so they first run back to back; when one does, the
        batch is rolled back and run again with a savepoint per job, so that
        the failing job fails alone (a job only writes through its
        connection, so running it again after a rollback does the same). Two
        round trips fewer per job on the common path.
        """
        if self._conn is not None and not _usable(self._conn):  # ended while idle
            await self._give_back()
        if self._conn is None:
            self._conn = await self._pool.acquire(timeout=CONNECT_TIMEOUT)
        conn = self._conn
        try:
            try:
                async with conn.transaction():
                    return await self._run_jobs(conn, batch, alone=False)
            except _JobFailed:
                async with conn.transaction():
                    return await self._run_jobs(conn, batch, alone=True)
        except BaseException:
            await self._give_back()  # a broken connection is replaced at the next batch
            raise

    async def _give_back(self) -> None:
        """Return the writer's connection to the pool (which resets or discards it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await self._pool.release(conn, timeout=CONNECT_TIMEOUT)

    async def _run_jobs(
        self, conn: Any, batch: list[Any], *, alone: bool
    ) -> list[tuple[Any, BaseException | None]]:
        results: list[tuple[Any, BaseException | None]] = []
        await conn.execute(_LOCK, WRITER_LOCK)
        head = await conn.fetchrow(
            "SELECT last_id, last_hash FROM audit_head WHERE one = 1 FOR UPDATE"
        )
        # The chain goes on from the furthest of: the recorded head, the newest
        # event and the pruning checkpoint, as SQLite's does (a cut tail's ids
        # are never reused, so verify goes on reporting them missing).
        ends = await conn.fetch(
            "(SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1)"
            " UNION ALL SELECT last_id, last_hash FROM audit_checkpoint"
        )
        marks = [(int(row[0]), str(row[1])) for row in [*ends, *([head] if head else [])]]
        chain = _Chain(max(marks, default=(0, GENESIS_HASH)))
        for job, _future in batch:
            mark, chained = chain.mark, len(chain.rows)
            try:
                if alone:
                    async with conn.transaction():  # a savepoint: one job fails alone
                        value = await job(conn, chain)
                        await chain.flush(conn)  # its events too (a row PostgreSQL refuses)
                else:
                    value = await job(conn, chain)
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
                raise  # the connection is gone: the whole batch fails
            except Exception as exc:  # one job's failure is that job's answer alone
                if not alone:
                    raise _JobFailed from exc
                chain.reset(mark)
                del chain.rows[chained:]
                if isinstance(exc, asyncpg.PostgresError):
                    exc = StoreUnavailable(f"storage unavailable: {exc}")
                results.append((None, exc))
            else:
                results.append((value, None))
        if chain.mark != chain.start:
            try:
                await chain.flush(conn)
            except asyncpg.PostgresError as exc:  # an event refused: find whose, each alone
                if isinstance(exc, asyncpg.PostgresConnectionError):
                    raise
                raise _JobFailed from exc
            # Every replica's tail reads the new events once this commits.
            await conn.execute(_ADVANCE_HEAD, chain.last_id, chain.last_hash)
        return results


def _usable(conn: Any) -> bool:
    """Whether a held pool connection is still open (the pool detaches one that closed)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


class _JobFailed(Exception):
    """A job failed in a batch run without savepoints: the batch runs again, each job alone."""


class _Tail:
    """Hands every replica's committed audit events to the listeners, in id order.

    The one path for events to the live tail, this replica's own included: a
    notification at each commit wakes it, and it reads what follows the last
    event it handed on. It reconnects after an outage and goes on from there.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        listeners: list[Callable[[list[AuditEvent]], None]],
    ) -> None:
        self.connect = connect
        self.listeners = listeners
        self.after: int | None = None  # the last event handed on (None: start at the head)
        self.notified = 0  # the last event id a commit's notification named
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="remedy-audit-tail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except Exception as exc:  # the tail is the listeners' only path: it never gives up
                log.warning("audit.tail_reconnecting", error_type=type(exc).__name__)
            await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        conn = await self.connect()
        try:
            schema = await conn.fetchval("SELECT current_schema()")
            wake = asyncio.Event()

            def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                where, _, last = payload.rpartition(" ")
                if where == schema:
                    self.notified = max(self.notified, int(last) if last.isdigit() else 0)
                    wake.set()

            await conn.add_listener(AUDIT_CHANNEL, notified)
            if self.after is None:
                self.after = int(await conn.fetchval("SELECT COALESCE(MAX(id), 0) FROM audit"))
            while not conn.is_closed():
                wake.clear()
                await self._catch_up(conn)
                await woken(wake, TAIL_POLL)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), CONNECT_TIMEOUT)

    async def _catch_up(self, conn: Any) -> None:
        assert self.after is not None
        while True:
            if not self.listeners:  # nobody reads: just keep the place, from the notification
                if self.notified <= self.after:  # woken by the poll, not a commit: ask
                    self.notified = int(await conn.fetchval("SELECT MAX(id) FROM audit") or 0)
                self.after = max(self.after, self.notified)
                return
            rows = await conn.fetch(
                "SELECT id, data, prev_hash, hash FROM audit WHERE id > $1 ORDER BY id LIMIT $2",
                self.after,
                TAIL_BATCH,
            )
            if not rows:
                return
            self.after = int(rows[-1][0])
            events = [_event(row[1], row[2], row[3]) for row in rows]
            for listener in list(self.listeners):
                listener(events)
            if len(rows) < TAIL_BATCH:
                return


async def migrate(conn: Any) -> list[int]:
    """Apply the migrations this database lacks, under an advisory lock; the versions applied.

    Idempotent, and safe when several replicas start at once: the lock is
    held until the transaction that applies and records them commits.
    """
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute(_LOCK, MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
    return applied


class PostgresStore(flows.Writes):
    """The store for one PostgreSQL database, shared by every replica that names it.

    Each store is one replica, ``replica`` (host, pid and a random suffix). The
    work it queues, claims and runs is marked as its own (``owner``), and it
    renews a lease on all of it with :meth:`heartbeat`. A replica whose lease
    has run out is dead: the next heartbeat of any live replica marks its
    started work ``interrupted`` and takes its queued work.
    """

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        password: str | None = None,
        clock: Clock | None = None,
        on_commit: Callable[[float, int], None] | None = None,
        *,
        readonly: bool = False,
        pool_size: int = 8,
        lease: float = DEFAULT_STORAGE_LEASE,
    ) -> None:
        self.url = url
        self.lease = lease
        self.replica = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
        self._steady_since = time.monotonic()  # since when its own lease has held unbroken
        self.shown = display_url(url)
        self._password = password
        self.readonly = readonly
        self.clock: Clock = clock or SystemClock()
        self._on_commit = on_commit
        self._pool_size = pool_size
        self._pool: Any = None
        self._writer: _GroupWriter | None = None
        self.listeners: list[Callable[[list[AuditEvent]], None]] = []
        self._tail = _Tail(
            lambda: asyncpg.connect(
                url, password=password, timeout=CONNECT_TIMEOUT, command_timeout=30
            ),
            self.listeners,
        )

    def __repr__(self) -> str:
        return f"PostgresStore({self.shown!r})"

    async def open(self) -> None:
        """Connect, bring the schema up to date and start the writer.

        An unreachable database is :class:`StoreUnavailable`; later outages are
        answered 503 and the pool reconnects once the database is back.
        """
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                password=self._password,
                min_size=1,
                max_size=self._pool_size,
                timeout=CONNECT_TIMEOUT,
                command_timeout=60,
                max_inactive_connection_lifetime=300,
            )
            async with self._pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                if self.readonly:
                    exists = await conn.fetchval("SELECT to_regclass('audit') IS NOT NULL")
                    if not exists:
                        raise StoreUnavailable(f"no remedy store in {self.shown}")
                    return
                if applied := await migrate(conn):
                    log.info("store.migrated", storage=self.shown, versions=applied)
                await self._check_head(conn)
                # The tail starts here: what recovery writes next reaches its listeners.
                self._tail.after = int(
                    await conn.fetchval("SELECT COALESCE(MAX(id), 0) FROM audit")
                )
        except _UNAVAILABLE as exc:
            await self._close_pool()
            raise StoreUnavailable(f"cannot open {self.shown}: {_reason(exc)}") from None
        except StoreUnavailable:
            await self._close_pool()
            raise
        self._writer = _GroupWriter(self._pool, self._on_commit)
        self._writer.start()
        self._tail.start()

    @staticmethod
    async def _check_head(conn: Any) -> None:
        newest = await conn.fetchrow("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
        head = await conn.fetchrow("SELECT last_id, last_hash FROM audit_head")
        if newest is not None and (head is None or tuple(head) != tuple(newest)):
            log.error("audit.head_mismatch", last_id=newest[0], head_id=head[0] if head else None)

    async def close(self) -> None:
        """Finish every queued write, give up the lease, then close the connections.

        Work this replica still had (queued, or running past the shutdown
        grace) goes to the other replicas at their next heartbeat.
        """
        await self._tail.stop()
        if self._writer is not None:
            with contextlib.suppress(StoreUnavailable):
                await self._write(
                    lambda tx: tx.conn.execute("DELETE FROM replicas WHERE id = $1", self.replica)
                )
            await self._writer.stop()
            self._writer = None
        await self._close_pool()

    async def _close_pool(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), 10)

    # -- plumbing -----------------------------------------------------------

    async def _write(self, job: Job[T], *, moment: datetime | None = None) -> T:
        """Run a job in the next group commit at the time it was asked for (or ``moment``).

        The audit events it appended reach the listeners by the tail, with
        every other replica's.
        """
        if self._writer is None:
            raise StoreUnavailable("the store is not open for writing")
        at = moment or self.clock.now()
        ts = timestamp(at)
        events: list[AuditEvent] = []

        async def run(conn: Any, chain: _Chain) -> T:
            events.clear()  # run again when another job of its batch failed: starts over
            return await job(_Tx(conn, ts, at, chain, events, self.replica))

        return await self._writer.run(run)

    async def _read(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        if self._pool is None:
            raise StoreUnavailable("the store is closed")
        try:
            async with self._pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                return await fn(conn)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"storage unavailable: {_reason(exc)}") from None

    # -- the contract -------------------------------------------------------

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers."""
        if self._writer is not None and not self._writer.alive:
            raise StoreUnavailable("the store's writer is not running")
        await self._read(lambda conn: conn.fetchval("SELECT 1"))

    async def halted(self, rem: Remediation, *, before: str) -> Decision:
        """Whether a resolve or a pause stops what would start next (a retry), reading only."""
        return await self._read(
            lambda conn: _answer(
                conn, lambda facts: halt(facts, occurrence=flows.watched(rem), before=before)
            )
        )

    async def preview(
        self,
        *,
        rule: str,
        target: str,
        occurrence: str | None,
        spec: GuardSpec,
        limits: GlobalLimits,
        dry_run: bool,
        denied: str | None = None,
    ) -> Decision:
        """What the guards would decide now, reading only (``remedy test``)."""
        now = self.clock.now()
        return await self._read(
            lambda conn: _answer(
                conn,
                lambda facts: decide(
                    facts,
                    rule=rule,
                    target=target,
                    occurrence=occurrence,
                    spec=spec,
                    limits=limits,
                    now=now,
                    dry_run=dry_run,
                    denied=denied,
                ),
                dry_run=dry_run,
            )
        )

    async def next_due(self) -> str | None:
        """The earliest timer still to fire, if any."""
        found: str | None = await self._read(
            lambda conn: conn.fetchval(
                "SELECT MIN(due_at) FROM remediations WHERE state IN ($1, $2, $3)",
                WAITING,
                PENDING_APPROVAL,
                VERIFYING,
            )
        )
        return found

    async def recover(self) -> Due:
        """At start: join the replicas, and take over what dead replicas left.

        Unlike SQLite's, this does not interrupt every ``running`` remediation:
        those of live replicas are theirs. This process's previous life, if it
        had one, is a dead replica like any other once its lease runs out.
        """
        return await self.heartbeat()

    async def heartbeat(self, *, take_over: bool = True) -> Due:
        """Renew this replica's lease; take over the work of replicas whose lease ran out.

        Their started work (and started on_failure runs) becomes
        ``interrupted``, never run again; their queued work and due
        on_failure runs become this replica's, returned for its queue.
        A stopping replica only renews (``take_over=False``).

        A replica takes nothing over until it has held its own lease without
        a gap for a whole lease: after a database outage every lease has run
        out, and the replicas that are alive must not take each other for dead.
        """

        async def job(tx: _Tx) -> Due:
            conn = tx.conn
            held = await conn.fetchval(
                "SELECT lease_until > clock_timestamp() FROM replicas WHERE id = $1", self.replica
            )
            if not held:  # just started, or its own lease lapsed (an outage, a stall)
                self._steady_since = time.monotonic()
            await conn.execute(
                "INSERT INTO replicas (id, host, pid, started_at, lease_until)"
                " VALUES ($1, $2, $3, now(), clock_timestamp() + make_interval(secs => $4))"
                " ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until",
                self.replica,
                socket.gethostname(),
                os.getpid(),
                self.lease,
            )
            steady = time.monotonic() - self._steady_since >= self.lease
            return await self._take_over(tx) if take_over and steady else Due()

        return await self._write(job)

    async def _take_over(self, tx: _Tx) -> Due:
        conn = tx.conn
        dead = await conn.fetch(
            "SELECT DISTINCT COALESCE(owner, '') FROM remediations"
            " WHERE (state = $1 OR (state = $2 AND held_since IS NULL) OR followup IN ($3, $4))"
            " AND (owner IS NULL"
            " OR owner NOT IN (SELECT id FROM replicas WHERE lease_until > clock_timestamp()))",
            RUNNING,
            QUEUED,
            flows.FOLLOWUP_PENDING,
            flows.FOLLOWUP_RUNNING,
        )
        owners = [row[0] for row in dead]
        await conn.execute("DELETE FROM replicas WHERE lease_until <= clock_timestamp()")
        if not owners:
            return Due()
        log.warning("replica.taken_over", replicas=owners, by=self.replica)
        theirs = "COALESCE(owner, '') = ANY($2::text[])"
        running = await _select(conn, f"state = $1 AND {theirs} ORDER BY id", RUNNING, owners)
        started = await _select(
            conn, f"followup = $1 AND {theirs} ORDER BY id", flows.FOLLOWUP_RUNNING, owners
        )
        why = "the replica running it stopped renewing its lease"
        interrupted = await flows.interrupt(tx, running, started, why)
        queued = await _select(
            conn,
            f"state = $1 AND held_since IS NULL AND {theirs} ORDER BY id",
            QUEUED,
            owners,
        )
        followups = await _select(
            conn, f"followup = $1 AND {theirs} ORDER BY id", flows.FOLLOWUP_PENDING, owners
        )
        await conn.execute(
            "UPDATE remediations SET owner = $1 WHERE id = ANY($2::bigint[])",
            self.replica,
            [rem.id for rem in (*queued, *followups)],
        )
        return Due(queued, [*interrupted.followups, *followups], interrupted.finished)

    async def pending(self) -> Due:
        """This replica's stored work that should be in its queue: queued, on_failure due.

        Another live replica's work is its own; a dead one's comes by :meth:`heartbeat`.
        """

        async def read(conn: Any) -> Due:
            queued = await _select(
                conn,
                "state = $1 AND held_since IS NULL AND owner = $2 ORDER BY id LIMIT 10000",
                QUEUED,
                self.replica,
            )
            followups = await _select(
                conn,
                "followup = $1 AND owner = $2 ORDER BY id",
                flows.FOLLOWUP_PENDING,
                self.replica,
            )
            return Due(queued, followups)

        return await self._read(read)

    async def paused(self) -> bool:
        """Whether an operator has paused remedy (read before each further step)."""
        return (await self.control())[0]

    async def control(self) -> tuple[bool, int]:
        """Paused, and how many breakers are open: cheap enough to read every tick."""

        async def read(conn: Any) -> tuple[bool, int]:
            row = await conn.fetchrow(
                "SELECT EXISTS (SELECT 1 FROM control WHERE key = 'paused'),"
                " (SELECT COUNT(*) FROM breakers WHERE name NOT LIKE $1)",
                flows.DRY_RUN_BREAKER_PREFIX + "%",
            )
            return bool(row[0]), int(row[1])

        return await self._read(read)

    async def status(self) -> Status:
        """Pause, open breakers, remediations by state, the oldest queued."""

        async def read(conn: Any) -> Status:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                paused = await conn.fetchval("SELECT value FROM control WHERE key = 'paused'")
                breakers = await conn.fetch("SELECT name, reason FROM breakers ORDER BY name")
                states = await conn.fetch("SELECT state, COUNT(*) FROM remediations GROUP BY state")
                oldest = await conn.fetchval(
                    "SELECT MIN(updated_at) FROM remediations WHERE state = $1", QUEUED
                )
                held = await conn.fetchval(
                    "SELECT COUNT(*) FROM remediations"
                    " WHERE (state = $1 AND held_since IS NOT NULL) OR followup = $2",
                    QUEUED,
                    flows.FOLLOWUP_HELD,
                )
            pause = Pause.from_json(paused) if paused else None
            return Status(
                pause is not None,
                {row[0]: row[1] for row in breakers},
                {row[0]: int(row[1]) for row in states},
                oldest,
                pause,
                int(held),
            )

        return await self._read(read)

    async def remediations(self, states: Sequence[str] = ()) -> list[Remediation]:
        """Remediation records, oldest first, optionally only in the given states."""
        if states:
            return await self._read(
                lambda conn: _select(conn, "state = ANY($1::text[]) ORDER BY id", list(states))
            )
        return await self._read(lambda conn: _select(conn, "true ORDER BY id"))

    async def newest(self, limit: int) -> list[Remediation]:
        """The ``limit`` newest remediation records, newest first."""
        return await self._read(lambda conn: _select(conn, "true ORDER BY id DESC LIMIT $1", limit))

    async def outcomes(self, since: str) -> list[tuple[str, str, str | None, int]]:
        """Remediations created at or after ``since``, counted: (rule, state, reason, count)."""
        sql = (
            "SELECT rule, state, reason, COUNT(*) FROM remediations WHERE created_at >= $1"
            " GROUP BY rule, state, reason ORDER BY rule, state, reason"
        )

        async def read(conn: Any) -> list[tuple[str, str, str | None, int]]:
            return [tuple(row) for row in await conn.fetch(sql, since)]

        return await self._read(read)

    async def remediation(self, remediation_id: int) -> Remediation:
        """One remediation record; :class:`NotFound` when there is none."""
        found = await self._read(lambda conn: _select(conn, "id = $1", remediation_id))
        if not found:
            raise NotFound(f"remediation {remediation_id} does not exist")
        return found[0]

    async def audit(self, query: AuditQuery) -> list[AuditEvent]:
        """Audit events matching the query, newest first."""
        where, args = _audit_filter(query)
        order = "ASC" if query.after_id is not None else "DESC"
        sql = (
            f"SELECT data, prev_hash, hash FROM audit {where} ORDER BY id {order}"
            f" LIMIT ${len(args) + 1}"
        )

        async def read(conn: Any) -> list[AuditEvent]:
            rows = await conn.fetch(sql, *args, query.limit)
            return [_event(row[0], row[1], row[2]) for row in rows]

        return await self._read(read)

    async def verify(self) -> VerifyResult:
        """Check the chain from the pruning checkpoint (or the first event) to the recorded head.

        One consistent snapshot, read a chunk at a time so memory stays flat.
        """

        async def read(conn: Any) -> VerifyResult:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                head_row = await conn.fetchrow("SELECT last_id, last_hash FROM audit_head")
                checkpoint = await conn.fetchrow(
                    "SELECT last_id, last_hash, pruned, at FROM audit_checkpoint"
                )
                start = (
                    (int(checkpoint[0]), str(checkpoint[1])) if checkpoint else (0, GENESIS_HASH)
                )
                result = await _verify_rows(
                    conn, (int(head_row[0]), str(head_row[1])) if head_row else None, start
                )
            if checkpoint is None:
                return result
            # Said with every answer: whoever can write the store could also
            # rewrite the checkpoint, so a reader should see where it starts.
            pruned = {"through": checkpoint[0], "events": checkpoint[2], "at": checkpoint[3]}
            return dataclasses.replace(result, pruned=pruned)

        return await self._read(read)

    async def prune(self, before: datetime) -> int:
        """Drop audit events older than ``before``; how many went (as SQLite's ``prune``)."""
        cutoff = timestamp(before)

        async def job(tx: _Tx) -> int:
            conn = tx.conn
            await conn.execute("DELETE FROM deliveries WHERE received_at < $1", cutoff)
            first_kept = await conn.fetchval("SELECT MIN(id) FROM audit WHERE ts >= $1", cutoff)
            bound = first_kept if first_kept is not None else 2**62
            row = await conn.fetchrow(
                "SELECT id, hash FROM audit WHERE id < $1 ORDER BY id LIMIT 1 OFFSET $2",
                bound,
                PRUNE_CHUNK - 1,
            ) or await conn.fetchrow(
                "SELECT id, hash FROM audit WHERE id < $1 ORDER BY id DESC LIMIT 1", bound
            )
            if row is None:
                return 0
            gone = _count(await conn.execute("DELETE FROM audit WHERE id <= $1", row[0]))
            await conn.execute(
                "INSERT INTO audit_checkpoint (one, last_id, last_hash, pruned, at)"
                " VALUES (1, $1, $2, $3, $4) ON CONFLICT (one) DO UPDATE SET"
                " last_id = excluded.last_id, last_hash = excluded.last_hash,"
                " pruned = audit_checkpoint.pruned + excluded.pruned, at = excluded.at",
                row[0],
                row[1],
                gone,
                tx.now,
            )
            return gone

        total = 0
        while gone := await self._write(job):
            total += gone
            if gone < PRUNE_CHUNK:
                break
        return total

    async def prune_history(self, before: datetime, guard_window: float) -> int:
        """Drop the alerts and remediations of occurrences that ended before ``before``.

        The same rules as :meth:`receiver.store.sqlite.SQLiteStore.prune_history`;
        ids come from sequences here, so none is ever given out twice anyway,
        but the newest row of each table stays too, so both stores keep the same rows.
        """
        cutoff = timestamp(before)

        async def executions(tx: _Tx) -> None:
            remembered = await tx.conn.fetchval(
                "SELECT value FROM control WHERE key = 'guard_window'"
            )
            window = max(guard_window, float(remembered) if remembered else 0.0)
            await tx.conn.execute(
                "INSERT INTO control (key, value) VALUES ('guard_window', $1)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                str(window),
            )
            oldest = timestamp(min(before, tx.moment - timedelta(seconds=window)))
            await tx.conn.execute("DELETE FROM executions WHERE at < $1", oldest)

        async def occurrences(tx: _Tx, after: str) -> tuple[int, str | None]:
            conn = tx.conn
            examined = [
                row[0]
                for row in await conn.fetch(
                    "SELECT DISTINCT occurrence FROM alerts WHERE occurrence > $1"
                    " ORDER BY occurrence LIMIT $2",
                    after,
                    HISTORY_CHUNK,
                )
            ]
            if not examined:
                return 0, None
            ended = [
                row[0]
                for row in await conn.fetch(
                    "SELECT occurrence FROM alerts a WHERE occurrence = ANY($1::text[])"
                    " GROUP BY occurrence"
                    " HAVING MAX(received_at) < $2 AND bool_or(status = 'resolved')"
                    " AND NOT EXISTS (SELECT 1 FROM remediations r"
                    "  WHERE r.occurrence = a.occurrence AND (r.updated_at >= $2"
                    f"  OR r.followup > 0 OR r.state NOT IN ({FINALS})))",
                    examined,
                    cutoff,
                )
            ]
            newest_rem = await conn.fetchval("SELECT MAX(id) FROM remediations") or 0
            newest_alert = await conn.fetchval("SELECT MAX(id) FROM alerts") or 0
            gone = 0
            for occurrence in ended:
                await conn.execute(
                    "DELETE FROM remediations WHERE occurrence = $1 AND id < $2",
                    occurrence,
                    newest_rem,
                )
                gone += _count(
                    await conn.execute(
                        "DELETE FROM alerts WHERE occurrence = $1 AND id < $2 AND id NOT IN"
                        " (SELECT alert_id FROM remediations WHERE occurrence = $1)",
                        occurrence,
                        newest_alert,
                    )
                )
            return gone, examined[-1]

        await self._write(executions)
        total, after = 0, ""
        while True:
            gone, last = await self._write(functools.partial(occurrences, after=after))
            total += gone
            if last is None:
                return total
            after = last


async def _verify_rows(
    conn: Any, head: tuple[int, str] | None, start: tuple[int, str]
) -> VerifyResult:
    """:func:`receiver.audit.verify_chain` over the stored rows, a chunk at a time."""
    position, count = start, 0
    while True:
        stored: list[StoredRow] = await conn.fetch(
            f"SELECT {VERIFY_COLUMNS} FROM audit WHERE id > $1 ORDER BY id LIMIT $2",
            position[0],
            VERIFY_CHUNK,
        )
        if not stored:
            break
        last = (stored[-1][0], stored[-1][9])
        part = verify_chain(stored, last, position)
        if not part.ok:
            return dataclasses.replace(part, events=count + part.events)
        count += part.events
        position = last
    if head is None and position != start:
        return VerifyResult(False, count, position[0], "the recorded head of the log is missing")
    end = verify_chain([], head, position)
    return dataclasses.replace(end, events=count + end.events)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _event(data: str, prev_hash: str, hash_: str) -> AuditEvent:
    try:
        return AuditEvent.from_data(data, prev_hash, hash_)
    except (ValueError, KeyError, TypeError):
        raise StoreCorrupt(
            f"an audit event (hash {hash_[:12]}) is unreadable; run remedy audit verify"
        ) from None


def _audit_filter(query: AuditQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    for column, value in (
        ("rule", query.rule),
        ("target", query.target),
        ("fingerprint", query.alert),
    ):
        if value is not None:
            clauses.append(f"{column} = {arg(value)}")
    if query.outcome is not None:
        mark = arg(query.outcome)
        clauses.append(f"(event = {mark} OR reason = {mark})")
    if query.since is not None:
        clauses.append(f"ts >= {arg(query.since)}")
    if query.until is not None:
        clauses.append(f"ts < {arg(query.until)}")
    if query.before_id is not None:
        clauses.append(f"id < {arg(query.before_id)}")
    if query.after_id is not None:
        clauses.append(f"id > {arg(query.after_id)}")
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args

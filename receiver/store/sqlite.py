"""SQLite storage (``sqlite:///path``): WAL, synchronous=FULL, one group-committing writer.

Every state change of a remediation — created, claimed past the guards,
finished, moved by a timer, decided by an operator — is one transaction that
also appends its audit events, so the log and the state never disagree.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import functools
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import structlog

from receiver import dedup, lifecycle, transition
from receiver.audit import (
    GENESIS_HASH,
    AuditEvent,
    AuditRecord,
    StoredRow,
    VerifyResult,
    verify_chain,
)
from receiver.clock import Clock, SystemClock, timestamp
from receiver.guards import (
    FOLLOWUP_GUARDS,
    Decision,
    GlobalLimits,
    GuardSpec,
    decide,
    halt,
    waits,
)
from receiver.store.base import (
    FINAL_STATES,
    PENDING_APPROVAL,
    QUEUED,
    RUNNING,
    VERIFYING,
    WAITING,
    AuditQuery,
    Claim,
    Due,
    IncomingAlert,
    IngestResult,
    NotFound,
    Pause,
    Remediation,
    StateConflict,
    Status,
    StoreCorrupt,
    StoreUnavailable,
)
from receiver.store.writer import AuditChain, GroupWriter

T = TypeVar("T")
log = structlog.get_logger("remedy.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    status TEXT NOT NULL,
    occurrence TEXT NOT NULL,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    ends_at TEXT,
    received_at TEXT NOT NULL,
    UNIQUE (source, fingerprint, starts_at, status)
);
CREATE INDEX IF NOT EXISTS alerts_occurrence ON alerts (occurrence, status);
CREATE TABLE IF NOT EXISTS remediations (
    id INTEGER PRIMARY KEY,
    occurrence TEXT NOT NULL,
    rule TEXT NOT NULL,
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    target TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    dry_run INTEGER NOT NULL,
    plan TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    due_at TEXT,
    followup INTEGER NOT NULL DEFAULT 0,
    held_since TEXT,
    UNIQUE (occurrence, rule)
);
CREATE INDEX IF NOT EXISTS remediations_state ON remediations (state, due_at);
CREATE INDEX IF NOT EXISTS remediations_followup ON remediations (followup) WHERE followup > 0;
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY,
    remediation INTEGER NOT NULL,
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    scope TEXT,
    dry_run INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_rule_target ON executions (rule, target, dry_run, at);
CREATE INDEX IF NOT EXISTS executions_scope ON executions (scope, dry_run, at);
CREATE INDEX IF NOT EXISTS executions_at ON executions (dry_run, at);
CREATE TABLE IF NOT EXISTS locks (
    target TEXT PRIMARY KEY,
    remediation INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS breakers (
    name TEXT PRIMARY KEY,
    opened_at TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    message_id TEXT PRIMARY KEY,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS breaker_resets (
    name TEXT PRIMARY KEY,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS control (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    event TEXT NOT NULL,
    rule TEXT,
    target TEXT,
    reason TEXT,
    fingerprint TEXT,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts);
CREATE INDEX IF NOT EXISTS audit_rule ON audit (rule, id);
CREATE INDEX IF NOT EXISTS audit_target ON audit (target, id);
CREATE INDEX IF NOT EXISTS audit_fingerprint ON audit (fingerprint, id);
CREATE TABLE IF NOT EXISTS audit_head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    last_id INTEGER NOT NULL,
    last_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_checkpoint (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    last_id INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    pruned INTEGER NOT NULL,
    at TEXT NOT NULL
);
"""

PRUNE_CHUNK = 5000  # audit events deleted per write transaction
HISTORY_CHUNK = 1000  # alert occurrences examined per write transaction
FINALS = ", ".join(f"'{state}'" for state in FINAL_STATES)  # for SQL: constants only
FOLLOWUP_PENDING = 1
FOLLOWUP_RUNNING = 2
FOLLOWUP_HELD = 3  # due while remedy was paused: waits for resume

_REMEDIATION_COLUMNS = (
    "id, rule, target, state, reason, dry_run, plan, created_at, updated_at, occurrence,"
    " due_at, followup, held_since"
)
DRY_RUN_BREAKER_PREFIX = "dry-run/"


def _select(conn: sqlite3.Connection, where: str, args: Sequence[Any] = ()) -> list[Remediation]:
    """Remediations matching a WHERE clause of constant text with placeholders."""
    rows = conn.execute(f"SELECT {_REMEDIATION_COLUMNS} FROM remediations WHERE {where}", args)
    return [_remediation(row) for row in rows.fetchall()]


def _remediation(row: Sequence[Any]) -> Remediation:
    plan = json.loads(row[6])
    return Remediation(
        id=row[0],
        rule=row[1],
        target=row[2],
        state=row[3],
        reason=row[4],
        alert=plan["alert"],
        steps=plan["steps"],
        on_failure=plan["on_failure"],
        dry_run=bool(row[5]),
        created_at=row[7],
        updated_at=row[8],
        occurrence=row[9],
        guards=GuardSpec.from_json(plan.get("guards")),
        due_at=row[10],
        followup=bool(row[11]),
        held_since=row[12],
    )


class _Facts:
    """One SQLite transaction as the pipeline reads it.

    It answers :class:`receiver.guards.GuardFacts` and :class:`receiver.dedup.EpisodeFacts`.
    """

    def __init__(self, conn: sqlite3.Connection, dry_run: bool) -> None:
        self.conn = conn
        self.prefix = DRY_RUN_BREAKER_PREFIX if dry_run else ""

    def resolved(self, occurrence: str) -> bool:
        return _resolved(self.conn, occurrence)

    def paused(self) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM control WHERE key = 'paused'").fetchone() is not None
        )

    def open_breakers(self, names: list[str]) -> list[str]:
        full = [self.prefix + name for name in names]
        rows = self.conn.execute(
            f"SELECT name FROM breakers WHERE name IN ({', '.join('?' * len(full))})", full
        ).fetchall()
        return [row[0].removeprefix(self.prefix) for row in rows]

    def executions(
        self, *, since: str, dry_run: bool, rule: str | None = None, target: str | None = None
    ) -> int:
        sql = "SELECT COUNT(*) FROM executions WHERE dry_run = ? AND at > ?"
        args: list[Any] = [int(dry_run), since]
        if rule is not None:
            sql += " AND rule = ? AND target = ?"
            args += [rule, target]
        count: int = self.conn.execute(sql, args).fetchone()[0]
        return count

    def last_execution(self, rule: str, target: str, dry_run: bool) -> str | None:
        row = self.conn.execute(
            "SELECT MAX(at) FROM executions WHERE rule = ? AND target = ? AND dry_run = ?",
            (rule, target, int(dry_run)),
        ).fetchone()
        return row[0] if row else None

    def reset_at(self, name: str) -> str | None:
        row = self.conn.execute(
            "SELECT at FROM breaker_resets WHERE name = ?", (self.prefix + name,)
        ).fetchone()
        return row[0] if row else None

    def lock_holder(self, target: str) -> int | None:
        row = self.conn.execute("SELECT remediation FROM locks WHERE target = ?", (target,))
        found = row.fetchone()
        return int(found[0]) if found else None

    def running(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM locks").fetchone()[0])

    def latest_firing_start(self, source: str, fingerprint: str, until: str) -> str | None:
        row = self.conn.execute(
            "SELECT starts_at FROM alerts WHERE source = ? AND fingerprint = ?"
            " AND status = 'firing' AND starts_at <= ? ORDER BY starts_at DESC LIMIT 1",
            (source, fingerprint, until),
        ).fetchone()
        return str(row[0]) if row else None

    def resolved_after(self, source: str, fingerprint: str, since: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM alerts WHERE source = ? AND fingerprint = ? AND status = 'resolved'"
            " AND COALESCE(ends_at, starts_at) > ? LIMIT 1",
            (source, fingerprint, since),
        ).fetchone()
        return row is not None

    def scope_targets(self, scope: str, since: str, dry_run: bool) -> set[str]:
        rows = self.conn.execute(
            "SELECT DISTINCT target FROM executions WHERE scope = ? AND dry_run = ? AND at > ?",
            (scope, int(dry_run), since),
        )
        return {row[0] for row in rows}


def _watched(rem: Remediation) -> str | None:
    """The occurrence whose resolve stops ``rem``; none for work a resolve itself started."""
    return None if rem.on_resolved_alert else rem.occurrence


def _resolved(conn: sqlite3.Connection, occurrence: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM alerts WHERE occurrence = ? AND status = 'resolved'", (occurrence,)
    ).fetchone()
    return row is not None


@dataclasses.dataclass(slots=True)
class _Tx:
    """One job's transaction: its connection, its time, and the audit chain to extend."""

    conn: sqlite3.Connection
    now: str
    moment: datetime
    chain: AuditChain
    events: list[AuditEvent]

    def audit(self, records: Sequence[AuditRecord]) -> None:
        """Append chained audit events, stamped with the job's time."""
        self.events.extend(self.chain.append(self.conn, self.now, records))


class SQLiteStore:
    """The embedded default store."""

    backend = "sqlite"

    def __init__(
        self,
        path: str | Path,
        clock: Clock | None = None,
        busy_timeout: float = 5.0,
        on_commit: Callable[[float, int], None] | None = None,
        *,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lease: int | None = None
        self.clock: Clock = clock or SystemClock()
        self._busy_timeout = busy_timeout
        self._writer = GroupWriter(
            AuditChain(), on_commit, probe=_probe, directory=self.path.parent
        )
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="remedy-sqlite-read")
        self._local = threading.local()
        self.listeners: list[Callable[[list[AuditEvent]], None]] = []

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    async def open(self) -> None:
        """Take the store's lease, create the schema and start the writer thread.

        One process writes a store at a time: a second ``remedy serve`` on the
        same file would otherwise take the first one's running work for
        crashed. A read-only store (the CLI's readers) takes no lease.
        """
        if self.path.parent and not self.path.parent.exists():
            raise StoreUnavailable(f"directory {self.path.parent} does not exist")
        if self.readonly:
            if not self.path.exists():
                raise StoreUnavailable(f"no store at {self.path}")
            return
        self._take_lease()
        try:
            conn = self._connect()
            conn.executescript(SCHEMA)
            _migrate(conn)
            newest = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            head = conn.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
            checkpoint = conn.execute("SELECT last_id, last_hash FROM audit_checkpoint").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from None
        # The chain goes on from the furthest of: the newest event, the pruning
        # checkpoint (when everything was pruned) and the recorded head (when the
        # newest events were deleted: their ids are never reused, so verify goes
        # on reporting them missing).
        ends = [(int(end[0]), str(end[1])) for end in (newest, checkpoint, head) if end]
        if ends:
            self._writer.chain.reset(max(ends))
        if newest is not None and (head is None or tuple(head) != tuple(newest)):
            log.error("audit.head_mismatch", last_id=newest[0], head_id=head[0] if head else None)
        self._writer.start(conn)

    async def close(self) -> None:
        """Finish every queued write, then stop the writer and give the lease back."""
        await self._writer.stop()
        self._readers.shutdown(wait=True)
        if self._lease is not None:
            os.close(self._lease)  # closing the descriptor releases the flock
            self._lease = None

    def _take_lease(self) -> None:
        lease = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lease)
            raise StoreUnavailable(
                f"another remedy process is using {self.path} (its lease {self.path}.lock is held)"
            ) from None
        self._lease = lease

    # -- plumbing -----------------------------------------------------------

    async def _write(self, job: Callable[[_Tx], T]) -> T:
        """Run a job in the next group commit at the time it was asked for.

        The audit events it appended go to the listeners once committed.
        """
        moment = self.clock.now()
        events: list[AuditEvent] = []
        chain = self._writer.chain
        result = await self._writer.run(
            lambda conn: job(_Tx(conn, timestamp(moment), moment, chain, events))
        )
        self._publish(events)
        return result

    def _publish(self, events: list[AuditEvent]) -> None:
        for listener in self.listeners:
            listener(events)

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, lambda: fn(self._reader()))
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"storage unavailable: {exc}") from None

    @staticmethod
    def _move(
        conn: sqlite3.Connection,
        rem_id: int,
        now: str,
        state: str,
        reason: str | None = None,
        *,
        due_at: str | None = None,
        followup: bool = False,
        expect: str | None = None,
        held_since: str | None = None,
    ) -> None:
        sql = (
            "UPDATE remediations SET state = ?, reason = ?, updated_at = ?, due_at = ?,"
            " followup = ?, held_since = ? WHERE id = ?"
        )
        args: list[Any] = [state, reason, now, due_at, int(followup), held_since, rem_id]
        if expect is not None:
            sql += " AND state = ?"
            args.append(expect)
        if conn.execute(sql, args).rowcount == 0:
            raise StateConflict(f"remediation {rem_id} is not {expect or 'there'}")

    # -- the contract -------------------------------------------------------

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers and its last write worked.

        Readiness asks this every few seconds, so it writes nothing itself: the
        writer remembers its last failure and, while failed, probes on its own.
        """
        if not self._writer.alive:
            raise StoreUnavailable("the store's writer is not running")
        if self._writer.failure is not None:  # cleared by the next write that succeeds
            raise StoreUnavailable(f"the store cannot write: {self._writer.failure}")
        await self._read(lambda conn: conn.execute("SELECT 1").fetchone())

    async def ingest(
        self, alerts: Sequence[IncomingAlert], message_id: str | None = None
    ) -> IngestResult:
        """Store alerts, their remediations and audit events in one transaction.

        A resolved alert cancels what still waits for its occurrence and
        verifies what waited for it to resolve. With ``message_id`` (SNS), a
        delivery seen before stores nothing and records its alerts as duplicates.
        """

        def job(tx: _Tx) -> IngestResult:
            conn, now, moment = tx.conn, tx.now, tx.moment
            records: list[AuditRecord] = []
            queued: list[Remediation] = []
            stored = duplicates = skipped = waiting = 0
            finished: list[tuple[str, str, str | None]] = []
            if (
                message_id is not None
                and conn.execute(
                    "INSERT INTO deliveries (message_id, received_at) VALUES (?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (message_id, now),
                ).rowcount
                == 0
            ):
                tx.audit(
                    [
                        AuditRecord(
                            "skipped",
                            i.alert.summary(),
                            reason="duplicate",
                            error=f"message {message_id} was delivered before",
                        )
                        for i in alerts
                    ]
                )
                return IngestResult(0, len(alerts), [], 0)
            for incoming in alerts:
                alert = dedup.episode(incoming.alert, _Facts(conn, False))
                summary = alert.summary()
                occurrence = "|".join(alert.occurrence)
                cur = conn.execute(
                    "INSERT INTO alerts (source, fingerprint, starts_at, status, occurrence,"
                    " name, labels, annotations, ends_at, received_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (
                        alert.source,
                        alert.fingerprint,
                        alert.starts_at.isoformat(),
                        alert.status,
                        occurrence,
                        alert.name,
                        json.dumps(dict(alert.labels)),
                        json.dumps(dict(alert.annotations)),
                        alert.ends_at.isoformat() if alert.ends_at else None,
                        now,
                    ),
                )
                if cur.rowcount == 0:
                    duplicates += 1
                    records.append(AuditRecord("skipped", summary, reason="duplicate"))
                    continue
                stored += 1
                alert_id = cur.lastrowid
                records.append(AuditRecord("received", summary))
                if alert.status == "resolved":
                    records += self._on_resolved(conn, now, occurrence, finished)
                plans = incoming.plans
                if dedup.stale(alert, _Facts(conn, False)):
                    plans = ()
                    records.append(
                        AuditRecord("skipped", summary, reason="cancelled", error=dedup.STALE_ALARM)
                    )
                for plan in plans:
                    move = lifecycle.planned(plan, alert, moment)
                    steps, on_failure = list(plan.steps), list(plan.on_failure)
                    body = {
                        "alert": summary,
                        "steps": steps,
                        "on_failure": on_failure,
                        "guards": plan.guards.to_json(),
                    }
                    cur = conn.execute(
                        "INSERT INTO remediations (occurrence, rule, alert_id, target, state,"
                        " reason, dry_run, plan, created_at, updated_at, due_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (
                            occurrence,
                            plan.rule,
                            alert_id,
                            plan.target,
                            move.state,
                            move.reason,
                            int(plan.dry_run),
                            json.dumps(body),
                            now,
                            now,
                            move.due_at,
                        ),
                    )
                    if cur.rowcount == 0:
                        continue
                    assert cur.lastrowid is not None
                    rem = Remediation(
                        cur.lastrowid,
                        plan.rule,
                        plan.target,
                        move.state,
                        move.reason,
                        summary,
                        steps,
                        on_failure,
                        plan.dry_run,
                        now,
                        now,
                        occurrence,
                        plan.guards,
                        move.due_at,
                    )
                    records.append(
                        transition.about("matched", rem, params=[_step_view(s) for s in rem.steps])
                    )
                    records += move.records(rem)
                    if move.ready:
                        queued.append(rem)
                    elif move.state == "skipped":
                        skipped += 1
                    else:
                        waiting += 1
            tx.audit(records)
            return IngestResult(stored, duplicates, queued, skipped, waiting, finished)

        return await self._write(job)

    def _on_resolved(
        self,
        conn: sqlite3.Connection,
        now: str,
        occurrence: str,
        finished: list[tuple[str, str, str | None]],
    ) -> list[AuditRecord]:
        """Cancel what still waits for a now-resolved occurrence; verify what waited on it."""
        records: list[AuditRecord] = []
        for rem in _select(
            conn,
            "occurrence = ? AND state IN (?, ?, ?, ?)",
            (occurrence, WAITING, PENDING_APPROVAL, QUEUED, VERIFYING),
        ):
            if (move := lifecycle.resolved(rem)) is not None:
                records += self._apply(conn, now, rem, move, finished=finished)
        return records

    def _apply(
        self,
        conn: sqlite3.Connection,
        now: str,
        rem: Remediation,
        move: transition.Move,
        *,
        finished: list[tuple[str, str, str | None]],
        expect: str | None = None,
    ) -> list[AuditRecord]:
        """Write a lifecycle move; its audit records (for the caller to append)."""
        self._move(
            conn,
            rem.id,
            now,
            move.state,
            move.reason,
            due_at=move.due_at,
            followup=move.followup,
            expect=expect,
            held_since=move.held_since,
        )
        if move.final:
            finished.append((rem.rule, move.state, move.reason))
        return move.records(rem)

    async def claim(
        self,
        rem: Remediation,
        *,
        dry_run: bool,
        limits: GlobalLimits,
        denied: str | None = None,
        give_up_waiting: bool = False,
    ) -> Claim:
        """Apply the guards and, when they allow it, take the remediation: one transaction."""

        def job(tx: _Tx) -> Claim:
            conn, now, moment = tx.conn, tx.now, tx.moment
            row = conn.execute(
                "SELECT state, held_since FROM remediations WHERE id = ?", (rem.id,)
            ).fetchone()
            if row is None or row[0] != QUEUED:
                raise StateConflict(f"remediation {rem.id} is no longer queued")
            target = rem.target or ""
            decision = decide(
                _Facts(conn, dry_run),
                rule=rem.rule,
                target=target,
                occurrence=_watched(rem),
                spec=rem.guards,
                limits=limits,
                now=moment,
                dry_run=dry_run,
                denied=denied,
            )
            if waits(decision, rem.guards, give_up=give_up_waiting):
                return Claim(QUEUED, decision.reason, decision.detail, retry=True)
            if decision.reason == "paused":
                # Held, not dropped: it stays queued and goes through every guard at resume.
                if row[1] is None:
                    move = lifecycle.held(now)
                    tx.audit(self._apply(conn, now, rem, move, finished=[], expect=QUEUED))
                return Claim(QUEUED, "paused", decision.detail, held=True)
            if not decision.allowed:
                self._open_breaker(tx, decision, dry_run)
                self._move(conn, rem.id, now, "skipped", decision.reason, expect=QUEUED)
                error = decision.detail
                tx.audit([transition.about("skipped", rem, reason=decision.reason, error=error)])
                return Claim("skipped", decision.reason, decision.detail)
            scope = rem.guards.blast_radius[0] if rem.guards.blast_radius else None
            self._take(tx, rem, rem.steps, rule=rem.rule, scope=scope, dry_run=dry_run)
            self._move(conn, rem.id, now, "dry_run" if dry_run else RUNNING, expect=QUEUED)
            return Claim("dry_run" if dry_run else RUNNING)

        return await self._write(job)

    async def finish(
        self,
        rem: Remediation,
        records: Sequence[AuditRecord],
        state: str,
        *,
        followup: bool = False,
    ) -> str:
        """Record the last step's outcome and the remediation's state; release its lock.

        A success with ``verify`` becomes ``verifying`` (or ``verified`` at once
        when the alert already resolved). Returns the state written.
        """

        def job(tx: _Tx) -> str:
            resolved = _resolved(tx.conn, rem.occurrence)
            move = lifecycle.finished(rem, state, resolved=resolved, now=tx.moment)
            move = dataclasses.replace(move, followup=followup)
            more = self._apply(tx.conn, tx.now, rem, move, finished=[], expect=RUNNING)
            tx.conn.execute("DELETE FROM locks WHERE remediation = ?", (rem.id,))
            tx.audit([*records, *more])
            return move.state

        return await self._write(job)

    async def claim_followup(
        self,
        rem: Remediation,
        *,
        dry_run: bool,
        limits: GlobalLimits,
        denied: str | None = None,
    ) -> Claim:
        """Take a due on_failure run past pause, allow-lists, the breaker and the target lock.

        Taken, it holds the target's lock and is marked running, so a crash
        during it is reported as interrupted, never run again.
        """

        def job(tx: _Tx) -> Claim:
            conn = tx.conn
            row = conn.execute("SELECT followup FROM remediations WHERE id = ?", (rem.id,))
            found = row.fetchone()
            if found is None or found[0] != FOLLOWUP_PENDING:
                raise StateConflict(f"remediation {rem.id} has no on_failure due")
            rule = f"{rem.rule}/on_failure"  # counted apart from the remediation's own runs
            decision = decide(
                _Facts(conn, dry_run),
                rule=rule,
                target=rem.target or "",
                occurrence=_watched(rem),
                spec=FOLLOWUP_GUARDS,
                limits=limits,
                now=tx.moment,
                dry_run=dry_run,
                denied=denied,
                before="it could run",
            )
            if waits(decision, FOLLOWUP_GUARDS, give_up=False, followup=True):
                return Claim(QUEUED, decision.reason, decision.detail, retry=True)
            if decision.reason == "paused":  # held, like the remediations a pause holds
                conn.execute(
                    "UPDATE remediations SET followup = ?, held_since = ? WHERE id = ?",
                    (FOLLOWUP_HELD, tx.now, rem.id),
                )
                tx.audit([transition.about("queued", rem, reason=lifecycle.ON_FAILURE_HELD)])
                return Claim(QUEUED, "paused", decision.detail, held=True)
            if not decision.allowed:
                self._open_breaker(tx, decision, dry_run)
                conn.execute("UPDATE remediations SET followup = 0 WHERE id = ?", (rem.id,))
                error = f"on_failure not run: {decision.detail}"
                tx.audit([transition.about("skipped", rem, reason=decision.reason, error=error)])
                return Claim("skipped", decision.reason, decision.detail)
            self._take(
                tx, rem, rem.on_failure, rule=rule, scope=None, dry_run=dry_run, reason="on_failure"
            )
            followup = 0 if dry_run else FOLLOWUP_RUNNING
            conn.execute("UPDATE remediations SET followup = ? WHERE id = ?", (followup, rem.id))
            return Claim("dry_run" if dry_run else RUNNING)

        return await self._write(job)

    @staticmethod
    def _open_breaker(tx: _Tx, decision: Decision, dry_run: bool) -> None:
        """Open the breaker a decision asks for (dry-run keeps breakers of its own)."""
        if decision.open_breaker is None:
            return
        prefix = DRY_RUN_BREAKER_PREFIX if dry_run else ""
        tx.conn.execute(
            "INSERT INTO breakers (name, opened_at, reason) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (prefix + decision.open_breaker, tx.now, decision.detail or ""),
        )

    @staticmethod
    def _take(
        tx: _Tx,
        rem: Remediation,
        steps: Sequence[Mapping[str, Any]],
        *,
        rule: str,
        scope: str | None,
        dry_run: bool,
        reason: str | None = None,
    ) -> None:
        """Record the execution the guards count; live, take the target's lock and start.

        In dry-run every step is recorded as what would have run.
        """
        target = rem.target or ""
        tx.conn.execute(
            "INSERT INTO executions (remediation, rule, target, scope, dry_run, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (rem.id, rule, target, scope, int(dry_run), tx.now),
        )
        if dry_run:
            tx.audit(
                [
                    transition.about(
                        "dry_run", rem, action=s["action"], params=s["params"], reason=reason
                    )
                    for s in steps
                ]
            )
            return
        tx.conn.execute(
            "INSERT INTO locks (target, remediation, at) VALUES (?, ?, ?)", (target, rem.id, tx.now)
        )
        first = steps[0]
        tx.audit(
            [
                transition.about(
                    "started", rem, action=first["action"], params=first["params"], reason=reason
                )
            ]
        )

    async def followup_done(self, rem: Remediation, records: Sequence[AuditRecord]) -> None:
        """on_failure has run for ``rem``: record its last step, clear the flag, free the lock."""

        def job(tx: _Tx) -> None:
            tx.conn.execute("UPDATE remediations SET followup = 0 WHERE id = ?", (rem.id,))
            tx.conn.execute("DELETE FROM locks WHERE remediation = ?", (rem.id,))
            tx.audit(records)

        await self._write(job)

    async def begin_step(self, rem: Remediation, started: AuditRecord, *, before: str) -> Decision:
        """Record a further step's ``started``, unless a resolve or a pause now stops it.

        One transaction, so a resolve or pause committed first is always seen.
        """

        def job(tx: _Tx) -> Decision:
            stop = halt(_Facts(tx.conn, False), occurrence=_watched(rem), before=before)
            if stop.allowed:
                tx.audit([started])
            return stop

        return await self._write(job)

    async def halted(self, rem: Remediation, *, before: str) -> Decision:
        """Whether a resolve or a pause stops what would start next (a retry), reading only."""
        return await self._read(
            lambda conn: halt(_Facts(conn, False), occurrence=_watched(rem), before=before)
        )

    async def record(self, records: Sequence[AuditRecord]) -> list[AuditEvent]:
        """Append audit events that change no remediation (reloads, on_failure steps)."""

        def job(tx: _Tx) -> list[AuditEvent]:
            tx.audit(records)
            return tx.events

        return await self._write(job)

    async def advance(self, now: datetime) -> Due:
        """Move every remediation whose timer is due at ``now``."""

        def job(tx: _Tx) -> Due:
            conn = tx.conn
            at = timestamp(now)
            rows = conn.execute(
                f"SELECT {_REMEDIATION_COLUMNS} FROM remediations"
                " WHERE state IN (?, ?, ?) AND due_at <= ? ORDER BY due_at, id",
                (WAITING, PENDING_APPROVAL, VERIFYING, at),
            ).fetchall()
            queued: list[Remediation] = []
            followups: list[Remediation] = []
            finished: list[tuple[str, str, str | None]] = []
            records: list[AuditRecord] = []
            for row in rows:
                rem = _remediation(row)
                move = lifecycle.timer(rem, now)
                records += self._apply(conn, at, rem, move, finished=finished)
                if move.ready:
                    queued.append(_with_state(rem, move.state))
                if move.followup:
                    followups.append(_with_state(rem, move.state))
            tx.audit(records)
            return Due(queued, followups, finished)

        return await self._write(job)

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

        def read(conn: sqlite3.Connection) -> Decision:
            return decide(
                _Facts(conn, dry_run),
                rule=rule,
                target=target,
                occurrence=occurrence,
                spec=spec,
                limits=limits,
                now=now,
                dry_run=dry_run,
                denied=denied,
            )

        return await self._read(read)

    async def next_due(self) -> str | None:
        """The earliest timer still to fire, if any."""

        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT MIN(due_at) FROM remediations WHERE state IN (?, ?, ?)",
                (WAITING, PENDING_APPROVAL, VERIFYING),
            ).fetchone()
            return row[0] if row else None

        return await self._read(read)

    async def heartbeat(self, *, take_over: bool = True) -> Due:
        """Nothing to renew or take over: one process owns a SQLite file."""
        return Due()

    async def recover(self) -> Due:
        """After a restart: interrupt what was running, hand back what was queued."""

        def job(tx: _Tx) -> Due:
            conn, now = tx.conn, tx.now
            records: list[AuditRecord] = []
            finished: list[tuple[str, str, str | None]] = []
            for rem in _select(conn, "state = ?", (RUNNING,)):
                records += self._apply(
                    conn, now, rem, lifecycle.interrupted(rem), finished=finished
                )
                conn.execute("DELETE FROM locks WHERE remediation = ?", (rem.id,))
            tx.audit(records)
            queued = _select(conn, "state = ? AND held_since IS NULL ORDER BY id", (QUEUED,))
            # An on_failure run that had started is reported, never run again.
            for r in conn.execute(
                f"SELECT {_REMEDIATION_COLUMNS} FROM remediations WHERE followup = ?",
                (FOLLOWUP_RUNNING,),
            ).fetchall():
                rem = _remediation(r)
                conn.execute("UPDATE remediations SET followup = 0 WHERE id = ?", (rem.id,))
                conn.execute("DELETE FROM locks WHERE remediation = ?", (rem.id,))
                tx.audit(
                    [
                        transition.about(
                            "interrupted",
                            rem,
                            reason="on_failure",
                        )
                    ]
                )
            followups = _select(conn, "followup = ? ORDER BY id", (FOLLOWUP_PENDING,))
            return Due(queued, followups, finished)

        return await self._write(job)

    async def decide_approval(self, remediation_id: int, approve: bool, actor: str) -> Remediation:
        """An operator's decision on a ``pending_approval`` remediation."""

        def job(tx: _Tx) -> Remediation:
            conn, now = tx.conn, tx.now
            row = conn.execute(
                f"SELECT {_REMEDIATION_COLUMNS} FROM remediations WHERE id = ?",
                (remediation_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"remediation {remediation_id} does not exist")
            rem = _remediation(row)
            if rem.state != PENDING_APPROVAL:
                raise StateConflict(f"remediation {remediation_id} is {rem.state}, not pending")
            if approve:
                paused = _Facts(conn, False).paused()
                move = lifecycle.approved(paused=paused, now=now, actor=actor)
            else:
                move = lifecycle.rejected(actor)
            tx.audit(self._apply(conn, now, rem, move, finished=[], expect=PENDING_APPROVAL))
            return dataclasses.replace(
                rem, state=move.state, reason=move.reason, due_at=None, held_since=move.held_since
            )

        return await self._write(job)

    async def set_paused(
        self,
        paused: bool,
        actor: str,
        reason: str | None = None,
        breaker: str | None = None,
        *,
        pause_hold: float,
    ) -> Due:
        """Pause (nothing starts after this commits) or resume; what resuming releases.

        Resume lifts the pause and closes every breaker; with ``breaker`` it
        closes only that one and leaves a pause in place. A closed breaker
        counts its window again from the moment it closed. Work the pause held
        is released to be claimed (through every guard) in the same
        transaction, unless it was held longer than ``pause_hold`` seconds:
        that ends ``skipped: paused``.
        """

        def job(tx: _Tx) -> Due:
            conn, now = tx.conn, tx.now
            if breaker is not None:
                names = [breaker, DRY_RUN_BREAKER_PREFIX + breaker]
                found = conn.execute(
                    "SELECT name FROM breakers WHERE name IN (?, ?)", names
                ).fetchall()
                if not found:
                    raise NotFound(f"breaker {breaker} is not open")
                for (name,) in found:
                    self._close_breaker(conn, name, now)
                tx.audit(
                    [AuditRecord("resumed", actor=actor, reason=f"closed breakers: {breaker}")]
                )
                return Due()
            if paused:
                # A pause that is already in force keeps who started it, why and since when.
                conn.execute(
                    "INSERT INTO control (key, value) VALUES ('paused', ?) ON CONFLICT DO NOTHING",
                    (json.dumps({"actor": actor, "at": now, "reason": reason}),),
                )
                tx.audit([AuditRecord("paused", actor=actor, reason=reason)])
                return Due()
            closed = [row[0] for row in conn.execute("SELECT name FROM breakers ORDER BY name")]
            conn.execute("DELETE FROM control WHERE key = 'paused'")
            for name in closed:
                self._close_breaker(conn, name, now)
            note = f"closed breakers: {', '.join(closed)}" if closed else reason
            tx.audit([AuditRecord("resumed", actor=actor, reason=note)])
            return self._release_held(tx, pause_hold)

        return await self._write(job)

    def _release_held(self, tx: _Tx, pause_hold: float) -> Due:
        """Hand back the work a pause held, or drop what it held too long."""
        released: list[Remediation] = []
        finished: list[tuple[str, str, str | None]] = []
        for rem in _select(tx.conn, "state = ? AND held_since IS NOT NULL ORDER BY id", (QUEUED,)):
            move = lifecycle.released(rem, tx.moment, pause_hold)
            tx.audit(self._apply(tx.conn, tx.now, rem, move, finished=finished, expect=QUEUED))
            if move.ready:
                released.append(dataclasses.replace(rem, held_since=None))
        followups: list[Remediation] = []
        for rem in _select(tx.conn, "followup = ? ORDER BY id", (FOLLOWUP_HELD,)):
            runs, (event, reason, error) = lifecycle.followup_released(rem, tx.moment, pause_hold)
            tx.conn.execute(
                "UPDATE remediations SET followup = ?, held_since = NULL WHERE id = ?",
                (FOLLOWUP_PENDING if runs else 0, rem.id),
            )
            tx.audit([transition.about(event, rem, reason=reason, error=error)])
            if runs:
                followups.append(dataclasses.replace(rem, held_since=None))
        return Due(queued=released, followups=followups, finished=finished)

    @staticmethod
    def _close_breaker(conn: sqlite3.Connection, name: str, now: str) -> None:
        conn.execute("DELETE FROM breakers WHERE name = ?", (name,))
        conn.execute(
            "INSERT INTO breaker_resets (name, at) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET at = excluded.at",
            (name, now),
        )

    async def pending(self) -> Due:
        """Stored work that should be in some worker's queue: queued, and on_failure due."""

        def read(conn: sqlite3.Connection) -> Due:
            queued = conn.execute(
                f"SELECT {_REMEDIATION_COLUMNS} FROM remediations"
                " WHERE state = ? AND held_since IS NULL ORDER BY id LIMIT 10000",
                (QUEUED,),
            ).fetchall()
            followups = conn.execute(
                f"SELECT {_REMEDIATION_COLUMNS} FROM remediations WHERE followup = ? ORDER BY id",
                (FOLLOWUP_PENDING,),
            ).fetchall()
            return Due([_remediation(r) for r in queued], [_remediation(r) for r in followups])

        return await self._read(read)

    async def paused(self) -> bool:
        """Whether an operator has paused remedy (read before each further step)."""
        return (await self.control())[0]

    async def control(self) -> tuple[bool, int]:
        """Paused, and how many breakers are open: cheap enough to read every tick."""

        def read(conn: sqlite3.Connection) -> tuple[bool, int]:
            paused = conn.execute("SELECT 1 FROM control WHERE key = 'paused'").fetchone()
            breakers = conn.execute(
                "SELECT COUNT(*) FROM breakers WHERE name NOT LIKE ?",
                (DRY_RUN_BREAKER_PREFIX + "%",),
            ).fetchone()[0]
            return paused is not None, int(breakers)

        return await self._read(read)

    async def status(self) -> Status:
        """Pause, open breakers, remediations by state, the oldest queued."""

        def read(conn: sqlite3.Connection) -> Status:
            paused = conn.execute("SELECT value FROM control WHERE key = 'paused'").fetchone()
            breakers = dict(conn.execute("SELECT name, reason FROM breakers ORDER BY name"))
            states = dict(conn.execute("SELECT state, COUNT(*) FROM remediations GROUP BY state"))
            oldest = conn.execute(
                "SELECT MIN(updated_at) FROM remediations WHERE state = ?", (QUEUED,)
            ).fetchone()[0]
            held = conn.execute(
                "SELECT COUNT(*) FROM remediations"
                " WHERE (state = ? AND held_since IS NOT NULL) OR followup = ?",
                (QUEUED, FOLLOWUP_HELD),
            ).fetchone()[0]
            pause = Pause.from_json(paused[0]) if paused else None
            return Status(pause is not None, breakers, states, oldest, pause, int(held))

        return await self._read(read)

    async def remediations(self, states: Sequence[str] = ()) -> list[Remediation]:
        """Remediation records, oldest first, optionally only in the given states."""

        def read(conn: sqlite3.Connection) -> list[Remediation]:
            sql = f"SELECT {_REMEDIATION_COLUMNS} FROM remediations"
            args: tuple[str, ...] = ()
            if states:
                sql += f" WHERE state IN ({', '.join('?' * len(states))})"
                args = tuple(states)
            return [_remediation(row) for row in conn.execute(sql + " ORDER BY id", args)]

        return await self._read(read)

    async def remediation(self, remediation_id: int) -> Remediation:
        """One remediation record; :class:`NotFound` when there is none."""

        def read(conn: sqlite3.Connection) -> Remediation:
            row = conn.execute(
                f"SELECT {_REMEDIATION_COLUMNS} FROM remediations WHERE id = ?", (remediation_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"remediation {remediation_id} does not exist")
            return _remediation(row)

        return await self._read(read)

    async def audit(self, query: AuditQuery) -> list[AuditEvent]:
        """Audit events matching the query, newest first."""
        where, args = _audit_filter(query)
        order = "ASC" if query.after_id is not None else "DESC"
        sql = f"SELECT data, prev_hash, hash FROM audit {where} ORDER BY id {order} LIMIT ?"

        def read(conn: sqlite3.Connection) -> list[AuditEvent]:
            rows = conn.execute(sql, (*args, query.limit)).fetchall()
            return [_event(d, p, h) for d, p, h in rows]

        return await self._read(read)

    async def verify(self) -> VerifyResult:
        """Check the chain from the pruning checkpoint (or the first event) to the recorded head."""

        def read(conn: sqlite3.Connection) -> VerifyResult:
            conn.execute("BEGIN")
            try:
                head_row = conn.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
                checkpoint = _checkpoint(conn)
                result = verify_chain(
                    _stored_rows(conn),
                    tuple(head_row) if head_row else None,
                    checkpoint[:2] if checkpoint else (0, GENESIS_HASH),
                )
                if checkpoint is None:
                    return result
                # Said with every answer: whoever can write the store could also
                # rewrite the checkpoint, so a reader should see where it starts.
                pruned = {"through": checkpoint[0], "events": checkpoint[2], "at": checkpoint[3]}
                return dataclasses.replace(result, pruned=pruned)
            finally:
                conn.execute("COMMIT")

        return await self._read(read)

    async def prune(self, before: datetime) -> int:
        """Drop audit events older than ``before``; how many went.

        Only a prefix of the chain goes: everything before the first event
        stamped at or after ``before`` (one stamped too early further on, by
        a clock stepped back, keeps the rest). A checkpoint keeps the last
        dropped event's id and hash, so what remains still verifies from it
        (and a deleted checkpoint, or an event cut from the new start, does
        not). Deletes go in chunks, so ingest never waits behind one big
        transaction. SNS delivery ids older than ``before`` go too:
        redeliveries come within hours.
        """
        cutoff = timestamp(before)

        def job(tx: _Tx) -> int:
            tx.conn.execute("DELETE FROM deliveries WHERE received_at < ?", (cutoff,))
            first_kept = tx.conn.execute(
                "SELECT MIN(id) FROM audit WHERE ts >= ?", (cutoff,)
            ).fetchone()[0]
            bound = first_kept if first_kept is not None else 2**62
            row = (
                tx.conn.execute(
                    "SELECT id, hash FROM audit WHERE id < ? ORDER BY id LIMIT 1 OFFSET ?",
                    (bound, PRUNE_CHUNK - 1),
                ).fetchone()
                or tx.conn.execute(
                    "SELECT id, hash FROM audit WHERE id < ? ORDER BY id DESC LIMIT 1", (bound,)
                ).fetchone()
            )
            if row is None:
                return 0
            gone = tx.conn.execute("DELETE FROM audit WHERE id <= ?", (row[0],)).rowcount
            tx.conn.execute(
                "INSERT INTO audit_checkpoint (one, last_id, last_hash, pruned, at)"
                " VALUES (1, ?, ?, ?, ?) ON CONFLICT (one) DO UPDATE SET"
                " last_id = excluded.last_id, last_hash = excluded.last_hash,"
                " pruned = pruned + excluded.pruned, at = excluded.at",
                (row[0], row[1], gone, tx.now),
            )
            return int(gone)

        total = 0
        while gone := await self._write(job):
            total += gone
            if gone < PRUNE_CHUNK:
                break
        return total

    async def prune_history(self, before: datetime, guard_window: float) -> int:
        """Drop the alerts and remediations of occurrences that ended before ``before``.

        An occurrence goes only once it has resolved and every record of it is
        older than ``before`` and every remediation of it is final (no
        on_failure pending): a firing alert keeps its row however old, since
        its redeliveries must stay duplicates. The newest row of each table
        always stays, so no id is ever given out twice. Executions, which the
        guards count, go only when older than both ``before`` and the longest
        guard window ever configured (``guard_window`` now, or a longer one
        remembered from before). Occurrences are examined a chunk at a time,
        in order, so ingest never waits long. How many alerts went.
        """
        cutoff = timestamp(before)

        def executions(tx: _Tx) -> None:
            remembered = tx.conn.execute(
                "SELECT value FROM control WHERE key = 'guard_window'"
            ).fetchone()
            window = max(guard_window, float(remembered[0]) if remembered else 0.0)
            tx.conn.execute(
                "INSERT INTO control (key, value) VALUES ('guard_window', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(window),),
            )
            oldest = timestamp(min(before, tx.moment - timedelta(seconds=window)))
            tx.conn.execute("DELETE FROM executions WHERE dry_run IN (0, 1) AND at < ?", (oldest,))

        def occurrences(tx: _Tx, after: str) -> tuple[int, str | None]:
            examined = [
                row[0]
                for row in tx.conn.execute(
                    "SELECT DISTINCT occurrence FROM alerts WHERE occurrence > ?"
                    " ORDER BY occurrence LIMIT ?",
                    (after, HISTORY_CHUNK),
                )
            ]
            if not examined:
                return 0, None
            marks = ", ".join("?" * len(examined))
            ended = [
                row[0]
                for row in tx.conn.execute(
                    f"SELECT occurrence FROM alerts a WHERE occurrence IN ({marks})"
                    " GROUP BY occurrence"
                    " HAVING MAX(received_at) < ? AND SUM(status = 'resolved') > 0"
                    " AND NOT EXISTS (SELECT 1 FROM remediations r"
                    "  WHERE r.occurrence = a.occurrence AND (r.updated_at >= ?"
                    f"  OR r.followup > 0 OR r.state NOT IN ({FINALS})))",
                    (*examined, cutoff, cutoff),
                )
            ]
            newest_rem = tx.conn.execute("SELECT MAX(id) FROM remediations").fetchone()[0] or 0
            newest_alert = tx.conn.execute("SELECT MAX(id) FROM alerts").fetchone()[0] or 0
            gone = 0
            for occurrence in ended:
                tx.conn.execute(
                    "DELETE FROM remediations WHERE occurrence = ? AND id < ?",
                    (occurrence, newest_rem),
                )
                gone += tx.conn.execute(
                    "DELETE FROM alerts WHERE occurrence = ? AND id < ?"
                    " AND id NOT IN (SELECT alert_id FROM remediations WHERE occurrence = ?)",
                    (occurrence, newest_alert, occurrence),
                ).rowcount
            return gone, examined[-1]

        await self._write(executions)
        total, after = 0, ""
        while True:
            gone, last = await self._write(functools.partial(occurrences, after=after))
            total += gone
            if last is None:
                return total
            after = last


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a store written by an older remedy up to this schema (columns added since)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(remediations)")}
    if "held_since" not in columns:
        conn.execute("ALTER TABLE remediations ADD COLUMN held_since TEXT")


def _probe(conn: sqlite3.Connection) -> None:
    """The smallest real write: after a failure, the writer's test that writes work again."""
    conn.execute(
        "INSERT INTO control (key, value) VALUES ('written_at', datetime('now'))"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )


def _checkpoint(conn: sqlite3.Connection) -> tuple[int, str, int, str] | None:
    """The last pruned event's id and hash, how many were pruned, and when last.

    ``None`` in a store that was never pruned. A store written before pruning
    existed has no such table until ``serve`` opens it; a reader (``remedy
    audit verify``) may get there first.
    """
    try:
        row = conn.execute("SELECT last_id, last_hash, pruned, at FROM audit_checkpoint").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return None
    return (int(row[0]), str(row[1]), int(row[2]), str(row[3])) if row else None


def _with_state(rem: Remediation, state: str) -> Remediation:
    return dataclasses.replace(rem, state=state, due_at=None)


def _event(data: str, prev_hash: str, hash_: str) -> AuditEvent:
    try:
        return AuditEvent.from_data(data, prev_hash, hash_)
    except (ValueError, KeyError, TypeError):
        raise StoreCorrupt(
            f"an audit event (hash {hash_[:12]}) is unreadable; run remedy audit verify"
        ) from None


def _stored_rows(conn: sqlite3.Connection) -> Iterator[StoredRow]:
    cursor = conn.execute(
        "SELECT id, ts, event, rule, target, reason, fingerprint, data, prev_hash, hash"
        " FROM audit ORDER BY id"
    )
    for row in cursor:
        columns = dict(
            zip(("ts", "event", "rule", "target", "reason", "fingerprint"), row[1:7], strict=True)
        )
        yield StoredRow(row[0], columns, row[7], row[8], row[9])


def _audit_filter(query: AuditQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("rule", query.rule),
        ("target", query.target),
        ("fingerprint", query.alert),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if query.outcome is not None:
        clauses.append("(event = ? OR reason = ?)")
        args += [query.outcome, query.outcome]
    if query.since is not None:
        clauses.append("ts >= ?")
        args.append(query.since)
    if query.until is not None:
        clauses.append("ts < ?")
        args.append(query.until)
    if query.before_id is not None:
        clauses.append("id < ?")
        args.append(query.before_id)
    if query.after_id is not None:
        clauses.append("id > ?")
        args.append(query.after_id)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


def _step_view(step: Any) -> Any:
    return {"action": step.get("action"), "params": step.get("params")}

"""SQLite storage (``sqlite:///path``): WAL, synchronous=FULL, one group-committing writer.

Every state change of a remediation — created, claimed past the guards,
finished, moved by a timer, decided by an operator — is one transaction that
also appends its audit events, so the log and the state never disagree.
Those writes are the flows of :mod:`receiver.store.flows`, the same
PostgreSQL runs, over this module's :class:`_Tx` rows on the writer thread.
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
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

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
from receiver.clock import Clock, SystemClock, timestamp
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
from receiver.store.writer import AuditChain, GroupWriter
from rules.alert import Alert

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
CREATE INDEX IF NOT EXISTS audit_rule_set ON audit (rule, id) WHERE rule IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_target_set ON audit (target, id) WHERE target IS NOT NULL;
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

_REMEDIATION_COLUMNS = (
    "id, rule, target, state, reason, dry_run, plan, created_at, updated_at, occurrence,"
    " due_at, followup, held_since"
)


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
        link=plan.get("link", ""),
        when=plan.get("when", ()),
        silence=plan.get("silence"),
    )


class _Facts:
    """One SQLite transaction as the pipeline reads it.

    It answers :class:`receiver.guards.GuardFacts` and :class:`receiver.dedup.EpisodeFacts`.
    """

    def __init__(self, conn: sqlite3.Connection, dry_run: bool) -> None:
        self.conn = conn
        self.prefix = flows.DRY_RUN_BREAKER_PREFIX if dry_run else ""

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


def _resolved(conn: sqlite3.Connection, occurrence: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM alerts WHERE occurrence = ? AND status = 'resolved'", (occurrence,)
    ).fetchone()
    return row is not None


@dataclasses.dataclass(slots=True)
class _Tx:
    """One job's transaction: what the flows persist and query (:class:`flows.Rows`).

    Its methods are coroutines only in form: each runs its statements at
    once, on the writer thread, so :func:`flows.drive` runs a flow to its end.
    """

    conn: sqlite3.Connection
    now: str
    moment: datetime
    chain: AuditChain
    events: list[AuditEvent]

    async def audit(self, records: Sequence[AuditRecord]) -> list[AuditEvent]:
        """Append chained audit events, stamped with the job's time."""
        events = self.chain.append(self.conn, self.now, records)
        self.events.extend(events)
        return events

    async def answer(self, decision: Callable[[Any], T], *, dry_run: bool = False) -> T:
        return decision(_Facts(self.conn, dry_run))

    async def new_delivery(self, message_id: str) -> bool:
        return (
            self.conn.execute(
                "INSERT INTO deliveries (message_id, received_at) VALUES (?, ?)"
                " ON CONFLICT DO NOTHING",
                (message_id, self.now),
            ).rowcount
            > 0
        )

    async def insert_alert(
        self,
        alert: Alert,
        occurrence: str,
        remediations: Callable[[], Sequence[tuple[Remediation, str]]],
    ) -> tuple[int | None, list[int | None]]:
        cur = self.conn.execute(
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
                self.now,
            ),
        )
        if not cur.rowcount:
            return None, []
        alert_id = cur.lastrowid
        return alert_id, [
            self._insert_remediation(occurrence, alert_id, rem, plan)
            for rem, plan in remediations()
        ]

    def _insert_remediation(
        self, occurrence: str, alert_id: int | None, rem: Remediation, plan: str
    ) -> int | None:
        cur = self.conn.execute(
            "INSERT INTO remediations (occurrence, rule, alert_id, target, state,"
            " reason, dry_run, plan, created_at, updated_at, due_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                occurrence,
                rem.rule,
                alert_id,
                rem.target,
                rem.state,
                rem.reason,
                int(rem.dry_run),
                plan,
                self.now,
                self.now,
                rem.due_at,
            ),
        )
        return cur.lastrowid if cur.rowcount else None

    async def waiting_on(self, occurrence: str) -> list[Remediation]:
        return _select(
            self.conn,
            "occurrence = ? AND state IN (?, ?, ?, ?) ORDER BY id",
            (occurrence, WAITING, PENDING_APPROVAL, QUEUED, VERIFYING),
        )

    async def due(self, at: str) -> list[Remediation]:
        return _select(
            self.conn,
            "state IN (?, ?, ?) AND due_at <= ? ORDER BY due_at, id",
            (WAITING, PENDING_APPROVAL, VERIFYING, at),
        )

    async def held(self) -> list[Remediation]:
        return _select(self.conn, "state = ? AND held_since IS NOT NULL ORDER BY id", (QUEUED,))

    async def with_followup(self, flag: int) -> list[Remediation]:
        return _select(self.conn, "followup = ? ORDER BY id", (flag,))

    async def for_update(self, rem_id: int) -> Remediation | None:
        found = _select(self.conn, "id = ?", (rem_id,))  # one writer: nothing to lock
        return found[0] if found else None

    async def claim_row(self, rem_id: int) -> tuple[str, str | None] | None:
        row = self.conn.execute(
            "SELECT state, held_since FROM remediations WHERE id = ?", (rem_id,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    async def followup_state(self, rem_id: int) -> int | None:
        row = self.conn.execute("SELECT followup FROM remediations WHERE id = ?", (rem_id,))
        found = row.fetchone()
        return None if found is None else int(found[0])

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
        sql = (
            "UPDATE remediations SET state = ?, reason = ?, updated_at = ?, due_at = ?,"
            " followup = ?, held_since = ? WHERE id = ?"
        )
        args: list[Any] = [state, reason, self.now, due_at, int(followup), held_since, rem_id]
        if expect is not None:
            sql += " AND state = ?"
            args.append(expect)
        if self.conn.execute(sql, args).rowcount == 0:
            raise StateConflict(f"remediation {rem_id} is not {expect or 'there'}")

    async def set_followup(self, rem_id: int, flag: int, *, held_since: str | None = None) -> None:
        self.conn.execute(
            "UPDATE remediations SET followup = ?, held_since = ? WHERE id = ?",
            (flag, held_since, rem_id),
        )

    async def end_followup(self, rem_id: int) -> bool:
        return (
            self.conn.execute(
                "UPDATE remediations SET followup = 0 WHERE id = ? AND followup = ?",
                (rem_id, flows.FOLLOWUP_RUNNING),
            ).rowcount
            > 0
        )

    async def owned(self, rem_id: int) -> bool:
        return True  # one process owns a SQLite file and all its work

    async def record_execution(
        self, rem_id: int, rule: str, target: str, scope: str | None, dry_run: bool
    ) -> None:
        self.conn.execute(
            "INSERT INTO executions (remediation, rule, target, scope, dry_run, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (rem_id, rule, target, scope, int(dry_run), self.now),
        )

    async def take(self, rem_id: int, state: str, run: flows.Execution) -> None:
        await self.move(rem_id, state, expect=QUEUED)
        await self.record_execution(rem_id, *run)

    async def lock(self, target: str, rem_id: int) -> None:
        self.conn.execute(
            "INSERT INTO locks (target, remediation, at) VALUES (?, ?, ?)",
            (target, rem_id, self.now),
        )

    async def unlock(self, rem_id: int) -> None:
        self.conn.execute("DELETE FROM locks WHERE remediation = ?", (rem_id,))

    async def open_breaker(self, name: str, reason: str) -> None:
        self.conn.execute(
            "INSERT INTO breakers (name, opened_at, reason) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (name, self.now, reason),
        )

    async def close_breaker(self, name: str) -> None:
        self.conn.execute("DELETE FROM breakers WHERE name = ?", (name,))
        self.conn.execute(
            "INSERT INTO breaker_resets (name, at) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET at = excluded.at",
            (name, self.now),
        )

    async def open_breakers(self, names: Sequence[str] | None = None) -> list[str]:
        if names is None:
            rows = self.conn.execute("SELECT name FROM breakers ORDER BY name")
        else:
            marks = ", ".join("?" * len(names))
            rows = self.conn.execute(
                f"SELECT name FROM breakers WHERE name IN ({marks}) ORDER BY name", list(names)
            )
        return [row[0] for row in rows.fetchall()]

    async def pause(self, value: str) -> None:
        self.conn.execute(
            "INSERT INTO control (key, value) VALUES ('paused', ?) ON CONFLICT DO NOTHING",
            (value,),
        )

    async def unpause(self) -> None:
        self.conn.execute("DELETE FROM control WHERE key = 'paused'")


class SQLiteStore(flows.Writes):
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

    async def _write(
        self, job: Callable[[_Tx], Coroutine[Any, Any, T]], *, moment: datetime | None = None
    ) -> T:
        """Run a flow in the next group commit at the time it was asked for (or ``moment``).

        The audit events it appended go to the listeners once committed.
        """
        at = moment or self.clock.now()
        ts = timestamp(at)
        events: list[AuditEvent] = []
        chain = self._writer.chain

        def run(conn: sqlite3.Connection) -> T:
            events.clear()  # run again when another job of its batch failed: starts over
            return flows.drive(job(_Tx(conn, ts, at, chain, events)))

        result = await self._writer.run(run)
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

    async def halted(self, rem: Remediation, *, before: str) -> Decision:
        """Whether a resolve or a pause stops what would start next (a retry), reading only."""
        return await self._read(
            lambda conn: halt(_Facts(conn, False), occurrence=flows.watched(rem), before=before)
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

        async def job(tx: _Tx) -> Due:
            running = _select(tx.conn, "state = ? ORDER BY id", (RUNNING,))
            started = await tx.with_followup(flows.FOLLOWUP_RUNNING)
            interrupted = await flows.interrupt(
                tx, running, started, "the process stopped while it ran"
            )
            # Nothing runs before recovery ends: a lock left behind would hold its
            # target, and a max_concurrent slot, for ever.
            tx.conn.execute("DELETE FROM locks")
            queued = _select(tx.conn, "state = ? AND held_since IS NULL ORDER BY id", (QUEUED,))
            followups = await tx.with_followup(flows.FOLLOWUP_PENDING)  # the interrupted too
            return Due(queued, followups, interrupted.finished)

        return await self._write(job)

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
                (flows.FOLLOWUP_PENDING,),
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
                (flows.DRY_RUN_BREAKER_PREFIX + "%",),
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
                (QUEUED, flows.FOLLOWUP_HELD),
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

    async def newest(self, limit: int) -> list[Remediation]:
        """The ``limit`` newest remediation records, newest first."""
        return await self._read(lambda conn: _select(conn, "1 ORDER BY id DESC LIMIT ?", (limit,)))

    async def outcomes(self, since: str) -> list[tuple[str, str, str | None, int]]:
        """Remediations created at or after ``since``, counted: (rule, state, reason, count)."""
        sql = (
            "SELECT rule, state, reason, COUNT(*) FROM remediations WHERE created_at >= ?"
            " GROUP BY rule, state, reason ORDER BY rule, state, reason"
        )
        return await self._read(lambda conn: [tuple(row) for row in conn.execute(sql, (since,))])

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

        async def job(tx: _Tx) -> int:
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

        async def executions(tx: _Tx) -> None:
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

        async def occurrences(tx: _Tx, after: str) -> tuple[int, str | None]:
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
    # Filters name a rule or a target (``rule = ?``), never their absence: the events
    # without one (every alert's ``received``) are left out of those indexes.
    conn.execute("DROP INDEX IF EXISTS audit_rule")
    conn.execute("DROP INDEX IF EXISTS audit_target")


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


def _event(data: str, prev_hash: str, hash_: str) -> AuditEvent:
    try:
        return AuditEvent.from_data(data, prev_hash, hash_)
    except (ValueError, KeyError, TypeError):
        raise StoreCorrupt(
            f"an audit event (hash {hash_[:12]}) is unreadable; run remedy audit verify"
        ) from None


def _stored_rows(conn: sqlite3.Connection) -> Iterator[StoredRow]:
    cursor = conn.execute(f"SELECT {VERIFY_COLUMNS} FROM audit ORDER BY id")
    cursor.arraysize = 1000
    while rows := cursor.fetchmany():
        yield from rows


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

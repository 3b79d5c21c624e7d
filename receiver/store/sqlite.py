"""SQLite storage: WAL, synchronous=FULL, one writer thread that commits in groups.

Concurrent requests hand their unit of work to the writer; it runs every job
waiting at that moment inside one transaction (each in its own savepoint, so
one failing job fails alone) and commits once. One fsync then covers many
requests, and every request's future resolves only after that commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from receiver.audit import (
    GENESIS_HASH,
    AuditEvent,
    AuditRecord,
    StoredRow,
    VerifyResult,
    canonical_json,
    chain_hash,
    event_body,
    indexed_values,
    verify_chain,
)
from receiver.clock import Clock, SystemClock, timestamp
from receiver.store.base import (
    AuditQuery,
    IncomingAlert,
    IngestResult,
    NotFound,
    Remediation,
    StateConflict,
    StoreCorrupt,
    StoreUnavailable,
)

T = TypeVar("T")
log = structlog.get_logger("remedy.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    status TEXT NOT NULL,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    ends_at TEXT,
    received_at TEXT NOT NULL,
    UNIQUE (source, fingerprint, starts_at, status)
);
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
    UNIQUE (occurrence, rule)
);
CREATE INDEX IF NOT EXISTS remediations_state ON remediations (state, id);
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
"""

_STOP = object()
Job = Callable[[sqlite3.Connection], Any]


class _Chain:
    """The writer's view of the audit chain's end; only the writer thread touches it."""

    def __init__(self, last_id: int, last_hash: str) -> None:
        self.last_id = last_id
        self.last_hash = last_hash

    def append(
        self, conn: sqlite3.Connection, ts: str, records: Sequence[AuditRecord]
    ) -> list[AuditEvent]:
        events = []
        rows = []
        for record in records:
            event_id = self.last_id + 1
            body = event_body(event_id, ts, record)
            data = canonical_json(body)
            digest = chain_hash(self.last_hash, data)
            cols = indexed_values(body)
            rows.append(
                (
                    event_id,
                    cols["ts"],
                    cols["event"],
                    cols["rule"],
                    cols["target"],
                    cols["reason"],
                    cols["fingerprint"],
                    data,
                    self.last_hash,
                    digest,
                )
            )
            events.append(AuditEvent(event_id, ts, record, self.last_hash, digest))
            self.last_id, self.last_hash = event_id, digest
        conn.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return events

    def save_head(self, conn: sqlite3.Connection) -> None:
        """Record the chain's end, so a cut tail is caught; once per transaction."""
        conn.execute(
            "INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, ?, ?) "
            "ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, "
            "last_hash = excluded.last_hash",
            (self.last_id, self.last_hash),
        )


class SQLiteStore:
    """The embedded default store (``sqlite:///path``)."""

    backend = "sqlite"

    def __init__(
        self,
        path: str | Path,
        clock: Clock | None = None,
        busy_timeout: float = 5.0,
        on_commit: Callable[[float, int], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.clock: Clock = clock or SystemClock()
        self._busy_timeout = busy_timeout
        self._on_commit = on_commit
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="remedy-sqlite-read")
        self._local = threading.local()
        self._chain = _Chain(0, GENESIS_HASH)
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
        """Create the schema and start the writer thread."""
        if self.path.parent and not self.path.parent.exists():
            raise StoreUnavailable(f"directory {self.path.parent} does not exist")
        try:
            conn = self._connect()
            conn.executescript(SCHEMA)
            last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            head = conn.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from None
        if last:
            # The chain goes on from the newest stored event, so writes never collide
            # with it; a head that disagrees is tampering that verify reports.
            self._chain = _Chain(last[0], last[1])
            if head is None or tuple(head) != tuple(last):
                log.error("audit.head_mismatch", last_id=last[0], head_id=head[0] if head else None)
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="remedy-sqlite-writer", daemon=True
        )
        self._writer.start()

    async def close(self) -> None:
        """Finish every queued write, then stop the writer."""
        if self._writer is not None:
            self._jobs.put(_STOP)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        self._readers.shutdown(wait=True)

    # -- the writer ---------------------------------------------------------

    def _submit(self, job: Job) -> asyncio.Future[Any]:
        if self._writer is None or not self._writer.is_alive():
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((job, future, loop))
        return future

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is _STOP:
                break
            batch = [first]
            while True:
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._run_batch(conn, batch)
        conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        """Run one group commit; whatever goes wrong, every job gets an answer."""
        started = time.perf_counter()
        saved = (self._chain.last_id, self._chain.last_hash)
        try:
            results = self._jobs_in_transaction(conn, batch, saved)
        except Exception as exc:  # the thread must outlive any failure, or ingest hangs
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            self._chain.last_id, self._chain.last_hash = saved
            log.error("store.batch_failed", error_type=type(exc).__name__, error=str(exc))
            results = [(None, StoreUnavailable(f"storage unavailable: {exc}"))] * len(batch)
        if self._on_commit is not None:
            with contextlib.suppress(Exception):
                self._on_commit(time.perf_counter() - started, len(batch))
        self._settle(batch, results)

    def _jobs_in_transaction(
        self, conn: sqlite3.Connection, batch: list[Any], saved: tuple[int, str]
    ) -> list[tuple[Any, BaseException | None]]:
        results: list[tuple[Any, BaseException | None]] = []
        conn.execute("BEGIN IMMEDIATE")
        for job, _future, _loop in batch:
            mark = (self._chain.last_id, self._chain.last_hash)
            conn.execute("SAVEPOINT job")
            try:
                results.append((job(conn), None))
                conn.execute("RELEASE job")
            except Exception as exc:  # one job's failure is that job's answer alone
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                self._chain.last_id, self._chain.last_hash = mark
                if isinstance(exc, sqlite3.OperationalError):
                    exc = StoreUnavailable(f"storage unavailable: {exc}")
                results.append((None, exc))
        if (self._chain.last_id, self._chain.last_hash) != saved:
            self._chain.save_head(conn)
        conn.execute("COMMIT")
        return results

    @staticmethod
    def _settle(batch: list[Any], results: list[tuple[Any, BaseException | None]]) -> None:
        """Hand every result back with one wake-up per event loop, not one per job."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for (_job, future, loop), (value, error) in zip(batch, results, strict=True):
            by_loop.setdefault(loop, []).append((future, value, error))
        for loop, settled in by_loop.items():
            loop.call_soon_threadsafe(_resolve_all, settled)

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await self._submit(job)
        return result

    def _publish(self, events: list[AuditEvent]) -> list[AuditEvent]:
        for listener in self.listeners:
            listener(events)
        return events

    # -- reads --------------------------------------------------------------

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
        """Raise :class:`StoreUnavailable` unless the database answers and can be written."""
        if self._writer is None or not self._writer.is_alive():
            raise StoreUnavailable("the store's writer is not running")
        await self._read(lambda conn: conn.execute("SELECT 1").fetchone())

    async def ingest(self, alerts: Sequence[IncomingAlert]) -> IngestResult:
        """Store alerts, their remediations and audit events in one transaction."""
        now = timestamp(self.clock.now())

        def job(conn: sqlite3.Connection) -> tuple[IngestResult, list[AuditEvent]]:
            records: list[AuditRecord] = []
            queued: list[Remediation] = []
            stored = duplicates = skipped = 0
            for incoming in alerts:
                alert = incoming.alert
                summary = alert.summary()
                cur = conn.execute(
                    "INSERT INTO alerts (source, fingerprint, starts_at, status, name, labels,"
                    " annotations, ends_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (
                        alert.source,
                        alert.fingerprint,
                        alert.starts_at.isoformat(),
                        alert.status,
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
                occurrence = "|".join(alert.occurrence)
                for plan in incoming.plans:
                    state = "skipped" if plan.skip_reason else "queued"
                    steps, on_failure = list(plan.steps), list(plan.on_failure)
                    cur = conn.execute(
                        "INSERT INTO remediations (occurrence, rule, alert_id, target, state,"
                        " reason, dry_run, plan, created_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (
                            occurrence,
                            plan.rule,
                            alert_id,
                            plan.target,
                            state,
                            plan.skip_reason,
                            int(plan.dry_run),
                            json.dumps(
                                {
                                    "alert": summary,
                                    "steps": list(plan.steps),
                                    "on_failure": list(plan.on_failure),
                                }
                            ),
                            now,
                            now,
                        ),
                    )
                    if cur.rowcount == 0:
                        continue
                    rem_id = cur.lastrowid
                    assert rem_id is not None
                    records.append(
                        AuditRecord(
                            "matched",
                            summary,
                            rule=plan.rule,
                            target=plan.target,
                            params=[_step_view(s) for s in plan.steps],
                            remediation=rem_id,
                        )
                    )
                    if plan.skip_reason:
                        skipped += 1
                        records.append(
                            AuditRecord(
                                "skipped",
                                summary,
                                rule=plan.rule,
                                target=plan.target,
                                reason=plan.skip_reason,
                                error=plan.error,
                                remediation=rem_id,
                            )
                        )
                    else:
                        queued.append(
                            Remediation(
                                rem_id,
                                plan.rule,
                                plan.target,
                                state,
                                None,
                                summary,
                                steps,
                                on_failure,
                                plan.dry_run,
                                now,
                                now,
                            )
                        )
            events = self._chain.append(conn, now, records)
            return IngestResult(stored, duplicates, queued, skipped), events

        result, events = await self._write(job)
        self._publish(events)
        return result

    async def record(
        self,
        records: Sequence[AuditRecord],
        remediation: int | None = None,
        state: str | None = None,
        reason: str | None = None,
        from_state: str | None = None,
    ) -> list[AuditEvent]:
        """Append audit events and, in the same transaction, move a remediation's state.

        With ``from_state`` the move happens only from that state, else
        :class:`StateConflict` and nothing is written: that is how a worker claims work.
        """
        now = timestamp(self.clock.now())

        def job(conn: sqlite3.Connection) -> list[AuditEvent]:
            if remediation is not None and state is not None:
                sql = "UPDATE remediations SET state = ?, reason = ?, updated_at = ? WHERE id = ?"
                args: tuple[object, ...] = (state, reason, now, remediation)
                if from_state is not None:
                    sql += " AND state = ?"
                    args = (*args, from_state)
                if conn.execute(sql, args).rowcount == 0:
                    raise StateConflict(f"remediation {remediation} is not {from_state}")
            return self._chain.append(conn, now, records)

        return self._publish(await self._write(job))

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
        """Check the whole chain from the first event to the recorded head."""

        def read(conn: sqlite3.Connection) -> VerifyResult:
            conn.execute("BEGIN")
            try:
                head_row = conn.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
                return verify_chain(_stored_rows(conn), tuple(head_row) if head_row else None)
            finally:
                conn.execute("COMMIT")

        return await self._read(read)


def _event(data: str, prev_hash: str, hash_: str) -> AuditEvent:
    try:
        return AuditEvent.from_data(data, prev_hash, hash_)
    except (ValueError, KeyError, TypeError):
        raise StoreCorrupt(
            f"an audit event (hash {hash_[:12]}) is unreadable; run remedy audit verify"
        ) from None


_REMEDIATION_COLUMNS = "id, rule, target, state, reason, dry_run, plan, created_at, updated_at"


def _remediation(row: tuple[Any, ...]) -> Remediation:
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
    )


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


def _resolve_all(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in settled:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

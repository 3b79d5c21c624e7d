"""One writer thread that commits in groups, and the audit chain it extends.

Concurrent callers hand their unit of work to the writer; it runs every job
waiting at that moment inside one transaction (each in its own savepoint, so
one failing job fails alone) and commits once. One fsync then covers many
requests, and every caller's future resolves only after that commit. Only
this thread appends to the audit chain, which keeps it linear.

A write that fails for the storage's sake (a full disk, an I/O error) puts
the writer in a failed state until a write succeeds again; readiness reads
it, so a store that cannot write is not ready. The WAL is what makes a full
disk stick: it keeps its largest size (about 4 MB at SQLite's default
checkpoint of 1,000 pages) and needs that much again before a checkpoint
lets it start over, so the little space that returns is spent growing the
database beside it and writes fail again after a few requests. So on a
failure the writer

* checkpoints the WAL with TRUNCATE (copied into the database, its file cut
  to nothing), again before later batches at most every
  :data:`CHECKPOINT_INTERVAL` until that succeeds (on a full disk the copy
  can fail for want of room to grow the database);
* keeps the WAL short — checkpointed every :data:`TIGHT_WAL_PAGES` pages and
  cut back after each — until the file system has :data:`ROOMY_BYTES` free;
* tries a small probe write every :data:`RECOVERY_INTERVAL` when no job
  comes, so the store turns ready within seconds of space returning even
  while no traffic reaches it. It counts as writable again once a write
  succeeds with :data:`SPARE_BYTES` free.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import structlog

from receiver.audit import (
    GENESIS_HASH,
    Alerts,
    AuditEvent,
    AuditRecord,
    chain_hash,
    event_data,
)
from receiver.store.base import StoreUnavailable

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
log = structlog.get_logger("remedy.store")

_STOP = object()

TIGHT_WAL_PAGES = 32
"""WAL pages between checkpoints while space is short (SQLite's default is 1,000)."""

SPARE_BYTES = 256 * 1024
"""Free bytes a failed store needs, besides a successful write, to count as writable again."""

ROOMY_BYTES = 64 * 1024 * 1024
"""Free bytes on the store's file system at which the WAL goes back to SQLite's defaults."""

CHECKPOINT_INTERVAL = 0.25
"""Seconds between two attempts to truncate the WAL after a failed write."""

RECOVERY_INTERVAL = 1.0
"""Seconds without jobs after which a failed writer tries again on its own."""


class AuditChain:
    """The end of the audit chain as the writer thread knows it; only that thread touches it."""

    def __init__(self, last_id: int = 0, last_hash: str = GENESIS_HASH) -> None:
        self.last_id = last_id
        self.last_hash = last_hash
        self.alerts = Alerts()
        """The alerts of the current transaction, each encoded once (:meth:`done`)."""

    @property
    def mark(self) -> tuple[int, str]:
        """Where the chain ends now, to roll back to."""
        return self.last_id, self.last_hash

    def reset(self, mark: tuple[int, str]) -> None:
        """Forget events appended after ``mark`` (their transaction rolled back)."""
        self.last_id, self.last_hash = mark

    def done(self) -> None:
        """The transaction ended: let go of its alerts."""
        self.alerts = Alerts()

    def link(
        self, ts: str, records: Sequence[AuditRecord]
    ) -> tuple[list[AuditEvent], list[tuple[Any, ...]]]:
        """Chain ``records`` at time ``ts``: the events and the audit table's rows to insert.

        The chain's end moves past them; every store inserts the rows in its
        own transaction (and resets the chain if that transaction fails).
        """
        events = []
        rows: list[tuple[Any, ...]] = []
        alerts = self.alerts
        for record in records:
            event_id = self.last_id + 1
            data, fingerprint = event_data(event_id, ts, record, alerts)
            digest = chain_hash(self.last_hash, data)
            rows.append(
                (
                    event_id,
                    ts,
                    record.event,
                    record.rule,
                    record.target,
                    record.reason,
                    fingerprint,
                    data,
                    self.last_hash,
                    digest,
                )
            )
            events.append(AuditEvent(event_id, ts, record, self.last_hash, digest))
            self.last_id, self.last_hash = event_id, digest
        return events, rows

    def append(
        self, conn: sqlite3.Connection, ts: str, records: Sequence[AuditRecord]
    ) -> list[AuditEvent]:
        """Insert chained events for ``records`` at time ``ts``."""
        events, rows = self.link(ts, records)
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


class GroupWriter:
    """Runs write jobs on one thread, many per transaction."""

    def __init__(
        self,
        chain: AuditChain,
        on_commit: Callable[[float, int], None] | None = None,
        probe: Job | None = None,
        directory: Path | None = None,
    ) -> None:
        self.chain = chain
        self._on_commit = on_commit
        self._probe = probe
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._checkpointed_at = float("-inf")
        self._wal_pending = False  # a write failed and the WAL was not truncated since
        self._directory = directory  # where free space is measured; None: never loosen
        self._tight = False  # the WAL is kept short until space returns
        self._space_checked_at = float("-inf")
        self.failure: str | None = None
        """Why the last write failed; ``None`` once one succeeds (set by the writer thread)."""

    @property
    def alive(self) -> bool:
        """Whether the thread runs and takes jobs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, conn: sqlite3.Connection) -> None:
        """Start the thread; it owns ``conn`` from now on."""
        self._thread = threading.Thread(
            target=self._loop, args=(conn,), name="remedy-sqlite-writer", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Finish every queued job, then stop."""
        if self._thread is not None:
            self._jobs.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job`` in the next group commit; its result once committed."""
        if not self.alive:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((job, future, loop))
        return await future

    def _loop(self, conn: sqlite3.Connection) -> None:
        stopping = False
        while not stopping:
            try:
                recovering = self.failure is not None or self._wal_pending
                first = self._jobs.get(timeout=RECOVERY_INTERVAL if recovering else None)
            except queue.Empty:
                self._recover(conn)
                continue
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
        if self._wal_pending:
            self._checkpoint_wal(conn)
        if self._tight:
            self._loosen_if_roomy(conn)
        started = time.perf_counter()
        saved = self.chain.mark
        try:
            results = self._in_transaction(conn, batch, saved)
        except Exception as exc:  # the thread must outlive any failure, or callers hang
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            self.chain.reset(saved)
            self.chain.done()
            log.error("store.batch_failed", error_type=type(exc).__name__, error=str(exc))
            results = [(None, StoreUnavailable(f"storage unavailable: {exc}"))] * len(batch)
            self._failed(conn, str(exc))
        else:
            self.chain.done()
            broken = [error for _, error in results if isinstance(error, StoreUnavailable)]
            if broken:
                self._failed(conn, str(broken[0]).removeprefix("storage unavailable: "))
            else:
                self._succeeded()
        if self._on_commit is not None:
            with contextlib.suppress(Exception):
                self._on_commit(time.perf_counter() - started, len(batch))
        self._settle(batch, results)

    def _failed(self, conn: sqlite3.Connection, error: str) -> None:
        """A write failed: not ready until one succeeds; give the WAL's space back."""
        if self.failure is None:
            log.error("store.unwritable", error=error)
        self.failure = error
        self._wal_pending = True
        self._checkpoint_wal(conn)
        if not self._tight:
            with contextlib.suppress(sqlite3.Error):
                conn.execute(f"PRAGMA wal_autocheckpoint = {TIGHT_WAL_PAGES}")
                conn.execute("PRAGMA journal_size_limit = 0")
                self._tight = True

    def _succeeded(self) -> None:
        """A write went through: the store is back if the file system has room again.

        On a full disk a small write can still succeed, in the room a failed
        larger one left at the end of the WAL's file: that is no recovery.
        """
        if self.failure is not None and self._roomy(SPARE_BYTES):
            log.warning("store.writable", after=self.failure)
            self.failure = None

    def _roomy(self, needed: int) -> bool:
        """Whether the store's file system has ``needed`` bytes free (unknown: yes)."""
        if self._directory is None:
            return True
        try:
            fs = os.statvfs(self._directory)
        except OSError:
            return True
        return fs.f_bavail * fs.f_frsize >= needed

    def _checkpoint_wal(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL into the database and truncate it, at most once per interval."""
        now = time.monotonic()
        if now - self._checkpointed_at < CHECKPOINT_INTERVAL:
            return
        self._checkpointed_at = now
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:  # no room to grow the database yet: next time
            return
        if not busy:
            self._wal_pending = False

    def _loosen_if_roomy(self, conn: sqlite3.Connection) -> None:
        """Back to SQLite's WAL defaults once the file system has room (looked at each second)."""
        now = time.monotonic()
        if self.failure is not None or now - self._space_checked_at < RECOVERY_INTERVAL:
            return
        self._space_checked_at = now
        if self._roomy(ROOMY_BYTES):
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_autocheckpoint = 1000")
                conn.execute("PRAGMA journal_size_limit = -1")
                self._tight = False

    def _recover(self, conn: sqlite3.Connection) -> None:
        """No job came for a while: truncate the WAL, and see whether a small write goes through."""
        if self._wal_pending:
            self._checkpoint_wal(conn)
        if self.failure is None:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            if self._probe is not None:
                self._probe(conn)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            self.failure = str(exc)
            return
        self._succeeded()

    def _in_transaction(
        self, conn: sqlite3.Connection, batch: list[Any], saved: tuple[int, str]
    ) -> list[tuple[Any, BaseException | None]]:
        """Run the batch's jobs in one transaction and commit it.

        Jobs rarely fail, so they first run back to back; when one does, the
        batch is rolled back and run again with a savepoint per job, so that
        the failing job fails alone (a job only writes through ``conn``, so
        running it again after a rollback does the same). Two statements fewer
        per job on the common path.
        """
        conn.execute("BEGIN IMMEDIATE")
        try:
            results: list[tuple[Any, BaseException | None]] = [
                (job(conn), None) for job, _future, _loop in batch
            ]
        except Exception:
            conn.execute("ROLLBACK")
            self.chain.reset(saved)
            conn.execute("BEGIN IMMEDIATE")
            results = self._each_alone(conn, batch)
        if self.chain.mark != saved:
            self.chain.save_head(conn)
        conn.execute("COMMIT")
        return results

    def _each_alone(
        self, conn: sqlite3.Connection, batch: list[Any]
    ) -> list[tuple[Any, BaseException | None]]:
        results: list[tuple[Any, BaseException | None]] = []
        for job, _future, _loop in batch:
            mark = self.chain.mark
            conn.execute("SAVEPOINT job")
            try:
                results.append((job(conn), None))
                conn.execute("RELEASE job")
            except Exception as exc:  # one job's failure is that job's answer alone
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                self.chain.reset(mark)
                if isinstance(exc, sqlite3.OperationalError):
                    exc = StoreUnavailable(f"storage unavailable: {exc}")
                results.append((None, exc))
        return results

    @staticmethod
    def _settle(batch: list[Any], results: list[tuple[Any, BaseException | None]]) -> None:
        """Hand every result back with one wake-up per event loop, not one per job."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for (_job, future, loop), (value, error) in zip(batch, results, strict=True):
            by_loop.setdefault(loop, []).append((future, value, error))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                loop.call_soon_threadsafe(_resolve_all, settled)


def _resolve_all(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in settled:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

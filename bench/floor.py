"""The durable floor: about the least an ingest can do that makes each alert durable
and audited before its 200.

A yardstick for ``bench/ingest.py``, not a receiver: its figures bound from
above what remedy, which does all of this and much more, can reach on the
same machine. Before answering a webhook it:

* decodes the body (msgspec, the fastest decoder remedy already depends on);
* stores one row per alert, deduplicated by (source, fingerprint, start, status);
* appends one hash-chained ``received`` event per new alert (JSON with sorted
  keys, SHA-256 over the previous hash and it);
* with ``match``, as when every alert matches a dry-run rule, also stores a
  remediation row per new alert, decided at once, with its ``matched`` and
  ``dry_run`` events;
* commits in groups, the answer only after the commit: on SQLite one writer
  thread, fsynced (WAL, ``synchronous=FULL``); on PostgreSQL one connection,
  each group's rows in one statement per table (five round trips a group).

Nothing else: no validation, rules, guards, redaction, timestamps, metrics,
logs or middlewares; only the keys indexed; a fresh database each run (the
chain starts at the genesis hash).

Usage: ``python bench/floor.py PORT (DATABASE-FILE | postgresql://...) [match]``
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import queue
import sqlite3
import sys
import threading
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id {key}, source TEXT NOT NULL, fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL, status TEXT NOT NULL, labels TEXT NOT NULL,
    annotations TEXT NOT NULL, UNIQUE (source, fingerprint, starts_at, status)
);
CREATE TABLE IF NOT EXISTS remediations (
    id {key}, alert_id BIGINT NOT NULL, rule TEXT NOT NULL, state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id BIGINT PRIMARY KEY, data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
"""

Alert = tuple[str, str, str, str, str, str]
"""source, fingerprint, starts_at, status, and the labels and annotations as JSON."""
Job = tuple[list[Alert], asyncio.Future[int], asyncio.AbstractEventLoop]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_sorted = msgspec.json.Encoder(order="sorted").encode


class Chain:
    """The audit chain's end, extended one event at a time."""

    def __init__(self, match: bool) -> None:
        self.events = ("received", "matched", "dry_run") if match else ("received",)
        self.last_id = 0
        self.last_hash = "0" * 64

    def link(self, alert: Alert) -> list[tuple[int, str, str, str]]:
        """The audit rows of a new alert's events."""
        rows = []
        for event in self.events:
            self.last_id += 1
            data = _sorted({"id": self.last_id, "event": event, "alert": alert})
            digest = hashlib.sha256(self.last_hash.encode() + data).hexdigest()
            rows.append((self.last_id, data.decode(), self.last_hash, digest))
            self.last_hash = digest
        return rows


class SQLiteWriter:
    """One thread, many requests per transaction."""

    def __init__(self, path: str, match: bool) -> None:
        self.match = match
        self.chain = Chain(match)
        self.jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA.format(key="INTEGER PRIMARY KEY"))
        threading.Thread(target=self._loop, args=(conn,), daemon=True).start()

    async def write(self, alerts: list[Alert]) -> int:
        """Store ``alerts`` in the next group commit; how many were new, once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self.jobs.put((alerts, future, loop))
        return await future

    def _loop(self, conn: sqlite3.Connection) -> None:
        while True:
            batch = [self.jobs.get()]
            while not self.jobs.empty():
                batch.append(self.jobs.get_nowait())
            mark = self.chain.last_id, self.chain.last_hash
            try:
                stored: list[int | BaseException] = list(self._commit(conn, batch))
            except Exception as exc:  # every caller gets an answer, and the thread goes on
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                self.chain.last_id, self.chain.last_hash = mark
                stored = [exc] * len(batch)
            batch[0][2].call_soon_threadsafe(_settle, [job[1] for job in batch], stored)

    def _commit(self, conn: sqlite3.Connection, batch: list[Job]) -> list[int]:
        conn.execute("BEGIN IMMEDIATE")
        stored = []
        events = []
        for alerts, _, _ in batch:
            new = 0
            for alert in alerts:
                cursor = conn.execute(
                    "INSERT INTO alerts VALUES (NULL, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    alert,
                )
                if cursor.rowcount:
                    new += 1
                    if self.match:
                        conn.execute(
                            "INSERT INTO remediations VALUES (NULL, ?, 'bench', 'dry_run')",
                            (cursor.lastrowid,),
                        )
                    events += self.chain.link(alert)
            stored.append(new)
        conn.executemany("INSERT INTO audit VALUES (?, ?, ?, ?)", events)
        conn.execute("COMMIT")
        return stored


def _settle(futures: list[asyncio.Future[int]], stored: list[int | BaseException]) -> None:
    """Answer every caller of a group commit (one wake-up of the loop for all)."""
    for future, new in zip(futures, stored, strict=True):
        if future.done():  # its request went away
            continue
        if isinstance(new, BaseException):
            future.set_exception(new)
        else:
            future.set_result(new)


INSERT_ALERTS = """
INSERT INTO alerts (source, fingerprint, starts_at, status, labels, annotations)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
ON CONFLICT DO NOTHING RETURNING id, source, fingerprint, starts_at, status
"""


class PostgresWriter:
    """One connection, many requests per transaction, one statement per table."""

    def __init__(self, url: str, match: bool) -> None:
        self.url = url
        self.match = match
        self.chain = Chain(match)
        self.jobs: asyncio.Queue[Job] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None  # held: the loop keeps tasks weakly

    async def start(self, _app: web.Application) -> None:
        conn = await asyncpg.connect(self.url)
        await conn.execute(SCHEMA.format(key="BIGSERIAL PRIMARY KEY"))
        self.task = asyncio.create_task(self._loop(conn))

    async def write(self, alerts: list[Alert]) -> int:
        """Store ``alerts`` in the next group commit; how many were new, once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self.jobs.put_nowait((alerts, future, loop))
        return await future

    async def _loop(self, conn: Any) -> None:
        while True:
            batch = [await self.jobs.get()]
            while not self.jobs.empty():
                batch.append(self.jobs.get_nowait())
            mark = self.chain.last_id, self.chain.last_hash
            try:
                stored: list[int | BaseException] = list(await self._commit(conn, batch))
            except Exception as exc:  # every caller gets an answer, and the task goes on
                self.chain.last_id, self.chain.last_hash = mark
                stored = [exc] * len(batch)
            _settle([job[1] for job in batch], stored)

    async def _commit(self, conn: Any, batch: list[Job]) -> list[int]:
        alerts = [alert for job in batch for alert in job[0]]
        stored = []
        async with conn.transaction():
            inserted = await conn.fetch(INSERT_ALERTS, *zip(*alerts, strict=True)) if alerts else []
            ids = {tuple(row[1:]): row[0] for row in inserted}
            events = []
            new_ids = []
            for job in batch:
                new = 0
                for alert in job[0]:
                    alert_id = ids.pop(alert[:4], None)  # the first to send it stored it
                    if alert_id is not None:
                        new += 1
                        new_ids.append(alert_id)
                        events += self.chain.link(alert)
                stored.append(new)
            if self.match and new_ids:
                await conn.execute(
                    "INSERT INTO remediations (alert_id, rule, state)"
                    " SELECT unnest($1::bigint[]), 'bench', 'dry_run'",
                    new_ids,
                )
            if events:
                await conn.execute(
                    "INSERT INTO audit SELECT * FROM"
                    " unnest($1::bigint[], $2::text[], $3::text[], $4::text[])",
                    *zip(*events, strict=True),
                )
        return stored


async def handle(request: web.Request) -> web.Response:
    body = _decode(await request.read())
    alerts = [
        (
            "alertmanager",
            alert["fingerprint"],
            alert["startsAt"],
            alert["status"],
            _encode(alert["labels"]).decode(),
            _encode(alert["annotations"]).decode(),
        )
        for alert in body["alerts"]
    ]
    stored = await request.app[WRITER].write(alerts)
    return web.json_response({"status": "ok", "stored": stored})


WRITER: web.AppKey[SQLiteWriter | PostgresWriter] = web.AppKey("writer")

if __name__ == "__main__":
    port, storage, *mode = sys.argv[1:]
    match = mode == ["match"]
    app = web.Application(client_max_size=16 * 1024 * 1024)
    if storage.startswith("postgresql://"):
        writer = PostgresWriter(storage, match)
        app.on_startup.append(writer.start)
        app[WRITER] = writer
    else:
        app[WRITER] = SQLiteWriter(storage, match)
    app.router.add_post("/webhook/alertmanager", handle)
    web.run_app(app, host="127.0.0.1", port=int(port), print=None, access_log=None)

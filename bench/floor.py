"""The durable floor: the least any ingest that keeps SPEC §7's promises must do.

A yardstick for ``bench/ingest.py``, not a receiver. Like the bare handler it
parses the body with the stdlib and answers 200, and before answering it
makes each alert durable as remedy must:

* one row per alert, deduplicated by (source, fingerprint, start, status);
* one hash-chained ``received`` event per new alert (canonical JSON, SHA-256);
* with ``match``, as when every alert matches a dry-run rule: a remediation
  row per new alert, decided at once, and its ``matched`` and ``dry_run`` events;
* a group commit, the answer only after it: on SQLite one writer thread,
  fsynced (WAL, ``synchronous=FULL``); on PostgreSQL one connection, each
  batch's rows in one statement per table.

Nothing else: no validation beyond what the rows need, no rules, no guards,
no redaction, no metrics, no logs, no middlewares, only the primary keys and
the dedup key indexed. Whatever remedy adds on top is measured against this.

Usage: ``python bench/floor.py PORT (DATABASE-FILE | postgresql://...) [match]``
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import sqlite3
import sys
import threading
from typing import Any

import asyncpg
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

Alert = tuple[str, str, str, str, str, str]  # source, fingerprint, starts_at, status, labels, ...
Job = tuple[list[Alert], asyncio.Future[int], asyncio.AbstractEventLoop]


class Chain:
    """The audit chain's end, extended one event at a time."""

    def __init__(self, events: tuple[str, ...]) -> None:
        self.events = events
        self.last_id = 0
        self.last_hash = "0" * 64

    def link(self, alert: Alert) -> list[tuple[int, str, str, str]]:
        """The audit rows of a new alert's events."""
        rows = []
        for event in self.events:
            self.last_id += 1
            body = {"id": self.last_id, "event": event, "alert": alert}
            data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            digest = hashlib.sha256((self.last_hash + data).encode()).hexdigest()
            rows.append((self.last_id, data, self.last_hash, digest))
            self.last_hash = digest
        return rows


class SQLiteWriter:
    """One thread, many requests per transaction."""

    def __init__(self, path: str, match: bool) -> None:
        self.match = match
        self.chain = Chain(("received", "matched", "dry_run") if match else ("received",))
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
            settled = [(future, new) for (_, future, _), new in zip(batch, stored, strict=True)]
            batch[0][2].call_soon_threadsafe(_resolve, settled)  # one wake-up (one loop here)


def _resolve(settled: list[tuple[asyncio.Future[int], int]]) -> None:
    for future, new in settled:
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
        self.chain = Chain(("received", "matched", "dry_run") if match else ("received",))
        self.jobs: asyncio.Queue[Job] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self, _app: web.Application) -> None:
        conn = await asyncpg.connect(self.url)
        await conn.execute(SCHEMA.format(key="BIGSERIAL PRIMARY KEY"))
        self.task = asyncio.create_task(self._loop(conn))

    async def write(self, alerts: list[Alert]) -> int:
        """Store ``alerts`` in the next group commit; how many were new, once committed."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.jobs.put_nowait((alerts, future, asyncio.get_running_loop()))
        return await future

    async def _loop(self, conn: Any) -> None:
        while True:
            batch = [await self.jobs.get()]
            while not self.jobs.empty():
                batch.append(self.jobs.get_nowait())
            alerts = [alert for job in batch for alert in job[0]]
            async with conn.transaction():
                inserted = await conn.fetch(INSERT_ALERTS, *zip(*alerts, strict=True))
                ids = {tuple(row[1:]): row[0] for row in inserted}
                stored = []
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
            for (_, future, _), new in zip(batch, stored, strict=True):
                future.set_result(new)


async def handle(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    alerts = [
        (
            "alertmanager",
            alert["fingerprint"],
            alert["startsAt"],
            alert["status"],
            json.dumps(alert["labels"]),
            json.dumps(alert["annotations"]),
        )
        for alert in body["alerts"]
    ]
    stored = await request.app[WRITER].write(alerts)
    return web.json_response({"status": "ok", "stored": stored})


WRITER = web.AppKey("writer", SQLiteWriter | PostgresWriter)

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

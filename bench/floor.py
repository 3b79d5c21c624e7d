"""The durable floor: the least any ingest that keeps SPEC §7's promises must do.

A yardstick for ``bench/ingest.py``, not a receiver. Like the bare handler it
parses the body with the stdlib and answers 200, and before answering it
makes each alert durable as remedy must:

* one row per alert, deduplicated by (source, fingerprint, start, status);
* one hash-chained ``received`` event per new alert (canonical JSON, SHA-256);
* a group commit on one writer thread, fsynced (WAL, ``synchronous=FULL``),
  the answer only after it.

Nothing else: no validation beyond what the rows need, no rules, no guards,
no redaction, no metrics, no logs, no middlewares, only the primary keys and
the dedup key indexed. Whatever remedy adds on top is measured against this.

Usage: ``python bench/floor.py PORT DATABASE``
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

from aiohttp import web

SCHEMA = """
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL, status TEXT NOT NULL, labels TEXT NOT NULL,
    annotations TEXT NOT NULL, UNIQUE (source, fingerprint, starts_at, status)
);
CREATE TABLE audit (id INTEGER PRIMARY KEY, data TEXT NOT NULL, prev_hash TEXT, hash TEXT);
"""

Job = tuple[list[tuple[Any, ...]], asyncio.Future[int], asyncio.AbstractEventLoop]


class Writer:
    """One thread, many requests per transaction, the audit chain extended in order."""

    def __init__(self, path: str) -> None:
        self.jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA)
        threading.Thread(target=self._loop, args=(conn,), daemon=True).start()

    async def write(self, alerts: list[tuple[Any, ...]]) -> int:
        """Store ``alerts`` in the next group commit; how many were new, once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self.jobs.put((alerts, future, loop))
        return await future

    def _loop(self, conn: sqlite3.Connection) -> None:
        last_id, last_hash = 0, "0" * 64
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
                        last_id += 1
                        data = json.dumps(
                            {"id": last_id, "event": "received", "alert": alert},
                            sort_keys=True,
                            separators=(",", ":"),
                            ensure_ascii=False,
                        )
                        digest = hashlib.sha256((last_hash + data).encode()).hexdigest()
                        events.append((last_id, data, last_hash, digest))
                        last_hash = digest
                stored.append(new)
            conn.executemany("INSERT INTO audit VALUES (?, ?, ?, ?)", events)
            conn.execute("COMMIT")
            settled = [(future, new) for (_, future, _), new in zip(batch, stored, strict=True)]
            batch[0][2].call_soon_threadsafe(_resolve, settled)  # one wake-up (one loop here)


def _resolve(settled: list[tuple[asyncio.Future[int], int]]) -> None:
    for future, new in settled:
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


WRITER = web.AppKey("writer", Writer)

if __name__ == "__main__":
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[WRITER] = Writer(sys.argv[2])
    app.router.add_post("/webhook/alertmanager", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)

"""What only PostgreSQL storage has: migrations, outages of the server, the password."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from receiver.audit import AuditRecord
from receiver.config import Config
from receiver.store.base import AuditQuery, StoreUnavailable
from receiver.store.postgres import MIGRATIONS, PostgresStore
from receiver.store.url import store_for
from tests.conftest import StartRemedy, am_alert, am_payload
from tests.support.database import Database

BACKENDS = ("postgresql",)
PASSWORD = "hunter2-not-shown"


class Proxy:
    """A TCP relay in front of PostgreSQL that can cut every connection, as an outage does."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


@contextlib.asynccontextmanager
async def proxied(storage: str) -> AsyncIterator[tuple[Proxy, str]]:
    parts = urlsplit(storage)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    try:
        yield proxy, urlunsplit(parts._replace(netloc=netloc))
    finally:
        if proxy.server is not None and proxy.server.is_serving():
            await proxy.cut()


async def test_an_outage_is_a_503_and_remedy_recovers_without_a_restart(
    remedy: StartRemedy, storage: str
) -> None:
    async with proxied(storage) as (proxy, url):
        server = await remedy(storage=url)
        first = am_alert("Broken", labels={"svc": "a"})
        assert (await server.post_alerts(am_payload(first)))[0] == 200
        await proxy.cut()
        status, body = await server.post_alerts(am_payload(am_alert("Broken", labels={"svc": "b"})))
        assert status == 503, body  # Alertmanager retries a 5xx
        assert (await server.client.get("/readyz")).status == 503
        assert (await server.client.get("/healthz")).status == 200
        await proxy.start()  # the database is back, on the same address
        for _ in range(150):  # the pool reconnects on its own, within seconds
            if (await server.client.get("/readyz")).status == 200:
                break
            await asyncio.sleep(0.2)
        assert (await server.client.get("/readyz")).status == 200
        again = am_payload(am_alert("Broken", labels={"svc": "b"}))
        assert (await server.post_alerts(again))[0] == 200
        names = [e["alert"]["labels"]["svc"] for e in await server.events(outcome="received")]
        assert names == ["a", "b"]
        _, verified = await server.get_json("/api/v1/audit/verify")
        assert verified == {"ok": True, "events": 2}


async def test_replicas_starting_together_migrate_once(storage: str, database: Database) -> None:
    stores = [PostgresStore(storage) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    await asyncio.gather(*(store.close() for store in stores))
    versions = await database.fetch("SELECT version FROM schema_migrations ORDER BY version")
    assert [row[0] for row in versions] == [version for version, _ in MIGRATIONS]
    again = PostgresStore(storage)  # a later start finds nothing to do
    await again.open()
    assert (await again.verify()).ok
    await again.close()


def remedy_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        cwd=cwd,
        env={**os.environ, "REMEDY_PG_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_password_is_never_shown(
    remedy: StartRemedy, storage: str, tmp_path: Path
) -> None:
    server = await remedy(storage_password=PASSWORD)
    assert PASSWORD not in repr(server.service.config)
    assert PASSWORD not in repr(server.service.store)
    status, body = await server.get_json("/api/v1/status")
    assert (status, body["storage"]) == (200, "postgresql")
    assert PASSWORD not in str(body)
    assert (await server.post_alerts(am_payload(am_alert("Broken"))))[0] == 200
    assert all(PASSWORD not in str(event) for event in await server.events())

    (tmp_path / "remedy.yaml").write_text(
        f"storage: '{storage}'\nstorage_password: {{env: REMEDY_PG_PASSWORD}}\n"
    )
    verified = await asyncio.to_thread(
        remedy_cli, "audit", "verify", "--config", "remedy.yaml", cwd=tmp_path
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK ")
    # and when the server cannot be reached, the error names it without the password
    (tmp_path / "down.yaml").write_text(
        "storage: postgresql://remedy@127.0.0.1:1/remedy\n"
        "storage_password: {env: REMEDY_PG_PASSWORD}\n"
    )
    down = await asyncio.to_thread(remedy_cli, "audit", "--config", "down.yaml", cwd=tmp_path)
    assert down.returncode != 0
    assert "postgresql://remedy@127.0.0.1:1/remedy" in down.stderr
    assert PASSWORD not in down.stderr + down.stdout
    assert "Traceback" not in down.stderr


async def test_a_connection_the_server_ended_while_idle_costs_no_write(
    storage: str, database: Database
) -> None:
    """A restart, a failover or idle_session_timeout ends the writer's connection between writes."""
    app = "remedy-" + storage.rpartition("=")[2]  # the test's schema: its connections alone
    store = store_for(Config(storage=f"{storage}&application_name={app}"))
    await store.open()
    try:
        await store.record([AuditRecord("paused", reason="before")])
        ended = await database.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ?",
            app,
        )
        assert ended  # the pool's connections, the writer's among them
        await asyncio.sleep(0.5)  # the client sees its sockets close
        await store.record([AuditRecord("paused", reason="after")])
        assert (await store.verify()).events == 2
    finally:
        await store.close()


async def test_an_event_postgresql_refuses_fails_only_its_own_write(storage: str) -> None:
    """PostgreSQL text takes no NUL byte: that write fails, the ones committed with it stay."""
    batches: list[int] = []
    store = store_for(Config(storage=storage), on_commit=lambda _s, jobs: batches.append(jobs))
    await store.open()
    try:
        outcomes = await asyncio.gather(
            store.record([AuditRecord("paused", reason="one")]),
            store.record([AuditRecord("paused", reason="bad\x00reason")]),
            store.record([AuditRecord("paused", reason="two")]),
            return_exceptions=True,
        )
        assert batches == [3]  # one group commit
        assert isinstance(outcomes[1], StoreUnavailable)
        assert not isinstance(outcomes[0], BaseException)
        assert not isinstance(outcomes[2], BaseException)
        kept = {e.record.reason for e in await store.audit(AuditQuery(limit=10))}
        assert kept == {"one", "two"}
        assert (await store.verify()).ok
    finally:
        await store.close()

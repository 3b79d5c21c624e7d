"""``postgresql.terminate_backends`` through asyncpg against the machine's real PostgreSQL.

The sessions to terminate are the test's own, of roles and an application
name made for each test: the server is shared, and nothing else on it may
ever match.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from remediations import ActionContext, ParamError, PermanentError, TemporaryError
from remediations.address import Server
from remediations.postgresql.servers import PostgresServers
from remediations.postgresql.terminate_backends import TerminateBackends
from tests.support.postgres import SERVER, connect
from tests.support.redis import closed_port
from tests.support.tls import untrusted_tls

_SERVER = urlsplit(SERVER)
HOST = f"{_SERVER.hostname}:{_SERVER.port or 5432}"
DATABASE = _SERVER.path.strip("/") or "test"


@dataclasses.dataclass
class Cluster:
    """The test's roles on the real server, and the sessions it opened."""

    admin: Any  # a superuser's connection
    ops: str  # remedy's role: pg_signal_backend and pg_read_all_stats, no superuser
    app: str  # the application's role
    application: str  # the application_name of the test's sessions
    opened: list[Any] = dataclasses.field(default_factory=list)

    def dsn(self, role: str | None = None, query: str = "") -> str:
        return f"postgresql://{role or self.ops}@{HOST}/{DATABASE}{query}"

    async def session(self, role: str | None = None) -> Any:
        """A connection of ``role`` (the app's by default) under the test's application name."""
        conn = await asyncpg.connect(
            self.dsn(role or self.app), server_settings={"application_name": self.application}
        )
        self.opened.append(conn)
        return conn

    async def stuck(self, role: str | None = None) -> Any:
        """A session left idle in a transaction it began."""
        conn = await self.session(role)
        await conn.execute("BEGIN")
        await conn.execute("SELECT 1")
        return conn


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    admin = await connect()
    tag = uuid.uuid4().hex[:10]
    ops, app = f"remedy_ops_{tag}", f"remedy_app_{tag}"
    await admin.execute(f"CREATE ROLE {ops} LOGIN IN ROLE pg_signal_backend, pg_read_all_stats")
    await admin.execute(f"CREATE ROLE {app} LOGIN")
    found = Cluster(admin, ops, app, f"remedy-test-{tag}")
    try:
        yield found
    finally:
        for conn in found.opened:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1)",
            [ops, app],
        )
        try:
            for role in (ops, app):
                await drop_role(admin, role)
        finally:
            await admin.close()


async def drop_role(admin: Any, role: str) -> None:
    """DROP ROLE, asked again while its terminated sessions leave; fails loudly after 5 s."""
    for _ in range(50):  # a terminated session leaves pg_stat_activity a moment later
        try:
            await admin.execute(f"DROP ROLE IF EXISTS {role}")
            return
        except asyncpg.PostgresError as exc:
            last = exc
            await asyncio.sleep(0.1)
    pytest.fail(f"the test's role {role} could not be dropped: {last}")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def context(http: aiohttp.ClientSession, dsn: str) -> ActionContext:
    return ActionContext(http=http, postgresql=PostgresServers([Server(dsn)]))


async def alive(conn: Any) -> bool:
    """Whether a session still answers (a terminated one raises one of asyncpg's errors)."""
    try:
        return bool(await conn.fetchval("SELECT true", timeout=5))
    except Exception:  # whichever asyncpg raises for a connection the server closed
        return False


async def test_sessions_idle_in_transaction_past_the_bound_are_terminated(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    old = [await cluster.stuck() for _ in range(3)]
    superuser = await cluster.stuck(role="postgres")  # never terminated, however old
    await asyncio.sleep(1.5)
    young = await cluster.stuck()
    pids = [conn.get_server_pid() for conn in old]
    action = TerminateBackends()
    params = action.parse(
        {
            "dsn": cluster.dsn(),
            "database": DATABASE,
            "state": "idle in transaction",
            "older_than": "1s",
            "application_name": cluster.application,
            "max": 10,
        }
    )
    result = await action.run(params, context(http, cluster.dsn()))
    assert [s["pid"] for s in result["terminated"]] == pids  # oldest first
    assert (result["count"], result["stopped_at_max"]) == (3, False)
    for session in result["terminated"]:
        assert session["user"] == cluster.app
        assert session["state"] == "idle in transaction"
        assert session["application_name"] == cluster.application
        assert session["age_seconds"] >= 1.0
        assert "query" not in session
    assert [await alive(conn) for conn in old] == [False] * 3  # their clients see it gone
    assert await alive(young)
    assert await alive(superuser)


async def test_max_bounds_the_sessions_terminated_and_the_preview_terminates_none(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    stuck = [await cluster.stuck() for _ in range(3)]
    await asyncio.sleep(1.2)
    action = TerminateBackends()
    given = {
        "dsn": cluster.dsn(),
        "database": DATABASE,
        "state": "idle in transaction",
        "older_than": "1s",
        "user": cluster.app,
        "max": 2,
    }
    ctx = context(http, cluster.dsn())
    preview = await action.preview(action.parse(given), ctx)
    assert [s["pid"] for s in preview["would_terminate"]] == [
        conn.get_server_pid() for conn in stuck[:2]
    ]
    assert preview["stopped_at_max"] is True
    # all three still there (asked around them: a query of theirs would make them young)
    pids = [conn.get_server_pid() for conn in stuck]
    listed = await cluster.admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids
    )
    assert listed == 3

    result = await action.run(action.parse(given), ctx)
    assert (result["count"], result["stopped_at_max"]) == (2, True)
    assert [await alive(conn) for conn in stuck] == [False, False, True]


async def test_sessions_whose_transaction_failed_are_terminated_too(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    aborted = await cluster.stuck()
    with pytest.raises(asyncpg.DivisionByZeroError):
        await aborted.execute("SELECT 1 / 0")
    healthy = await cluster.stuck()
    await asyncio.sleep(1.2)
    action = TerminateBackends()
    params = action.parse(
        {
            "dsn": cluster.dsn(),
            "database": DATABASE,
            "state": "idle in transaction (aborted)",
            "older_than": "1s",
            "user": cluster.app,
            "max": 5,
        }
    )
    result = await action.run(params, context(http, cluster.dsn()))
    assert [s["pid"] for s in result["terminated"]] == [aborted.get_server_pid()]
    assert result["terminated"][0]["state"] == "idle in transaction (aborted)"
    assert not await alive(aborted)
    assert await alive(healthy)


async def test_its_own_connection_is_never_terminated(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    busy = await cluster.session(role=cluster.ops)
    running = asyncio.create_task(busy.execute("SELECT pg_sleep(30)"))
    await asyncio.sleep(1.0)
    # remedy's own connection is active, of the same role and application, while it selects
    dsn = cluster.dsn(query=f"?application_name={cluster.application}")
    action = TerminateBackends()
    params = action.parse(
        {
            "dsn": dsn,
            "database": DATABASE,
            "state": "active",
            "older_than": "500ms",
            "application_name": cluster.application,
            "max": 5,
        }
    )
    result = await action.run(params, context(http, dsn))
    assert [s["pid"] for s in result["terminated"]] == [busy.get_server_pid()]
    with pytest.raises(asyncpg.PostgresError, match="administrator command"):
        await running


async def test_without_pg_signal_backend_it_fails_permanently_and_terminates_nothing(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    await cluster.admin.execute(f"REVOKE pg_signal_backend FROM {cluster.ops}")
    stuck = await cluster.stuck()
    await asyncio.sleep(1.2)
    action = TerminateBackends()
    params = action.parse(
        {
            "dsn": cluster.dsn(),
            "database": DATABASE,
            "state": "idle in transaction",
            "older_than": "1s",
            "user": cluster.app,
            "max": 5,
        }
    )
    with pytest.raises(PermanentError, match="42501"):
        await action.run(params, context(http, cluster.dsn()))
    assert await alive(stuck)


async def test_an_unreachable_or_unknown_server(http: aiohttp.ClientSession) -> None:
    action = TerminateBackends()
    dsn = f"postgresql://remedy@127.0.0.1:{closed_port()}/postgres"
    params = action.parse(
        {"dsn": dsn, "database": "x", "state": "active", "older_than": "1m", "max": 1}
    )
    with pytest.raises(TemporaryError, match="cannot reach the server"):
        await action.run(params, context(http, dsn))
    with pytest.raises(PermanentError, match=r"is not in backends\.postgresql\.servers"):
        await action.run(params, context(http, "postgresql://remedy@elsewhere:5432/postgres"))
    with pytest.raises(PermanentError, match=r"backends\.postgresql is not configured"):
        await action.run(params, ActionContext(http=http))


async def test_an_untrusted_certificate_is_permanent(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with untrusted_tls(tmp_path, postgres=True) as port:
        root = tmp_path / "cert.pem"
        dsn = (
            f"postgresql://remedy@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={root}"
        )
        action = TerminateBackends()
        params = action.parse(
            {"dsn": dsn, "database": "x", "state": "active", "older_than": "1m", "max": 1}
        )
        with pytest.raises(PermanentError, match="TLS certificate is not trusted"):
            await action.run(params, context(http, dsn))


BASE = {
    "dsn": "postgresql://remedy@db/postgres",
    "database": "orders",
    "state": "idle in transaction",
    "older_than": "10m",
    "max": 5,
}


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({**BASE, "dsn": "postgresql://remedy:s3cret@db/postgres"}, "dsn", "password"),
        ({**BASE, "dsn": "postgresql://remedy@db/postgres?password=s3cret"}, "dsn", "password"),
        (
            {**BASE, "dsn": "postgresql://remedy@db/postgres?sslpassword=s3cret"},
            "dsn",
            "sslpassword",
        ),
        # a password holding what ends a userinfo for urlsplit: refused, never quoted
        *(
            ({**BASE, "dsn": dsn}, "dsn", "password")
            for dsn in (
                "postgresql://remedy:s3cret/x@db:5432/postgres",
                "postgresql://remedy:s3cret?x@db/postgres",
                "postgres://remedy:s3cret#x@db/postgres",
                "postgresql://remedy:s3cret@x@db/postgres",
                "postgresql://:p@ss/s3cret@db/postgres",
            )
        ),
        ({**BASE, "dsn": "postgresql://remedy@db/postgres?x=s3cret@y"}, "dsn", "not a valid DSN"),
        ({**BASE, "dsn": "mysql://remedy@db/orders"}, "dsn", "postgresql://"),
        ({**BASE, "state": "idle"}, "state", "idle in transaction"),
        ({k: v for k, v in BASE.items() if k != "older_than"}, "older_than", "required"),
        ({k: v for k, v in BASE.items() if k != "max"}, "max", "required"),
        ({**BASE, "max": 0}, "max", "at least 1"),
        ({**BASE, "query": "x"}, "query", "unknown"),
    ],
)
def test_params_are_checked_and_errors_name_the_field(
    params: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(ParamError) as caught:
        TerminateBackends().parse(params)
    assert caught.value.field == field
    assert message in caught.value.message
    assert "s3cret" not in str(caught.value)


def test_dsns_have_one_spelling() -> None:
    parsed = TerminateBackends().parse({**BASE, "dsn": "postgres://remedy@DB/postgres"})
    assert parsed.dsn == "postgresql://remedy@db:5432/postgres"

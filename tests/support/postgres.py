"""The machine's real PostgreSQL for the tests: one fresh schema per test, dropped after.

``REMEDY_TEST_POSTGRES`` names the server (default the project machines'
``postgresql://postgres@127.0.0.1:5432/test``, trust auth). Unreachable, the
test is skipped, or fails under ``REMEDY_REQUIRE_ENGINES=1``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg

from tests.support.engines import missing

SERVER = os.environ.get("REMEDY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def connect() -> asyncpg.Connection:
    """A connection to the test server, or a skip (a failure with engines required)."""
    try:
        return await asyncpg.connect(SERVER, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        missing(
            f"PostgreSQL is not reachable at {SERVER} ({exc}): install postgresql and start it"
            " (pg_ctlcluster --skip-systemctl-redirect 15 main start)"
        )
        raise AssertionError("unreachable") from None  # missing() never returns


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A storage URL whose connections use a new, empty schema; dropped with all it holds."""
    schema = f"remedy_test_{uuid.uuid4().hex[:12]}"
    admin = await connect()
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in SERVER else "?"
        yield f"{SERVER}{separator}search_path={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()

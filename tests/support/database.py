"""Direct SQL on a test's store, as an intruder with write access (or a crash) would touch it.

The same statements run on SQLite and PostgreSQL; ``?`` marks a parameter on both.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import asyncpg

from receiver.config import Config, is_postgresql


class Database:
    """The database behind a ``storage:`` URL, reached around remedy."""

    def __init__(self, storage: str) -> None:
        self.storage = storage

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement and commit it."""
        await self.fetch(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run one statement and commit it; the rows it returned."""
        if not is_postgresql(self.storage):
            with sqlite3.connect(Config(storage=self.storage).sqlite_path) as conn:
                return [tuple(row) for row in conn.execute(sql, args).fetchall()]
        numbered = iter(range(1, 1000))
        statement = re.sub(r"\?", lambda _: f"${next(numbered)}", sql)
        conn = await asyncpg.connect(self.storage)
        try:
            return [tuple(row) for row in await conn.fetch(statement, *args)]
        finally:
            await conn.close()

    async def count(self, table: str) -> int:
        """How many rows ``table`` holds."""
        rows = await self.fetch(f"SELECT COUNT(*) FROM {table}")
        return int(rows[0][0])

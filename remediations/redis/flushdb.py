"""``redis.flushdb``: empty one database of a Redis server.

What ``redis-cli -n DB flushdb async`` does: every key of that database
goes, the memory is freed in the background. Other databases of the server
are untouched. Off unless ``backends.redis.allow_flush: true``: a rule that
uses it does not load otherwise, and it refuses to run (permanently) if it
is reached all the same.

In dry-run it counts the keys (``DBSIZE``) and deletes nothing.

Params:
    url: the server, as ``backends.redis.servers`` lists it (no password)
    db: the database number, required: which database is emptied is never a default

Result: ``server``, ``db`` and ``keys`` ``{before, after}`` (``DBSIZE``; in
dry-run only ``before``).

Permissions (Redis ACL): ``+flushdb +dbsize`` (and ``+select`` for a db
other than 0).

Example::

    - action: redis.flushdb
      params: {url: 'redis://sessions-cache:6379', db: 3}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import redis.asyncio

from remediations.address import host_port
from remediations.base import ActionContext, PermanentError
from remediations.params import Fields
from remediations.redis.servers import parse_db, parse_url, servers, translated, where


@dataclasses.dataclass(frozen=True, slots=True)
class FlushParams:
    """A validated ``redis.flushdb``."""

    url: str
    db: int


class FlushDb:
    """FLUSHDB ASYNC on one database."""

    name: ClassVar[str] = "redis.flushdb"

    def parse(self, params: Mapping[str, Any]) -> FlushParams:
        """See the module docstring."""
        fields = Fields(params, ("url", "db"))
        return FlushParams(parse_url(fields.string("url")), parse_db(fields.raw("db")))

    def subject(self, params: FlushParams) -> str:
        """The server's URL, what ``backends.redis.servers`` must list."""
        return params.url

    async def run(self, params: FlushParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Count, flush, count again."""
        client, secret = self._client(params, ctx)
        with translated(where(params.url, params.db), secret):
            before = int(await client.dbsize())
            await client.flushdb(asynchronous=True)
            after = int(await client.dbsize())
        return {**self._about(params), "keys": {"before": before, "after": after}}

    async def preview(self, params: FlushParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Dry-run: how many keys the flush would delete."""
        client, secret = self._client(params, ctx)
        with translated(where(params.url, params.db), secret):
            before = int(await client.dbsize())
        return {**self._about(params), "keys": {"before": before}}

    @staticmethod
    def _client(params: FlushParams, ctx: ActionContext) -> tuple[redis.asyncio.Redis, str | None]:
        """The database's client and the password to scrub; refused without ``allow_flush``."""
        known = servers(ctx)
        if not known.allow_flush:
            raise PermanentError(
                f"{where(params.url, params.db)}: redis.flushdb is off:"
                " set backends.redis.allow_flush: true to allow it"
            )
        return known.client(params.url, params.db), known.password(params.url)

    @staticmethod
    def _about(params: FlushParams) -> dict[str, Any]:
        return {"server": host_port(params.url), "db": params.db}

"""``redis.delete_keys``: delete the keys that match a pattern, at most ``max`` of them.

What ``redis-cli --scan --pattern P | xargs redis-cli unlink`` does, bounded:
``SCAN`` with ``MATCH`` walks the keyspace in batches (never ``KEYS``,
which blocks the server for the whole keyspace) and each batch's matches
go to ``UNLINK`` (the memory is freed in the background), until ``max``
keys were unlinked or the scan is done. A key ``SCAN`` returns twice is
counted once; a key that expired meanwhile is not counted as deleted.

``max`` bounds a run, its retries included: once keys were deleted, any
failure is permanent and says how many went before it (a retry would start
a new sweep with a fresh budget, and could delete ``max`` keys more).

In dry-run the same bounded ``SCAN`` counts the keys it would delete and
deletes nothing.

Params:
    url: the server, as ``backends.redis.servers`` lists it (``redis://HOST:PORT``,
        ``rediss://USER@HOST:PORT``; no password: that comes from the config)
    db: the database number (default 0)
    pattern: a glob-style ``SCAN MATCH`` pattern (``cache:fares:*``); ``*`` alone is
        refused (use ``redis.flushdb``)
    max: the upper bound, required: never more keys than this are deleted in one run

Result: ``server``, ``db``, ``pattern``, ``max``, ``deleted`` and
``stopped_at_max`` (true when more keys matched than ``max`` allowed; they
are left for the next run). In dry-run, ``matching`` (the keys it would
delete, counted up to ``max``) instead of ``deleted``.

Permissions (Redis ACL): ``+scan +unlink`` (and ``+select`` for a db other
than 0) with key patterns (``~cache:*``) that cover the pattern: a key the
user may not touch fails the run with NOPERM.

Example::

    - action: redis.delete_keys
      params: {url: 'redis://cache-1:6379', pattern: 'fares:{{ labels.route }}:*', max: 5000}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import redis.asyncio

from remediations.address import host_port
from remediations.base import ActionContext, ActionError, ParamError, PermanentError
from remediations.params import Fields
from remediations.redis.servers import parse_db, parse_url, servers, translated, where

BATCH = 500  # SCAN's COUNT hint: keys looked at per round trip


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteKeysParams:
    """A validated ``redis.delete_keys``."""

    url: str
    db: int
    pattern: str
    max: int


@dataclasses.dataclass(slots=True)
class Sweep:
    """What a bounded scan has found so far: the keys taken (deleted, unless a dry run)."""

    taken: set[bytes | str] = dataclasses.field(default_factory=set)
    deleted: int = 0
    more: bool = False  # a matching key beyond max was seen


async def sweep(
    client: redis.asyncio.Redis, pattern: str, limit: int, found: Sweep, *, delete: bool
) -> None:
    """Walk the keyspace with SCAN MATCH; take up to ``limit`` keys, UNLINK them if asked.

    Stops at the end of the scan, or at the first matching key past ``limit``
    (which is how it knows that more keys match). ``found`` is kept up to
    date as it goes, so that a failure still knows what was deleted before it.
    """
    cursor = 0
    while True:
        cursor, keys = await client.scan(cursor=cursor, match=pattern, count=BATCH)
        fresh = [key for key in dict.fromkeys(keys) if key not in found.taken]
        room = limit - len(found.taken)
        found.more = len(fresh) > room
        fresh = fresh[:room]
        if fresh:
            found.taken.update(fresh)
            if delete:
                found.deleted += int(await client.unlink(*fresh))
        if found.more or cursor == 0:
            return


def interrupted(error: ActionError, deleted: int) -> ActionError:
    """The error a sweep ends with: as it was when nothing was deleted, else permanent.

    A retry after some deletions would sweep again with the whole of ``max``.
    """
    if not deleted:
        return error
    return PermanentError(f"{error} (after deleting {deleted} keys)")


class DeleteKeys:
    """UNLINK the keys a SCAN MATCH finds, never more than ``max``."""

    name: ClassVar[str] = "redis.delete_keys"

    def parse(self, params: Mapping[str, Any]) -> DeleteKeysParams:
        """See the module docstring."""
        fields = Fields(params, ("url", "db", "pattern", "max"))
        url = parse_url(fields.string("url"))
        db = parse_db(fields.raw("db", 0))
        pattern = fields.string("pattern")
        if not pattern.strip("*"):
            raise ParamError(
                "pattern", f"{pattern!r} matches every key: use redis.flushdb to empty a database"
            )
        return DeleteKeysParams(url, db, pattern, fields.integer("max", minimum=1))

    def subject(self, params: DeleteKeysParams) -> str:
        """The server's URL, what ``backends.redis.servers`` must list."""
        return params.url

    async def run(self, params: DeleteKeysParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Scan and unlink up to ``max`` matching keys; report how many went."""
        found = await self._sweep(params, ctx, delete=True)
        return {**self._about(params), "deleted": found.deleted, "stopped_at_max": found.more}

    async def preview(self, params: DeleteKeysParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Dry-run: the same bounded scan, counting what it would delete."""
        found = await self._sweep(params, ctx, delete=False)
        matching = len(found.taken)
        return {**self._about(params), "matching": matching, "stopped_at_max": found.more}

    @staticmethod
    async def _sweep(params: DeleteKeysParams, ctx: ActionContext, *, delete: bool) -> Sweep:
        known = servers(ctx)
        client = known.client(params.url, params.db)
        found = Sweep()
        try:
            with translated(where(params.url, params.db), known.password(params.url)):
                await sweep(client, params.pattern, params.max, found, delete=delete)
        except ActionError as exc:
            raise interrupted(exc, found.deleted) from None
        return found

    @staticmethod
    def _about(params: DeleteKeysParams) -> dict[str, Any]:
        return {
            "server": host_port(params.url),
            "db": params.db,
            "pattern": params.pattern,
            "max": params.max,
        }

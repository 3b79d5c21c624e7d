"""``postgresql.terminate_backends``: end the sessions stuck in a state for too long.

What a DBA does with ``pg_terminate_backend`` when connections run out:
select the client sessions of one database that have been ``idle in
transaction`` (or ``active``) for longer than ``older_than``, oldest first,
and terminate at most ``max`` of them, in one statement. Their clients see
their connection closed; their open transactions roll back. Being one
statement, ``max`` bounds a run with its retries too: what is retried
(no connection, too many connections) failed before anything was terminated.

Never terminated: remedy's own connection, a superuser's session, and
anything that is not a client backend (replication senders, autovacuum,
background and parallel workers). The result names each session by pid,
user, application, state and age, never by its query text (which may
carry secrets). In dry-run the same selection runs without terminating.

When the server is out of connections, remedy's own connection may be
refused as well (a temporary failure, retried): keep a slot for it, such as
PostgreSQL 16's ``reserved_connections`` with the role
``pg_use_reserved_connections``, or a per-role ``CONNECTION LIMIT`` on the
applications' roles.

Params:
    dsn: the server, as ``backends.postgresql.servers`` lists it
        (``postgresql://USER@HOST:PORT/DB``; no password: that comes from the config)
    database: the database whose sessions are selected
    state: ``idle in transaction``, ``idle in transaction (aborted)`` (a statement in
        the transaction failed) or ``active``
    older_than: how long a session must have been in that state (``10m``), required
    user: only the sessions of this role
    application_name: only the sessions of this application
    max: the upper bound, required: never more sessions than this are terminated in one run

Result: ``server``, ``database``, ``state``, ``older_than`` (seconds),
``terminated`` (each session's ``pid``, ``user``, ``application_name``,
``state`` and ``age_seconds``), ``count`` and ``stopped_at_max`` (true when
more sessions matched than ``max`` allowed); in dry-run ``would_terminate``
instead of ``terminated``.

Permissions (PostgreSQL): a role that may log in to the DSN's database,
member of ``pg_signal_backend`` (to terminate other roles' sessions) and of
``pg_read_all_stats`` (else ``pg_stat_activity`` hides other roles' states
and nothing matches); no superuser needed.

Example::

    - action: postgresql.terminate_backends
      params:
        dsn: 'postgresql://remedy@orders-db:5432/postgres'
        database: orders
        state: idle in transaction
        older_than: 10m
        max: 20
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from remediations.address import host_port
from remediations.base import ActionContext, ParamError
from remediations.params import Fields
from remediations.postgresql.servers import parse_dsn, servers

STATES = ("idle in transaction", "idle in transaction (aborted)", "active")

# Client sessions of one database in one state for longer than a bound, oldest first,
# never this connection's own, a superuser's (or an unknown role's) or a non-client
# backend's; one more than the bound is selected, to tell whether more matched. The
# terminating statement is the same selection, so what is terminated is exactly what
# was just selected.
_SELECT = """
WITH candidates AS (
    SELECT a.pid, a.usename, a.application_name, a.state,
           extract(epoch FROM now() - a.state_change)::float8 AS age,
           row_number() OVER (ORDER BY a.state_change) AS n
    FROM pg_stat_activity AS a
    LEFT JOIN pg_roles AS r ON r.oid = a.usesysid
    WHERE a.backend_type = 'client backend'
      AND a.pid <> pg_backend_pid()
      AND NOT coalesce(r.rolsuper, true)
      AND a.datname = $1
      AND a.state = $2
      AND a.state_change < now() - make_interval(secs => $3)
      AND ($4::text IS NULL OR a.usename = $4)
      AND ($5::text IS NULL OR a.application_name = $5)
    ORDER BY a.state_change
    LIMIT $6 + 1
)
SELECT pid, usename, application_name, state, age, n,
       {terminate} AS terminated
FROM candidates
ORDER BY n
"""
TERMINATE = _SELECT.format(terminate="CASE WHEN n <= $6 THEN pg_terminate_backend(pid) END")
PREVIEW = _SELECT.format(terminate="NULL::boolean")


@dataclasses.dataclass(frozen=True, slots=True)
class TerminateParams:
    """A validated ``postgresql.terminate_backends``."""

    dsn: str
    database: str
    state: str
    older_than: float
    user: str | None
    application_name: str | None
    max: int


class TerminateBackends:
    """pg_terminate_backend on the oldest matching sessions, at most ``max``."""

    name: ClassVar[str] = "postgresql.terminate_backends"

    def parse(self, params: Mapping[str, Any]) -> TerminateParams:
        """See the module docstring."""
        fields = Fields(
            params,
            ("dsn", "database", "state", "older_than", "user", "application_name", "max"),
        )
        state = fields.string("state")
        if state not in STATES:
            raise ParamError("state", f"expected one of {', '.join(STATES)}, got {state!r}")
        return TerminateParams(
            dsn=parse_dsn(fields.string("dsn")),
            database=fields.string("database"),
            state=state,
            older_than=fields.duration("older_than"),
            user=fields.string("user") if fields.has("user") else None,
            application_name=(
                fields.string("application_name") if fields.has("application_name") else None
            ),
            max=fields.integer("max", minimum=1),
        )

    def subject(self, params: TerminateParams) -> str:
        """The server's DSN, what ``backends.postgresql.servers`` must list."""
        return params.dsn

    async def run(self, params: TerminateParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Select and terminate in one statement; report each session terminated."""
        rows = await self._select(params, ctx, TERMINATE)
        taken = [row for row in rows if row["n"] <= params.max]
        ended = [_session(row) for row in taken if row["terminated"]]
        result = self._about(params)
        result.update(terminated=ended, count=len(ended), stopped_at_max=len(rows) > params.max)
        if gone := [row["pid"] for row in taken if not row["terminated"]]:
            result["gone"] = gone  # ended by themselves between the snapshot and the signal
        return result

    async def preview(self, params: TerminateParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Dry-run: the sessions the same selection finds, terminating none."""
        rows = await self._select(params, ctx, PREVIEW)
        would = [_session(row) for row in rows if row["n"] <= params.max]
        result = self._about(params)
        more = len(rows) > params.max
        result.update(would_terminate=would, count=len(would), stopped_at_max=more)
        return result

    @staticmethod
    async def _select(params: TerminateParams, ctx: ActionContext, sql: str) -> list[Any]:
        async with servers(ctx).connect(params.dsn) as conn:
            return list(
                await conn.fetch(
                    sql,
                    params.database,
                    params.state,
                    params.older_than,
                    params.user,
                    params.application_name,
                    params.max,
                )
            )

    @staticmethod
    def _about(params: TerminateParams) -> dict[str, Any]:
        return {
            "server": host_port(params.dsn),
            "database": params.database,
            "state": params.state,
            "older_than": params.older_than,
        }


def _session(row: Any) -> dict[str, Any]:
    """A session as the audit log shows it: who and how long, never its query."""
    return {
        "pid": row["pid"],
        "user": row["usename"],
        "application_name": row["application_name"],
        "state": row["state"],
        "age_seconds": round(float(row["age"]), 1),
    }

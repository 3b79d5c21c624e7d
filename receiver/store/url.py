"""Which store a ``storage:`` URL names: SQLite (``sqlite:///PATH``) or PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

from receiver.clock import Clock
from receiver.config import Config, is_postgresql
from receiver.store.base import Store
from receiver.store.postgres import PostgresStore
from receiver.store.sqlite import SQLiteStore


def store_for(
    config: Config,
    *,
    clock: Clock | None = None,
    on_commit: Callable[[float, int], None] | None = None,
    readonly: bool = False,
) -> Store:
    """The store of ``config.storage``, not yet opened."""
    if is_postgresql(config.storage):
        return PostgresStore(
            config.storage,
            config.storage_password,
            clock=clock,
            on_commit=on_commit,
            readonly=readonly,
            lease=config.storage_lease,
        )
    return SQLiteStore(config.sqlite_path, clock=clock, on_commit=on_commit, readonly=readonly)

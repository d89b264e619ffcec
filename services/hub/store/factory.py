"""The store the settings name: PostgreSQL when a database URL is set, else the SQLite file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.hub.store.protocols import Store
from services.hub.store.sqlite import SqliteStore


def open_store(
    *,
    database_url: str = "",
    db_path: str = "",
    now: Callable[[], Any],
    synchronous: str = "FULL",
    pool_size: int = 8,
    timeout: float = 5.0,
) -> Store:
    """A store, not yet opened: `database_url` (postgresql://...) wins over the SQLite `db_path`."""
    if database_url:
        from services.hub.store.postgres import PostgresStore  # psycopg is loaded only when used

        return PostgresStore(database_url, now=now, pool_size=pool_size, timeout=timeout)
    return SqliteStore(db_path, now=now, synchronous=synchronous)


def store_from_settings(settings, now: Callable[[], Any]) -> Store:
    return open_store(
        database_url=settings.database_url,
        db_path=settings.db_path,
        now=now,
        synchronous=settings.db_synchronous,
        pool_size=settings.database_pool_size,
        timeout=settings.database_timeout_seconds,
    )

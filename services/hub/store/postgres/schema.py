"""Applying the migrations (`store.schema.MIGRATIONS`, their PostgreSQL text) to a PostgreSQL database.

Replicas may start together: each migration runs in its own transaction under a transaction-level advisory
lock, and re-reads the version inside it, so exactly one replica applies it and the others see it applied.
DDL is transactional in PostgreSQL: a migration that fails leaves nothing behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import psycopg

from services.hub.store.postgres.engine import one_row
from services.hub.store.schema import MIGRATIONS, Migration, pending, statements

log = logging.getLogger("caspian.hub.store")

# Any fixed number: the key of the advisory lock that serializes migrations across replicas.
MIGRATION_LOCK = 0x43415350  # "CASP"


async def _version(conn: psycopg.AsyncConnection) -> int:
    cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    return int((await one_row(cur))[0])


async def migrate_postgres(
    conn: psycopg.AsyncConnection, migrations: Sequence[Migration] = MIGRATIONS
) -> int:
    """Apply every migration newer than the database; return the version. `conn` is in autocommit mode."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
        current = await _version(conn)
    for migration in pending(current, migrations):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            if await _version(conn) >= migration.version:
                continue  # another replica applied it meanwhile
            if not migration.postgresql:
                raise RuntimeError(f"migration {migration.version} has no PostgreSQL text")
            for statement in statements(migration.postgresql):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_version(version, name, applied_at) VALUES (%s, %s, %s)",
                (migration.version, migration.name, time.time()),
            )
        log.info("schema migrated", extra={"version": migration.version, "migration": migration.name})
    return await _version(conn)

"""The schema: versioned migrations, each written for SQLite and for PostgreSQL.

`schema_version` records each migration applied; `MIGRATIONS` is the ordered list. Both backends apply the
same list, so a version number means the same tables on either. A migration is never edited once released:
a change is a new migration.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from services.hub.phases import TERMINAL

log = logging.getLogger("caspian.hub.store")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str  # SQLite
    postgresql: str = ""


def _in(phases: Sequence[int]) -> str:
    return ", ".join(str(int(p)) for p in phases)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "appwrappers, change log, clusters, meta",
        """
        CREATE TABLE appwrappers (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            tenant TEXT NOT NULL,
            phase INTEGER NOT NULL,
            target_cluster TEXT NOT NULL DEFAULT '',
            revision INTEGER NOT NULL,
            request_id TEXT NOT NULL DEFAULT '',
            fingerprint BLOB NOT NULL,
            planned_start REAL,
            planned_gco2 REAL NOT NULL DEFAULT 0,
            actual_gco2 REAL NOT NULL DEFAULT 0,
            counterfactual_gco2 REAL NOT NULL DEFAULT 0,
            baseline_cluster TEXT NOT NULL DEFAULT '',
            baseline_start REAL,
            needs_accounting INTEGER NOT NULL DEFAULT 0,
            accounted INTEGER NOT NULL DEFAULT 0,
            needs_cleanup INTEGER NOT NULL DEFAULT 0,
            body BLOB NOT NULL
        );
        CREATE INDEX appwrappers_phase ON appwrappers(phase, seq);
        CREATE INDEX appwrappers_cluster ON appwrappers(target_cluster, seq);
        CREATE INDEX appwrappers_tenant ON appwrappers(tenant, seq);
        CREATE INDEX appwrappers_revision ON appwrappers(revision);
        CREATE INDEX appwrappers_accounting ON appwrappers(needs_accounting) WHERE needs_accounting = 1;
        CREATE INDEX appwrappers_cleanup ON appwrappers(needs_cleanup) WHERE needs_cleanup = 1;
        CREATE TABLE changes (
            revision INTEGER PRIMARY KEY,
            id TEXT NOT NULL,
            kind INTEGER NOT NULL,
            phase INTEGER NOT NULL,
            tenant TEXT NOT NULL,
            previous_phase INTEGER NOT NULL DEFAULT 0,
            body BLOB NOT NULL
        );
        CREATE TABLE clusters (
            name TEXT PRIMARY KEY,
            revision INTEGER NOT NULL,
            body BLOB NOT NULL
        );
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta(key, value) VALUES ('revision', '0'), ('cycle', '0'), ('compacted_through', '0');
        """,
        """
        CREATE TABLE appwrappers (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            tenant TEXT NOT NULL,
            phase INTEGER NOT NULL,
            target_cluster TEXT NOT NULL DEFAULT '',
            revision BIGINT NOT NULL,
            request_id TEXT NOT NULL DEFAULT '',
            fingerprint BYTEA NOT NULL,
            planned_start DOUBLE PRECISION,
            planned_gco2 DOUBLE PRECISION NOT NULL DEFAULT 0,
            actual_gco2 DOUBLE PRECISION NOT NULL DEFAULT 0,
            counterfactual_gco2 DOUBLE PRECISION NOT NULL DEFAULT 0,
            baseline_cluster TEXT NOT NULL DEFAULT '',
            baseline_start DOUBLE PRECISION,
            needs_accounting INTEGER NOT NULL DEFAULT 0,
            accounted INTEGER NOT NULL DEFAULT 0,
            needs_cleanup INTEGER NOT NULL DEFAULT 0,
            body BYTEA NOT NULL
        );
        CREATE INDEX appwrappers_phase ON appwrappers(phase, seq);
        CREATE INDEX appwrappers_cluster ON appwrappers(target_cluster, seq);
        CREATE INDEX appwrappers_tenant ON appwrappers(tenant, seq);
        CREATE INDEX appwrappers_revision ON appwrappers(revision);
        CREATE INDEX appwrappers_accounting ON appwrappers(needs_accounting) WHERE needs_accounting = 1;
        CREATE INDEX appwrappers_cleanup ON appwrappers(needs_cleanup) WHERE needs_cleanup = 1;
        CREATE TABLE changes (
            revision BIGINT PRIMARY KEY,
            id TEXT NOT NULL,
            kind INTEGER NOT NULL,
            phase INTEGER NOT NULL,
            tenant TEXT NOT NULL,
            previous_phase INTEGER NOT NULL DEFAULT 0,
            body BYTEA NOT NULL
        );
        CREATE TABLE clusters (
            name TEXT PRIMARY KEY,
            revision BIGINT NOT NULL,
            body BYTEA NOT NULL
        );
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta(key, value) VALUES ('revision', '0'), ('cycle', '0'), ('compacted_through', '0');
        """,
    ),
    Migration(
        2,
        "carbon intensity cache: stale forecasts when the carbon service is down, and accounting",
        """
        CREATE TABLE intensity_cache (
            zone TEXT NOT NULL,
            start REAL NOT NULL,
            seconds REAL NOT NULL,
            gco2_per_kwh REAL NOT NULL,
            fetched_at REAL NOT NULL,
            PRIMARY KEY (zone, start)
        );
        """,
        """
        CREATE TABLE intensity_cache (
            zone TEXT NOT NULL,
            start DOUBLE PRECISION NOT NULL,
            seconds DOUBLE PRECISION NOT NULL,
            gco2_per_kwh DOUBLE PRECISION NOT NULL,
            fetched_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (zone, start)
        );
        """,
    ),
    Migration(
        3,
        "finished AppWrappers are collected after a TTL: time of the last change, totals of collected ones",
        f"""
        ALTER TABLE appwrappers ADD COLUMN updated REAL NOT NULL DEFAULT 0;
        UPDATE appwrappers SET updated = CAST(strftime('%s', 'now') AS REAL);
        CREATE INDEX appwrappers_finished ON appwrappers(updated) WHERE phase IN ({_in(TERMINAL)});
        INSERT INTO meta(key, value) VALUES
            ('collected', '0'), ('collected_accounted', '0'),
            ('collected_emitted_gco2', '0'), ('collected_counterfactual_gco2', '0');
        """,
        f"""
        ALTER TABLE appwrappers ADD COLUMN updated DOUBLE PRECISION NOT NULL DEFAULT 0;
        UPDATE appwrappers SET updated = EXTRACT(EPOCH FROM now());
        CREATE INDEX appwrappers_finished ON appwrappers(updated) WHERE phase IN ({_in(TERMINAL)});
        INSERT INTO meta(key, value) VALUES
            ('collected', '0'), ('collected_accounted', '0'),
            ('collected_emitted_gco2', '0'), ('collected_counterfactual_gco2', '0');
        """,
    ),
    Migration(
        4,
        "leader lease: one holder at a time runs the scheduling loop; the epoch fences a deposed one",
        """
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            expires REAL NOT NULL
        );
        """,
        """
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            epoch BIGINT NOT NULL,
            expires DOUBLE PRECISION NOT NULL
        );
        """,
    ),
    Migration(
        5,
        "quarantine: AppWrapper rows whose record no longer decodes, set aside with the error",
        """
        CREATE TABLE quarantine (
            id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            tenant TEXT NOT NULL,
            phase INTEGER NOT NULL,
            body BLOB NOT NULL,
            error TEXT NOT NULL,
            quarantined_at REAL NOT NULL
        );
        """,
        """
        CREATE TABLE quarantine (
            id TEXT PRIMARY KEY,
            seq BIGINT NOT NULL,
            tenant TEXT NOT NULL,
            phase INTEGER NOT NULL,
            body BYTEA NOT NULL,
            error TEXT NOT NULL,
            quarantined_at DOUBLE PRECISION NOT NULL
        );
        """,
    ),
)


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def pending(current: int, migrations: Sequence[Migration]) -> list[Migration]:
    """The migrations newer than `current`; refuses a database newer than this hub knows."""
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise RuntimeError(f"database schema version {current} is newer than this hub knows ({latest})")
    return [m for m in migrations if m.version > current]


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply every migration newer than the SQLite database, each in its own transaction; return the version."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
    for migration in pending(current, migrations):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version(version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("schema migrated", extra={"version": migration.version, "migration": migration.name})
        current = migration.version
    return current

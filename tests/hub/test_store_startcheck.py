"""What the store checks at open (issue 17, F9 and F10): a damaged SQLite file, a database another process
holds locked, one that cannot be written: each refused with one line (StoreRefused); the hub process exits
with that line and never prints READY."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime

import psycopg
import pytest

from services.hub.store import NewAppWrapper, SqliteStore, StoreRefused
from services.hub.store.postgres import PostgresStore
from tests.hub.test_store import new
from tests.support.sqlitelock import lock_held

NOW = datetime(2023, 6, 1, tzinfo=UTC)
PAGE = 4096


async def filled(path: str, count: int = 400) -> None:
    store = SqliteStore(path, now=lambda: NOW)
    await store.open()
    items: list[NewAppWrapper] = []
    for i in range(count):
        item = new(f"job-{i:04d}")
        item.message.name = "x" * 200
        items.append(item)
    await store.insert_app_wrappers(items)
    await store.close()


def corrupt(path: str, page: int, offset: int, length: int) -> None:
    """Overwrite part of one page (1-based) of the file with a byte pattern."""
    with open(path, "r+b") as f:
        f.seek((page - 1) * PAGE + offset)
        f.write(b"\x07" * length)


@pytest.mark.parametrize(
    ("page", "offset", "length", "found"),
    [
        (24, 1000, 2000, "out of order"),  # cells of a table leaf page: quick_check lists what it finds
        (30, 0, 8 * PAGE, "malformed"),  # whole pages: SQLite gives up reading
    ],
)
async def test_a_database_that_fails_quick_check_is_refused_with_one_line(
    tmp_path, page, offset, length, found
):
    path = str(tmp_path / "hub.db")
    await filled(path)
    corrupt(path, page, offset, length)
    with sqlite3.connect(path) as conn:  # the damage is real: SQLite itself finds it
        try:
            findings = conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            findings = [(str(exc),)]
    assert findings != [("ok",)] and found in str(findings)
    store = SqliteStore(path, now=lambda: NOW)
    with pytest.raises(StoreRefused) as refused:
        await store.open()
    message = str(refused.value)
    assert "\n" not in message and path in message and "refusing to start" in message, message
    assert found in message and ("integrity check" in message or "is damaged" in message), message


async def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    path = tmp_path / "hub.db"
    path.write_bytes(b"this is not SQLite" * 1000)
    with pytest.raises(StoreRefused, match="is damaged .*refusing to start"):
        await SqliteStore(str(path), now=lambda: NOW).open()


async def test_a_database_another_process_holds_locked_is_refused_in_the_lock_wait(tmp_path):
    path = str(tmp_path / "hub.db")
    await filled(path, 10)
    with lock_held(path):
        began = time.monotonic()
        with pytest.raises(StoreRefused, match="is locked by another process .*within 0.5 s"):
            await SqliteStore(path, now=lambda: NOW, start_lock_wait=0.5).open()
        assert time.monotonic() - began < 5
    store = SqliteStore(path, now=lambda: NOW, start_lock_wait=0.5)  # the lock gone, it opens
    await store.open()
    assert len(await store.active_app_wrappers()) == 10
    await store.close()


def test_the_hub_process_exits_with_one_line_and_no_ready_on_a_locked_database(tmp_path):
    path = str(tmp_path / "hub.db")
    with lock_held(path):
        env = {
            **os.environ,
            "CASPIAN_HUB_DB_PATH": path,
            "CASPIAN_HUB_PORT": "0",
            "CASPIAN_HUB_METRICS_PORT": "-1",
            "CASPIAN_HUB_LOG_LEVEL": "CRITICAL",
        }
        hub = subprocess.run(
            [sys.executable, "-m", "services.hub"], env=env, capture_output=True, text=True, timeout=60
        )
    assert hub.returncode == 1, hub.stderr
    assert "READY" not in hub.stdout
    lines = [line for line in hub.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, hub.stderr
    assert lines[0].startswith("hub not started: hub database ") and "locked by another process" in lines[0]


async def test_postgresql_read_only_or_locked_is_refused(postgres_url):
    first = PostgresStore(postgres_url, now=lambda: NOW)
    await first.open()
    await first.close()
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        async with conn.transaction():
            await conn.execute("LOCK TABLE meta IN EXCLUSIVE MODE")
            began = time.monotonic()
            with pytest.raises(StoreRefused, match=r"locked by another session .*within 0.5 s"):
                await PostgresStore(postgres_url, now=lambda: NOW, start_lock_wait=0.5).open()
            assert time.monotonic() - began < 5
        database = conn.info.dbname
        await conn.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    try:
        with pytest.raises(StoreRefused, match=r"cannot be written \(.*read-only transaction"):
            await PostgresStore(postgres_url, now=lambda: NOW, start_lock_wait=0.5).open()
    finally:
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
            await conn.execute("SET default_transaction_read_only = off")
            await conn.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')

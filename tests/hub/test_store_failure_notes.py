"""Cycle notes for the hub's own database failures (issue 17, F9): a local disk or lock error is worded as the
hub database's, never as another service's; anything else is left to the caller's own wording."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from services.hub.storagefaults import store_failure_note
from services.hub.store import StoreUnavailable


def test_a_real_lock_error_is_noted_as_the_hub_database(tmp_path):
    path = str(tmp_path / "hub.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    writer = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    with pytest.raises(sqlite3.OperationalError) as raised:
        writer.execute("INSERT INTO t VALUES (1)")
    holder.execute("ROLLBACK")
    note = store_failure_note(raised.value, "caching the forecast of KR")
    assert note is not None
    assert note.startswith("hub database while caching the forecast of KR: ")
    assert "locked by another process" in note and "carbon" not in note


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (sqlite3.OperationalError("disk I/O error"), "disk I/O error"),
        (sqlite3.OperationalError("database or disk is full"), "disk is full"),
        (OSError(errno.ENOSPC, "No space left on device"), "disk is full"),
        (StoreUnavailable("hub database unavailable: connection refused"), "connection refused"),
    ],
)
def test_store_failures_are_noted_as_the_hub_database(error, words):
    note = store_failure_note(error)
    assert note is not None and note.startswith("hub database: ") and words in note


@pytest.mark.parametrize("error", [ValueError("forecast has 3 values"), RuntimeError("carbon: UNAVAILABLE")])
def test_other_failures_are_not_the_database(error):
    assert store_failure_note(error) is None


async def test_a_cycle_that_cannot_cache_a_forecast_blames_the_hub_database_and_keeps_the_forecast(tmp_path):
    from datetime import UTC, datetime

    from services.hub.grid import Grid
    from services.hub.ports import Forecast
    from services.hub.scheduling.report import SchedulerConfig
    from services.hub.scheduling.snapshot import CarbonSnapshots

    now = datetime(2023, 6, 1, tzinfo=UTC)
    grid = Grid.at(now, 900, 4)

    class Carbon:
        async def forecast(self, zone, start, slot_seconds, slots):
            return Forecast(zone, start, slot_seconds, tuple(100.0 + i for i in range(slots)))

    class FullDisk:
        async def save_intensities(self, rows, keep_after):
            raise sqlite3.OperationalError("database or disk is full")

    snapshots = CarbonSnapshots(Carbon(), FullDisk(), SchedulerConfig())  # type: ignore[arg-type]
    zone = await snapshots._zone("KR", grid, now, cache=True)
    assert zone.values == [100.0, 101.0, 102.0, 103.0] and not zone.stale
    assert zone.note.startswith("hub database while caching the forecast of KR: ")
    assert "carbon KR" not in zone.note

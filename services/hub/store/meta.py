"""Hub-wide counters and caches in SQLite: the cycle number and the carbon-intensity cache."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from services.hub.store.records import Fence, IntensityRow


def by_zone(rows: Sequence[IntensityRow]) -> dict[str, list[IntensityRow]]:
    zones: dict[str, list[IntensityRow]] = {}
    for row in rows:
        zones.setdefault(row.zone, []).append(row)
    return zones


class SqliteMeta:
    # Provided by SqliteStore (sqlite.py), declared for type checkers.
    _write: Callable[..., Awaitable[Any]]
    _read: Callable[..., Awaitable[Any]]

    async def next_cycle(self, *, fence: Fence | None = None) -> int:
        def op(tx) -> int:
            tx.conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'cycle'")
            return int(tx.conn.execute("SELECT value FROM meta WHERE key = 'cycle'").fetchone()[0])

        return await self._write(op, fence)

    async def save_intensities(
        self, rows: Sequence[IntensityRow], keep_after: float, *, fence: Fence | None = None
    ) -> None:
        # Each cycle re-saves the whole horizon of every zone, and most of it has not changed: only rows
        # whose value or length differ are rewritten, the rest get the new fetch time (a cached forecast's
        # age is read from it). The bounds on `start` let every statement use the (zone, start) key
        # instead of scanning the table. Measured: 1.7 -> 1.1 ms per zone and cycle on a 35-day cache.
        def op(tx) -> None:
            for zone, zone_rows in by_zone(rows).items():
                low = min(r.start for r in zone_rows)
                high = max(r.start for r in zone_rows)
                cached = {
                    start: (seconds, value)
                    for start, seconds, value in tx.conn.execute(
                        "SELECT start, seconds, gco2_per_kwh FROM intensity_cache "
                        "WHERE zone = ? AND start >= ? AND start <= ?",
                        (zone, low, high),
                    )
                }
                changed = [r for r in zone_rows if cached.get(r.start) != (r.seconds, r.gco2_per_kwh)]
                tx.conn.executemany(
                    "INSERT OR REPLACE INTO intensity_cache(zone, start, seconds, gco2_per_kwh, fetched_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(r.zone, r.start, r.seconds, r.gco2_per_kwh, r.fetched_at) for r in changed],
                )
                fetched = max(r.fetched_at for r in zone_rows)
                tx.conn.execute(
                    "UPDATE intensity_cache SET fetched_at = ? WHERE zone = ? AND start >= ? AND start <= ? "
                    "AND fetched_at < ?",
                    (fetched, zone, low, high, fetched),
                )
            tx.conn.execute(
                "DELETE FROM intensity_cache WHERE start < ? AND start + seconds < ?",
                (keep_after, keep_after),
            )

        await self._write(op, fence)

    async def intensities(self, zone: str, start: float, end: float) -> list[IntensityRow]:
        def read(conn: sqlite3.Connection) -> list[IntensityRow]:
            rows = conn.execute(
                "SELECT zone, start, seconds, gco2_per_kwh, fetched_at FROM intensity_cache "
                "WHERE zone = ? AND start < ? AND start + seconds > ? ORDER BY start",
                (zone, end, start),
            ).fetchall()
            return [IntensityRow(*row) for row in rows]

        return await self._read(read)

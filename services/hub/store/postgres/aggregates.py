"""The change log, clusters, the cycle counter, the carbon cache and the leader lease in PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from caspian.v1 import common_pb2
from services.hub.store.changes import change_filters
from services.hub.store.leases import decide
from services.hub.store.meta import by_zone
from services.hub.store.postgres.engine import PgEngine, PgTx, one_row
from services.hub.store.records import Change, Fence, IntensityRow, Lease
from services.hub.store.rows import change_from_row


class PgChangeLog:
    # Provided by PostgresStore (store.py), declared for type checkers.
    _engine: PgEngine
    _write: Callable[..., Awaitable[Any]]

    async def changes_since(
        self, revision: int, limit: int, phases: Sequence[int] = (), tenant: str = ""
    ) -> list[Change]:
        where, params = change_filters(revision, phases, tenant, "%s")
        rows = await self._engine.read(
            f"SELECT revision, kind, previous_phase, body FROM changes WHERE {where} ORDER BY revision LIMIT %s",
            [*params, limit],
        )
        return [change_from_row(row) for row in rows]

    async def compacted_through(self) -> int:
        rows = await self._engine.read("SELECT value FROM meta WHERE key = 'compacted_through'")
        return int(rows[0][0])

    async def compact(self, keep: int, *, fence: Fence | None = None) -> int:
        """Drop change-log entries older than the newest `keep` revisions; return how many went."""

        async def op(tx: PgTx) -> int:
            cur = await tx.conn.execute("SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'revision'")
            through = (await one_row(cur))[0] - keep
            if through <= 0:
                return 0
            cur = await tx.conn.execute("DELETE FROM changes WHERE revision <= %s", (through,))
            gone = cur.rowcount
            await tx.conn.execute(
                "UPDATE meta SET value = %s WHERE key = 'compacted_through' AND CAST(value AS BIGINT) < %s",
                (str(through), through),
            )
            return gone

        return await self._write(op, fence)


class PgClusters:
    # Provided by PostgresStore (store.py), declared for type checkers.
    _engine: PgEngine
    _write: Callable[..., Awaitable[Any]]

    async def save_cluster(self, cluster: common_pb2.ClusterInfo) -> common_pb2.ClusterInfo:
        saved = common_pb2.ClusterInfo()
        saved.CopyFrom(cluster)

        async def op(tx: PgTx) -> common_pb2.ClusterInfo:
            await tx.conn.execute(
                "INSERT INTO clusters(name, revision, body) VALUES (%s, %s, %s) "
                "ON CONFLICT(name) DO UPDATE SET revision = excluded.revision, body = excluded.body",
                (saved.name, await tx.next_revision(), saved.SerializeToString()),
            )
            return saved

        return await self._write(op)

    async def delete_cluster(self, name: str) -> bool:
        async def op(tx: PgTx) -> bool:
            cur = await tx.conn.execute("DELETE FROM clusters WHERE name = %s", (name,))
            if cur.rowcount:
                await tx.next_revision()
            return bool(cur.rowcount)

        return await self._write(op)

    async def list_clusters(self) -> list[common_pb2.ClusterInfo]:
        rows = await self._engine.read("SELECT body FROM clusters ORDER BY name")
        return [common_pb2.ClusterInfo.FromString(body) for (body,) in rows]


class PgMeta:
    # Provided by PostgresStore (store.py), declared for type checkers.
    _engine: PgEngine
    _write: Callable[..., Awaitable[Any]]

    async def next_cycle(self, *, fence: Fence | None = None) -> int:
        async def op(tx: PgTx) -> int:
            cur = await tx.conn.execute(
                "UPDATE meta SET value = (CAST(value AS BIGINT) + 1)::text WHERE key = 'cycle' RETURNING value"
            )
            return int((await one_row(cur))[0])

        return await self._write(op, fence)

    async def save_intensities(
        self, rows: Sequence[IntensityRow], keep_after: float, *, fence: Fence | None = None
    ) -> None:
        # As in SQLite: only rows whose value or length changed are rewritten; the rest get the new fetch time.
        async def op(tx: PgTx) -> None:
            async with tx.conn.cursor() as cur:
                for zone, zone_rows in by_zone(rows).items():
                    low = min(r.start for r in zone_rows)
                    high = max(r.start for r in zone_rows)
                    await cur.execute(
                        "SELECT start, seconds, gco2_per_kwh FROM intensity_cache "
                        "WHERE zone = %s AND start >= %s AND start <= %s",
                        (zone, low, high),
                    )
                    cached = {start: (seconds, value) for start, seconds, value in await cur.fetchall()}
                    changed = [r for r in zone_rows if cached.get(r.start) != (r.seconds, r.gco2_per_kwh)]
                    if changed:
                        await cur.executemany(
                            "INSERT INTO intensity_cache(zone, start, seconds, gco2_per_kwh, fetched_at) "
                            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (zone, start) DO UPDATE SET "
                            "seconds = excluded.seconds, gco2_per_kwh = excluded.gco2_per_kwh, "
                            "fetched_at = excluded.fetched_at",
                            [(r.zone, r.start, r.seconds, r.gco2_per_kwh, r.fetched_at) for r in changed],
                        )
                    fetched = max(r.fetched_at for r in zone_rows)
                    await cur.execute(
                        "UPDATE intensity_cache SET fetched_at = %s WHERE zone = %s AND start >= %s "
                        "AND start <= %s AND fetched_at < %s",
                        (fetched, zone, low, high, fetched),
                    )
                await cur.execute(
                    "DELETE FROM intensity_cache WHERE start < %s AND start + seconds < %s",
                    (keep_after, keep_after),
                )

        await self._write(op, fence)

    async def intensities(self, zone: str, start: float, end: float) -> list[IntensityRow]:
        rows = await self._engine.read(
            "SELECT zone, start, seconds, gco2_per_kwh, fetched_at FROM intensity_cache "
            "WHERE zone = %s AND start < %s AND start + seconds > %s ORDER BY start",
            (zone, end, start),
        )
        return [IntensityRow(*row) for row in rows]


class PgLeases:
    # Provided by PostgresStore (store.py), declared for type checkers.
    _engine: PgEngine
    _write: Callable[..., Awaitable[Any]]

    async def acquire_or_renew(self, name: str, holder: str, now: float, ttl: float) -> Lease:
        async def op(tx: PgTx) -> Lease:
            # The row exists before it is locked, so two replicas asking at once queue on its lock.
            await tx.conn.execute(
                "INSERT INTO leases(name, holder, epoch, expires) VALUES (%s, '', 0, 0) ON CONFLICT DO NOTHING",
                (name,),
            )
            cur = await tx.conn.execute(
                "SELECT holder, epoch, expires FROM leases WHERE name = %s FOR UPDATE", (name,)
            )
            holder_now, epoch, expires = await one_row(cur)
            current = Lease(name, holder_now, epoch, expires) if epoch else None
            lease = decide(current, name, holder, now, ttl)
            if lease != current:
                await tx.conn.execute(
                    "UPDATE leases SET holder = %s, epoch = %s, expires = %s WHERE name = %s",
                    (lease.holder, lease.epoch, lease.expires, name),
                )
            return lease

        return await self._write(op)

    async def release(self, lease: Lease) -> bool:
        async def op(tx: PgTx) -> bool:
            cur = await tx.conn.execute(
                "UPDATE leases SET expires = 0 WHERE name = %s AND holder = %s AND epoch = %s",
                (lease.name, lease.holder, lease.epoch),
            )
            return bool(cur.rowcount)

        return await self._write(op)

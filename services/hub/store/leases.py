"""The leader lease in SQLite, and the rule every backend applies to take or renew it.

A lease row (name, holder, epoch, expires) rather than a lock held by a connection: a lease outlives no
holder that stops renewing it (a paused or partitioned leader loses it after its TTL, whatever its
connections do), and its epoch, which grows at every change of holder, is the fencing token the store checks
on every write the loop makes. Times are the callers' clocks: they decide only when a lease may be taken
over; safety comes from the epoch check in the store, not from clocks agreeing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from services.hub.store.records import Lease


def decide(current: Lease | None, name: str, holder: str, now: float, ttl: float) -> Lease:
    """The lease after `holder` asks for it at `now`: renewed, taken (a new epoch), or left to another."""
    if ttl <= 0:
        raise ValueError(f"lease ttl must be positive, got {ttl}")
    if current is None:
        return Lease(name, holder, 1, now + ttl)
    if current.held_by(holder, now):
        return Lease(name, holder, current.epoch, now + ttl)
    if now >= current.expires:
        return Lease(name, holder, current.epoch + 1, now + ttl)
    return current


class SqliteLeases:
    # Provided by SqliteStore (sqlite.py), declared for type checkers.
    _write: Callable[..., Awaitable[Any]]
    _read: Callable[..., Awaitable[Any]]

    async def acquire_or_renew(self, name: str, holder: str, now: float, ttl: float) -> Lease:
        def op(tx) -> Lease:
            row = tx.conn.execute(
                "SELECT holder, epoch, expires FROM leases WHERE name = ?", (name,)
            ).fetchone()
            current = Lease(name, *row) if row else None
            lease = decide(current, name, holder, now, ttl)
            if lease != current:
                tx.conn.execute(
                    "INSERT INTO leases(name, holder, epoch, expires) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO "
                    "UPDATE SET holder = excluded.holder, epoch = excluded.epoch, expires = excluded.expires",
                    (name, lease.holder, lease.epoch, lease.expires),
                )
            return lease

        return await self._write(op)

    async def release(self, lease: Lease) -> bool:
        def op(tx) -> bool:
            # Expired now, same epoch: the next holder takes it at once, with the next epoch.
            return bool(
                tx.conn.execute(
                    "UPDATE leases SET expires = 0 WHERE name = ? AND holder = ? AND epoch = ?",
                    (lease.name, lease.holder, lease.epoch),
                ).rowcount
            )

        return await self._write(op)

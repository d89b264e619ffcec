"""The store on PostgreSQL, for several hub replicas sharing one database."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import psycopg

from services.hub.store.engine import GroupCommitter
from services.hub.store.postgres.aggregates import PgChangeLog, PgClusters, PgLeases, PgMeta
from services.hub.store.postgres.appwrappers import PgAppWrappers
from services.hub.store.postgres.engine import PgEngine, PgOp, PgTx, one_row, reachable
from services.hub.store.postgres.follower import ChangeFollower
from services.hub.store.postgres.schema import migrate_postgres
from services.hub.store.quarantine import QuarantineListener
from services.hub.store.records import Change, CommitListener, Fence, StoreRefused, StoreUnavailable

log = logging.getLogger("caspian.hub.store")


class PostgresStore(PgAppWrappers, PgChangeLog, PgClusters, PgMeta, PgLeases):
    """The Store on a PostgreSQL database (`url`: postgresql://...). `now` stamps updated_at."""

    def __init__(
        self,
        url: str,
        *,
        now: Callable[[], Any],
        pool_size: int = 8,
        timeout: float = 5.0,
        poll_seconds: float = 1.0,
        start_lock_wait: float = 5.0,
    ):
        self.url = url
        self.start_lock_wait = start_lock_wait
        self.quarantine_listeners: list[QuarantineListener] = []
        self._engine = PgEngine(url, now=now, pool_size=pool_size, timeout=timeout)
        self._committer = GroupCommitter(self._engine.run_batch, self._after_commit)
        self._follower = ChangeFollower(url, self._all_changes_after, poll_seconds=poll_seconds)
        self.schema_version = 0

    async def open(self) -> None:
        try:
            await self._engine.open()
            async with self._engine.connection() as conn:
                async with self._refusing():
                    self.schema_version = await migrate_postgres(conn)
                    await self._probe_write(conn)
                cur = await conn.execute("SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'revision'")
                head = (await one_row(cur))[0]
                cur = await conn.execute("SELECT COUNT(*) FROM quarantine")
                held = (await one_row(cur))[0]
        except BaseException:
            await self._engine.close()  # no pool left retrying in the background of a hub that did not start
            raise
        if held:
            log.warning(
                "AppWrapper records in quarantine: their stored records could not be decoded",
                extra={"quarantined": held, "table": "quarantine"},
            )
        self._committer.start()
        self._follower.start(head)

    async def _probe_write(self, conn: psycopg.AsyncConnection) -> None:
        """Commit one small write, as every write will: a read-only or locked database is refused now."""
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{int(self.start_lock_wait * 1000)}ms'")
            await conn.execute(
                "INSERT INTO meta(key, value) VALUES ('opened_at', EXTRACT(EPOCH FROM now())::text) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            )

    @contextlib.asynccontextmanager
    async def _refusing(self) -> AsyncIterator[None]:
        """A database this hub cannot write becomes StoreRefused, one line (the URL is never shown)."""
        try:
            yield
        except psycopg.errors.LockNotAvailable as exc:
            raise StoreRefused(
                "hub database (PostgreSQL) is locked by another session (no write lock within "
                f"{self.start_lock_wait:g} s); refusing to start"
            ) from exc
        except (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege) as exc:
            reason = str(exc).strip().splitlines()[0][:120]
            raise StoreRefused(
                f"hub database (PostgreSQL) cannot be written ({reason}); refusing to start"
            ) from exc
        except psycopg.errors.DiskFull as exc:
            raise StoreRefused(
                "hub database (PostgreSQL) cannot be written: its disk is full; refusing to start"
            ) from exc

    async def close(self) -> None:
        await self._committer.stop()
        await self._follower.stop()
        await self._engine.close()

    def add_listener(self, listener: CommitListener) -> None:
        self._follower.listeners.append(listener)

    @property
    def head_revision(self) -> int:
        return self._follower.delivered

    async def _all_changes_after(self, revision: int, limit: int) -> list[Change]:
        return await self.changes_since(revision, limit)

    def _after_commit(self, changes: Sequence[Change]) -> None:
        """Listeners hear of changes from the follower, in revision order with other replicas' changes."""

    async def _write(self, op: PgOp, fence: Fence | None = None) -> Any:
        if fence is not None:
            inner = op

            async def fenced(tx: PgTx) -> Any:
                await tx.check_fence(fence)
                return await inner(tx)

            op = fenced
        result = await self._committer.submit(op)
        if self._engine.committed_head > self._follower.delivered:
            # Committed: this replica's listeners see it before the writer is answered, as with SQLite. If
            # the database is gone right after the commit, the follower delivers it once it is back.
            with contextlib.suppress(StoreUnavailable):
                async with reachable():
                    await self._follower.catch_up(self._engine.committed_head)
        return result

"""The store on PostgreSQL, for several hub replicas sharing one database."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from services.hub.store.engine import GroupCommitter
from services.hub.store.postgres.aggregates import PgChangeLog, PgClusters, PgLeases, PgMeta
from services.hub.store.postgres.appwrappers import PgAppWrappers, insert_new
from services.hub.store.postgres.coalesce import InsertCoalescer
from services.hub.store.postgres.engine import PgEngine, PgOp, PgTx, one_row, reachable
from services.hub.store.postgres.follower import ChangeFollower
from services.hub.store.postgres.schema import migrate_postgres
from services.hub.store.records import Change, CommitListener, Fence, StoreUnavailable


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
    ):
        self.url = url
        self._engine = PgEngine(url, now=now, pool_size=pool_size, timeout=timeout)
        self._committer = GroupCommitter(self._engine.run_batch, self._after_commit)
        self._follower = ChangeFollower(url, self._all_changes_after, poll_seconds=poll_seconds)
        self._inserts = InsertCoalescer(self._write, insert_new)
        self.schema_version = 0

    async def open(self) -> None:
        try:
            await self._engine.open()
            async with self._engine.connection() as conn:
                self.schema_version = await migrate_postgres(conn)
                cur = await conn.execute("SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'revision'")
                head = (await one_row(cur))[0]
        except BaseException:
            await self._engine.close()  # no pool left retrying in the background of a hub that did not start
            raise
        self._committer.start()
        self._follower.start(head)

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

"""PostgreSQL connections, write transactions and the one place revisions are allocated.

Writes go through the same group commit as SQLite (`engine.GroupCommitter`): one transaction per group, one
savepoint per op. A group is acknowledged only after COMMIT returns: acknowledged means committed.

Revisions come from the `meta` row 'revision', read FOR UPDATE by the first op of a transaction that needs
one and written back before COMMIT. The row lock is held until COMMIT, so the transactions that allocate
revisions, on every replica, commit one after another in revision order, and a rolled-back transaction gives
its revisions back. A reader of the change log therefore never sees revision N+1 before N has committed:
reading `revision > last ORDER BY revision` is gap-free without any bookkeeping of transactions in flight.
Every writer takes this lock before any row lock, so locks are always taken in one order and two groups
cannot deadlock. The price is that revision-taking writes are serialized across replicas; each holds the lock for one group
commit (many AppWrappers), and writes that take no revision (leases, the cycle counter, the carbon cache)
do not take it.

A hub paused between two statements of a transaction (SIGSTOP, a long GC pause, a frozen VM) keeps its row
locks, and with them every replica's writes and the leader lease. Each connection therefore sets
`idle_in_transaction_session_timeout` to the store's timeout: the server ends such a session, its transaction
rolls back (nothing of it was acknowledged) and the locks are free again.

Every failure to reach the database (server down or restarting, connection lost mid-transaction, no free
connection within the timeout) becomes `StoreUnavailable`; nothing of the failed group was acknowledged,
and the pool replaces broken connections on its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg_pool

from services.hub.store.engine import OpFailure
from services.hub.store.records import Change, Fence, Fenced, StoreUnavailable

log = logging.getLogger("caspian.hub.store")

CHANNEL = "caspian_hub_changes"


async def one_row(cur: psycopg.AsyncCursor) -> tuple:
    """The row a statement that always returns one (an aggregate, a key that migrations create) returned."""
    row = await cur.fetchone()
    if row is None:
        raise RuntimeError("expected a row, got none")
    return row


# The connection is gone, whatever the statement: the server is down or restarting, the session was ended
# (an idle transaction timed out), or no connection was free in time.
CONNECTION_LOST = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.errors.IdleInTransactionSessionTimeout,
)


@contextlib.asynccontextmanager
async def reachable() -> AsyncIterator[None]:
    """Turn a lost or refused database into StoreUnavailable, with the reason and no traceback."""
    try:
        yield
    except (*CONNECTION_LOST, psycopg_pool.PoolTimeout) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailable(f"hub database unavailable: {reason}") from exc


@dataclass
class PgTx:
    """One write transaction: allocates revisions and collects the changes it wrote."""

    conn: psycopg.AsyncConnection
    now: Any
    changes: list[Change] = field(default_factory=list)
    head: int | None = None  # the newest revision allocated, once the revision row is locked
    start_head: int | None = None
    locked: bool = False

    async def lock_revisions(self) -> None:
        """Take the revision row lock now (held to COMMIT): what this transaction reads next is up to date."""
        if not self.locked:
            cur = await self.conn.execute("SELECT value FROM meta WHERE key = 'revision' FOR UPDATE")
            value = int((await one_row(cur))[0])
            if self.head is None:
                self.head = self.start_head = value
            self.locked = True

    async def next_revision(self) -> int:
        await self.lock_revisions()
        assert self.head is not None
        self.head += 1
        return self.head

    async def check_fence(self, fence: Fence | None) -> None:
        if fence is None:
            return
        # FOR SHARE: a new holder's takeover (an UPDATE of this row) waits until this write has committed.
        cur = await self.conn.execute("SELECT epoch FROM leases WHERE name = %s FOR SHARE", (fence.name,))
        row = await cur.fetchone()
        current = row[0] if row else 0  # no lease taken yet: no epoch is current
        if current == 0 or current != fence.epoch:
            raise Fenced(
                f"lease {fence.name!r} is at epoch {current}; this write carries epoch {fence.epoch}"
            )

    def mark(self) -> tuple[int | None, int | None, bool, int]:
        return self.head, self.start_head, self.locked, len(self.changes)

    def undo_to(self, mark: tuple[int | None, int | None, bool, int]) -> None:
        self.head, self.start_head, self.locked, changed = mark
        del self.changes[changed:]


PgOp = Callable[[PgTx], Awaitable[Any]]


class PgEngine:
    """The pool, and running groups of ops in one transaction each."""

    def __init__(self, url: str, *, now: Callable[[], Any], pool_size: int = 8, timeout: float = 5.0):
        self.url = url
        self.timeout = timeout
        self._now = now
        # The newest revision this replica has committed (a transaction's head, once its COMMIT returned).
        self.committed_head = 0
        self.pool = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max(2, pool_size),
            kwargs={"autocommit": True},
            # A connection that died with a server restart is found and replaced before it is handed out.
            check=psycopg_pool.AsyncConnectionPool.check_connection,
            timeout=timeout,
            reconnect_timeout=0,  # keep trying forever: the server may come back at any time
            configure=self._configure,
            open=False,
            name="caspian-hub",
        )

    async def _configure(self, conn: psycopg.AsyncConnection) -> None:
        idle_ms = str(max(1, int(self.timeout * 1000)))
        await conn.execute("SELECT set_config('idle_in_transaction_session_timeout', %s, false)", (idle_ms,))

    async def open(self) -> None:
        async with reachable():
            await self.pool.open(wait=True, timeout=self.timeout)

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        async with reachable(), self.pool.connection(timeout=self.timeout) as conn:
            yield conn

    async def read(self, sql: str, params: Any = None) -> list[tuple]:
        async with self.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def run_batch(self, ops: list[PgOp | None]) -> tuple[list[Any], list[Change]]:
        async with self.connection() as conn:
            tx = PgTx(conn, self._now())
            results: list[Any] = []
            async with conn.transaction():
                for op in ops:
                    if op is None:
                        results.append(None)
                        continue
                    mark = tx.mark()
                    try:
                        async with conn.transaction():
                            results.append(await op(tx))
                    except CONNECTION_LOST:
                        raise  # the connection is gone: the whole group fails
                    except Exception as exc:  # noqa: BLE001 - this op alone is undone; the group goes on
                        tx.undo_to(mark)
                        results.append(OpFailure(exc))
                if tx.head is not None and tx.head != tx.start_head:
                    await conn.execute("UPDATE meta SET value = %s WHERE key = 'revision'", (str(tx.head),))
                    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(tx.head)))
            if tx.head is not None:
                self.committed_head = max(self.committed_head, tx.head)
            return results, tx.changes

"""The store on one SQLite file: the default, for one hub process (`make run`, tests, the evaluation).

- WAL journal: readers never block the writer and the writer never blocks readers.
- `synchronous=FULL` (the default, CASPIAN_HUB_DB_SYNCHRONOUS): in WAL mode it fsyncs the log on every commit,
  so a transaction the hub has acknowledged survives a crash of the process *and* a power loss. NORMAL would
  only survive a process crash. The fsync is paid once per group of writes (`engine.GroupCommitter`).
- One dedicated writer thread owns the only write connection; reads run on a small pool of reader threads,
  each with its own connection. No SQLite call runs on the event loop.
- The single writer allocates revisions in memory (`SqliteTx.next_revision`, the only place) and saves the
  head in `meta` with each commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from services.hub.store.appwrappers import SqliteAppWrappers
from services.hub.store.changes import SqliteChangeLog
from services.hub.store.clusters import SqliteClusters
from services.hub.store.engine import GroupCommitter, OpFailure, publish
from services.hub.store.leases import SqliteLeases
from services.hub.store.meta import SqliteMeta
from services.hub.store.quarantine import QuarantineListener
from services.hub.store.records import Change, CommitListener, Fence, Fenced, StoreRefused
from services.hub.store.schema import migrate
from services.hub.store.startcheck import check_integrity, probe_write, refusal

log = logging.getLogger("caspian.hub.store")

BUSY_TIMEOUT_MS = 30000


@dataclass
class SqliteTx:
    """One write transaction on the writer thread: allocates revisions and collects the changes to publish."""

    store: SqliteStore
    conn: sqlite3.Connection
    now: Any
    changes: list[Change] = field(default_factory=list)

    def next_revision(self) -> int:
        self.store._head += 1
        return self.store._head

    def check_fence(self, fence: Fence | None) -> None:
        if fence is None:
            return
        row = self.conn.execute("SELECT epoch FROM leases WHERE name = ?", (fence.name,)).fetchone()
        current = row[0] if row else 0  # no lease taken yet: no epoch is current
        if current == 0 or current != fence.epoch:
            raise Fenced(
                f"lease {fence.name!r} is at epoch {current}; this write carries epoch {fence.epoch}"
            )


class SqliteStore(SqliteAppWrappers, SqliteChangeLog, SqliteClusters, SqliteMeta, SqliteLeases):
    """The Store on one SQLite file. `now` stamps updated_at; `synchronous` is FULL, NORMAL or OFF;
    `start_lock_wait`: how long open() waits for another process's lock before it refuses (startcheck.py)."""

    def __init__(
        self,
        path: str,
        *,
        now: Callable[[], Any],
        synchronous: str = "FULL",
        readers: int = 2,
        start_lock_wait: float = 5.0,
    ):
        if synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ValueError(f"synchronous must be FULL, NORMAL or OFF, got {synchronous!r}")
        self.path = path
        self.synchronous = synchronous
        self._now = now
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="hub-store-writer")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="hub-store-reader")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._wconn: sqlite3.Connection | None = None
        self._head = 0
        self._listeners: list[CommitListener] = []
        self.quarantine_listeners: list[QuarantineListener] = []
        self.start_lock_wait = start_lock_wait
        self._committer = GroupCommitter(self._run_batch_in_writer, self._publish)
        self.schema_version = 0

    # -- lifecycle --------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open, check and migrate the file; StoreRefused (one line) if it is damaged, locked or unwritable."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer, self._open_writer)
        except BaseException:
            await loop.run_in_executor(self._writer, self._close_connections)
            raise
        self._committer.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _open_writer(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        try:
            conn = self._connect()
            conn.execute(f"PRAGMA busy_timeout = {int(self.start_lock_wait * 1000)}")
            check_integrity(conn, self.path)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreRefused(f"hub database {self.path}: could not turn on WAL (journal_mode={mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            self.schema_version = migrate(conn)
            probe_write(conn)
            self._head = int(conn.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()[0])
            held = conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise refusal(self.path, exc, self.start_lock_wait) from exc
        if held:
            log.warning(
                "AppWrapper records in quarantine: their stored records could not be decoded",
                extra={"quarantined": held, "table": "quarantine"},
            )
        self._wconn = conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
        return conn

    async def close(self) -> None:
        await self._committer.stop()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._checkpoint)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self._close_connections()

    def _close_connections(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()

    def _checkpoint(self) -> None:
        if self._wconn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._wconn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def add_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    @property
    def head_revision(self) -> int:
        return self._head

    def _publish(self, changes: Sequence[Change]) -> None:
        publish(self._listeners, changes)

    # -- writes and reads ------------------------------------------------------------------------------

    async def _write(self, op: Callable[[SqliteTx], Any], fence: Fence | None = None) -> Any:
        if fence is None:
            return await self._committer.submit(op)

        def fenced(tx: SqliteTx) -> Any:
            tx.check_fence(fence)
            return op(tx)

        return await self._committer.submit(fenced)

    async def _run_batch_in_writer(self, ops: list[Callable[[SqliteTx], Any] | None]):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._run_batch, ops)

    def _run_batch(self, ops: list[Callable[[SqliteTx], Any] | None]) -> tuple[list[Any], list[Change]]:
        conn = self._wconn
        assert conn is not None
        start_head = self._head
        tx = SqliteTx(self, conn, self._now())
        results: list[Any] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                if op is None:
                    results.append(None)
                    continue
                head, changed = self._head, len(tx.changes)
                conn.execute("SAVEPOINT op")
                try:
                    results.append(op(tx))
                    conn.execute("RELEASE op")
                except Exception as exc:  # noqa: BLE001 - this op alone is undone; the group goes on
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    self._head = head
                    del tx.changes[changed:]
                    results.append(OpFailure(exc))
            if self._head != start_head:
                conn.execute("UPDATE meta SET value = ? WHERE key = 'revision'", (str(self._head),))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._head = start_head
            raise
        return results, tx.changes

    async def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(self._reader()))

"""The change log in SQLite: every AppWrapper change at its revision, for WatchAppWrappers to resume from."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from services.hub.store.records import Change, Fence
from services.hub.store.rows import change_from_row


def change_filters(revision: int, phases: Sequence[int], tenant: str, mark: str) -> tuple[str, list[Any]]:
    """The WHERE clause of changes_since, with `mark` as the parameter placeholder."""
    clauses: list[str] = [f"revision > {mark}"]
    params: list[Any] = [revision]
    if phases:
        # Changes into and out of the phases: a watcher sees an AppWrapper enter and leave its filter.
        marks = ",".join([mark] * len(phases))
        clauses.append(f"(phase IN ({marks}) OR previous_phase IN ({marks}))")
        params.extend([*phases, *phases])
    if tenant:
        clauses.append(f"tenant = {mark}")
        params.append(tenant)
    return " AND ".join(clauses), params


class SqliteChangeLog:
    # Provided by SqliteStore (sqlite.py), declared for type checkers.
    _write: Callable[..., Awaitable[Any]]
    _read: Callable[..., Awaitable[Any]]
    _head: int

    async def changes_since(
        self, revision: int, limit: int, phases: Sequence[int] = (), tenant: str = ""
    ) -> list[Change]:
        where, params = change_filters(revision, phases, tenant, "?")

        def read(conn: sqlite3.Connection) -> list[Change]:
            rows = conn.execute(
                f"SELECT revision, kind, previous_phase, body FROM changes WHERE {where} ORDER BY revision LIMIT ?",
                [*params, limit],
            ).fetchall()
            return [change_from_row(row) for row in rows]

        return await self._read(read)

    async def compacted_through(self) -> int:
        def read(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'compacted_through'").fetchone()[0])

        return await self._read(read)

    async def compact(self, keep: int, *, fence: Fence | None = None) -> int:
        """Drop change-log entries older than the newest `keep` revisions; return how many went."""

        def op(tx) -> int:
            through = self._head - keep
            if through <= 0:
                return 0
            gone = tx.conn.execute("DELETE FROM changes WHERE revision <= ?", (through,)).rowcount
            tx.conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'compacted_through' AND CAST(value AS INTEGER) < ?",
                (str(through), through),
            )
            return gone

        return await self._write(op, fence)

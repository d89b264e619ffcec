"""Registered clusters in SQLite: each save takes a revision."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from caspian.v1 import common_pb2


class SqliteClusters:
    # Provided by SqliteStore (sqlite.py), declared for type checkers.
    _write: Callable[..., Awaitable[Any]]
    _read: Callable[..., Awaitable[Any]]

    async def save_cluster(self, cluster: common_pb2.ClusterInfo) -> common_pb2.ClusterInfo:
        saved = common_pb2.ClusterInfo()
        saved.CopyFrom(cluster)

        def op(tx) -> common_pb2.ClusterInfo:
            tx.conn.execute(
                "INSERT INTO clusters(name, revision, body) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET revision = excluded.revision, body = excluded.body",
                (saved.name, tx.next_revision(), saved.SerializeToString()),
            )
            return saved

        return await self._write(op)

    async def delete_cluster(self, name: str) -> bool:
        def op(tx) -> bool:
            gone = tx.conn.execute("DELETE FROM clusters WHERE name = ?", (name,)).rowcount
            if gone:
                tx.next_revision()
            return bool(gone)

        return await self._write(op)

    async def list_clusters(self) -> list[common_pb2.ClusterInfo]:
        def read(conn: sqlite3.Connection) -> list[common_pb2.ClusterInfo]:
            rows = conn.execute("SELECT body FROM clusters ORDER BY name").fetchall()
            return [common_pb2.ClusterInfo.FromString(body) for (body,) in rows]

        return await self._read(read)

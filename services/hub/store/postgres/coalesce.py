"""Concurrent insert calls share one insert op per group commit.

On PostgreSQL an op costs round trips (savepoint, look-up, insert, change log, release), and round trips, not
CPU, bound a group: 37 single-AppWrapper inserts took ~200 ms on the benchmark machine. Calls that arrive
while their predecessor's op has not started yet join it: one op inserts all of their AppWrappers with the
same few statements as one bulk call, and each call gets its own slice of the outcomes once the group has
committed. What an insert decides is per item (a repeated id answers with the first one), so sharing an op
changes no answer; only an op that fails outright (the database, a bug) fails every call in it, as a failed
commit always did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from services.hub.store.records import InsertOutcome, NewAppWrapper

Insert = Callable[[Any, Sequence[NewAppWrapper]], Awaitable[list[InsertOutcome]]]


class _Batch:
    def __init__(self) -> None:
        self.items: list[NewAppWrapper] = []
        self.task: asyncio.Future | None = None


class InsertCoalescer:
    def __init__(self, write: Callable[[Any], Awaitable[Any]], insert: Insert):
        self._write = write
        self._insert = insert
        self._open: _Batch | None = None  # the batch whose op has not started: new calls join it

    async def insert(self, items: Sequence[NewAppWrapper]) -> list[InsertOutcome]:
        batch = self._open
        if batch is None:
            batch = self._open = _Batch()
            # A task of its own: the write goes on (and the others get their answers) if this caller leaves.
            batch.task = asyncio.ensure_future(self._write(self._op(batch)))
            batch.task.add_done_callback(lambda task: self._finished(batch, task))
        begin = len(batch.items)
        batch.items.extend(items)
        end = len(batch.items)
        assert batch.task is not None
        outcomes = await asyncio.shield(batch.task)
        return outcomes[begin:end]

    def _finished(self, batch: _Batch, task: asyncio.Future) -> None:
        if self._open is batch:
            self._open = None  # its group failed before the op ran (the database was unreachable)
        if not task.cancelled():
            task.exception()  # retrieved here, so that a batch every caller left is not reported unretrieved

    def _op(self, batch: _Batch) -> Callable[[Any], Awaitable[list[InsertOutcome]]]:
        async def op(tx: Any) -> list[InsertOutcome]:
            if self._open is batch:
                self._open = None  # started: later calls make the next batch
            return await self._insert(tx, list(batch.items))

        return op

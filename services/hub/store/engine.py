"""Group commit: one writer task takes every write waiting in its queue and commits them in one transaction.

Many concurrent submissions, or a bulk stream, so share one commit (one fsync). Each write ("op") runs in its
own savepoint: an op that raises is undone alone and its caller gets the exception, the others commit. If the
commit itself fails, every caller in the group gets that error: nothing of the group was acknowledged. If it
failed because the database cannot be reached, the writes queued behind the group get that error too, at once,
so that a caller hears UNAVAILABLE within one timeout rather than one timeout per group queued ahead of it.

The engine knows nothing of SQL: a backend gives it `run_batch(ops) -> (results, changes)`, which runs the
ops in one transaction and returns each op's result (or `OpFailure`) and the changes to publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.common.tasks import cancel_and_wait
from services.hub.store.records import Change, StoreUnavailable

log = logging.getLogger("caspian.hub.store")

MAX_OPS_PER_COMMIT = 512
# Event-loop turns the writer waits, while more writes keep arriving, before it commits a group.
GATHER_ROUNDS = 4


@dataclass
class OpFailure:
    error: BaseException


RunBatch = Callable[[list[Any]], Awaitable[tuple[list[Any], list[Change]]]]
AfterCommit = Callable[[Sequence[Change]], None]


class GroupCommitter:
    """Queues ops and commits them in groups, in the order they were queued."""

    def __init__(self, run_batch: RunBatch, after_commit: AfterCommit, name: str = "hub-store-writer"):
        self._run_batch = run_batch
        self._after_commit = after_commit
        self._name = name
        self._ops: list[tuple[Any, asyncio.Future]] = []
        self._ops_ready: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._ops_ready = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        if self._task is None:
            return
        # Ops commit in order: once a no-op is through, everything queued before it is too.
        with contextlib.suppress(Exception):
            await self.submit(None)
        await cancel_and_wait(self._task)
        self._task = None
        self._ops_ready = None

    async def submit(self, op: Any) -> Any:
        """Queue `op` (None: a no-op) and return its result once its group is committed."""
        if self._ops_ready is None:
            raise RuntimeError("store is not open")
        future = asyncio.get_running_loop().create_future()
        self._ops.append((op, future))
        self._ops_ready.set()
        return await future

    async def _loop(self) -> None:
        assert self._ops_ready is not None
        while True:
            if not self._ops:
                self._ops_ready.clear()
                await self._ops_ready.wait()
            # Let the calls that are already runnable queue their writes too: a larger group per commit.
            for _ in range(GATHER_ROUNDS):
                queued = len(self._ops)
                await asyncio.sleep(0)
                if len(self._ops) == queued:
                    break
            batch = self._ops[:MAX_OPS_PER_COMMIT]
            del self._ops[:MAX_OPS_PER_COMMIT]
            try:
                results, changes = await self._run_batch([op for op, _ in batch])
            except Exception as exc:  # noqa: BLE001 - the commit failed: every writer in the group hears it
                log.warning("store commit failed", extra={"ops": len(batch), "error": str(exc)})
                if isinstance(exc, StoreUnavailable):
                    # The database cannot be reached: what queued meanwhile would wait as long again, one
                    # group after another. Refuse it now (nothing of it was written); callers retry.
                    batch.extend(self._ops)
                    self._ops.clear()
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if changes:
                try:
                    self._after_commit(changes)
                except Exception:  # noqa: BLE001 - publishing must not break the writer
                    log.exception("store listener failed")
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, OpFailure):
                    future.set_exception(result.error)
                else:
                    future.set_result(result)


def publish(listeners: Sequence[Callable[[Sequence[Change]], None]], changes: Sequence[Change]) -> None:
    for listener in listeners:
        try:
            listener(changes)
        except Exception:  # noqa: BLE001 - one listener must not stop the others
            log.exception("store listener failed")

"""Feeds the store's listeners from the change log, so every replica sees every replica's changes.

Listeners (the hub's watch broadcaster, phase counts, poke-on-submit) get changes only from here, read from
the `changes` table by revision: in revision order, each once, whichever replica wrote them. Reading
`revision > delivered` is gap-free because revision-taking transactions commit in revision order (see
`engine`). A commit NOTIFYs the channel; the follower LISTENs on a connection of its own and catches up at
each notification, and at least every `poll_seconds` in case one was missed (a reconnect). A replica's own
writes catch up before they are acknowledged, so its listeners have seen a change when its writer hears back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import psycopg

from services.common.tasks import cancel_and_wait
from services.hub.store.engine import publish
from services.hub.store.postgres.engine import CHANNEL
from services.hub.store.records import Change, CommitListener

log = logging.getLogger("caspian.hub.store")

_PAGE = 1000


class ChangeFollower:
    def __init__(
        self,
        url: str,
        read_after: Callable[[int, int], Awaitable[list[Change]]],
        *,
        poll_seconds: float = 1.0,
        backoff_max: float = 5.0,
    ):
        self._url = url
        self._read_after = read_after
        self._poll_seconds = poll_seconds
        self._backoff_max = backoff_max
        self.delivered = 0
        self.listeners: list[CommitListener] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()

    def start(self, delivered: int) -> None:
        self.delivered = delivered
        self._task = asyncio.create_task(self._run(), name="hub-store-change-follower")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def catch_up(self, through: int = 0) -> None:
        """Deliver every committed change after `delivered` (at least through `through`) to the listeners."""
        async with self._lock:
            if through and self.delivered >= through:
                return  # another writer of the same group caught up while this one waited for the lock
            while True:
                changes = await self._read_after(self.delivered, _PAGE)
                if changes:
                    self._deliver(changes)
                if len(changes) < _PAGE and self.delivered >= through:
                    return
                if not changes:
                    # `through` counts revisions that are not in the log (clusters): nothing more to read.
                    self.delivered = max(self.delivered, through)
                    return

    def _deliver(self, changes: Sequence[Change]) -> None:
        self.delivered = changes[-1].revision
        publish(self.listeners, changes)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    backoff = 0.1
                    await self.catch_up()  # after LISTEN: a commit from now on also wakes us
                    while True:
                        async for _ in conn.notifies(timeout=self._poll_seconds, stop_after=1):
                            pass
                        await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database went away: reconnect and catch up
                self.connected.clear()
                log.warning("change follower lost the database", extra={"error": str(exc).strip()[:200]})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max)

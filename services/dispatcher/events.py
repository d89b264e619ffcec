"""What a WatchJobEvents subscriber receives: the snapshot, a bookmark, then live Job and spoke events from a
bounded queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from services.common.errors import ResourceExhausted
from services.dispatcher.job_phase import JobPhase


@dataclass(frozen=True)
class JobEvent:
    app_wrapper_id: str
    cluster: str
    namespace: str
    job_name: str
    phase: JobPhase
    reason: str = ""
    start_time: datetime | None = None
    completion_time: datetime | None = None
    observed_at: datetime | None = None
    suspended_at: datetime | None = None
    resumed_at: datetime | None = None
    suspensions: int = 0
    interruptible: bool = False
    checkpointing: bool = False


@dataclass(frozen=True)
class ClusterEvent:
    cluster: str
    ready: bool
    reason: str = ""
    observed_at: datetime | None = None


@dataclass(frozen=True)
class Bookmark:
    """End of the snapshot."""


class Subscription:
    """One WatchJobEvents stream: the snapshot, a bookmark, then live events from a bounded queue."""

    def __init__(self, snapshot: list, maxsize: int):
        self.snapshot = snapshot
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)
        self.overflowed = False

    def push(self, event: JobEvent | ClusterEvent) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    async def events(self) -> AsyncIterator[JobEvent | ClusterEvent | Bookmark]:
        for event in self.snapshot:
            yield event
        yield Bookmark()
        while True:
            event = await self.queue.get()
            if event is None:
                raise ResourceExhausted(
                    "the event stream fell too far behind; reconnect for a fresh snapshot"
                )
            yield event

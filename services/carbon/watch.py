"""Fan-out of latest values to WatchIntensities subscribers.

One producer task per distinct interval reads each needed zone once per tick and offers the update to every
subscriber on that interval. Offering never waits: each subscriber has a bounded queue that drops its oldest
update when full, so a subscriber that stops reading only loses its own old updates and never slows the
producer or anyone else. `close()` ends every subscription, so streams finish cleanly on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from services.carbon.intensity import IntensityService
from services.carbon.metrics import CarbonMetrics
from services.carbon.model import Point, Source
from services.common.errors import InvalidArgument, ResourceExhausted, Unavailable

log = logging.getLogger("caspian.carbon.watch")


@dataclass(frozen=True)
class Update:
    point: Point
    source: Source


class Subscription:
    def __init__(self, zones: tuple[str, ...], interval: float, maxsize: int, on_drop: Callable[[], None]):
        self.zones = zones
        self.interval = interval
        self.maxsize = maxsize
        self.dropped = 0
        self.closed = False
        self._items: deque[Update] = deque()
        self._wakeup = asyncio.Event()
        self._on_drop = on_drop

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, update: Update) -> None:
        """Queue an update without waiting; when full, the oldest update goes."""
        if self.closed:
            return
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.dropped += 1
            self._on_drop()
        self._items.append(update)
        self._wakeup.set()

    async def next(self) -> Update | None:
        """The next update, or None once closed."""
        while not self._items and not self.closed:
            self._wakeup.clear()
            await self._wakeup.wait()
        if self.closed:
            return None
        return self._items.popleft()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()


class WatchHub:
    def __init__(
        self,
        service: IntensityService,
        metrics: CarbonMetrics,
        *,
        default_interval: float = 5.0,
        min_interval: float = 0.05,
        queue_size: int = 32,
        max_subscribers: int = 1000,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.service = service
        self.metrics = metrics
        self.default_interval = default_interval
        self.min_interval = min_interval
        self.queue_size = queue_size
        self.max_subscribers = max_subscribers
        self._sleep = sleep
        self._subscriptions: set[Subscription] = set()
        self._producers: dict[float, asyncio.Task[None]] = {}
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    async def subscribe(self, zones: Sequence[str], interval: float | None) -> Subscription:
        if self._closed:
            raise Unavailable("the carbon service is shutting down")
        for i, zone in enumerate(zones):
            self.service.provider_for(zone, field=f"zones[{i}]")
        chosen = tuple(dict.fromkeys(zones)) or tuple(self.service.providers)
        if interval is None:
            interval = self.default_interval
        if interval < self.min_interval:
            raise InvalidArgument(f"must be at least {self.min_interval}s, got {interval}s", field="interval")
        if len(self._subscriptions) >= self.max_subscribers:
            raise ResourceExhausted(f"at most {self.max_subscribers} WatchIntensities streams may be open")
        subscription = Subscription(chosen, interval, self.queue_size, self.metrics.watch_dropped.inc)
        self._subscriptions.add(subscription)
        self.metrics.watch_subscribers.set(len(self._subscriptions))
        # The current values go out at once; the producer sends the next ones each interval.
        for update in (await self._read(chosen)).values():
            subscription.offer(update)
        if not self._closed and interval not in self._producers:
            self._producers[interval] = asyncio.create_task(self._produce(interval))
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        self._subscriptions.discard(subscription)
        self.metrics.watch_subscribers.set(len(self._subscriptions))

    async def _read(self, zones: Sequence[str]) -> dict[str, Update]:
        results = await asyncio.gather(*(self.service.latest(z) for z in zones), return_exceptions=True)
        updates = {}
        for zone, result in zip(zones, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Unavailable):
                    log.error("watch read failed", exc_info=result, extra={"zone": zone})
                continue
            updates[zone] = Update(*result)
        return updates

    async def _produce(self, interval: float) -> None:
        try:
            while True:
                await self._sleep(interval)
                subscribers = [s for s in self._subscriptions if s.interval == interval]
                if not subscribers:
                    return
                zones = list(dict.fromkeys(z for s in subscribers for z in s.zones))
                updates = await self._read(zones)
                for subscription in subscribers:
                    for zone in subscription.zones:
                        if zone in updates:
                            subscription.offer(updates[zone])
        finally:
            if self._producers.get(interval) is asyncio.current_task():
                del self._producers[interval]

    async def close(self) -> None:
        """End every stream and stop the producers; idempotent."""
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.close()
        producers = list(self._producers.values())
        for task in producers:
            task.cancel()
        for task in producers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

"""The one clock definition every service shares.

- WallClock: real time.
- SimClock: simulated time that starts at `start` (a date inside the carbon traces) when the real clock read
  `anchor` (unix seconds), and runs `speedup` times faster. Processes given the same three values agree on
  "now" to within clock skew, so carbon replay, hub and spoke simulators move together.
- ManualClock: for tests; time moves only when told to.

Configured by CASPIAN_CLOCK_MODE (wall|sim), CASPIAN_CLOCK_START (ISO-8601), CASPIAN_CLOCK_SPEEDUP (float)
and CASPIAN_CLOCK_ANCHOR (unix seconds; the launcher sets it once for all processes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from services.common.settings import load_settings, one_of, positive, setting
from services.common.timeconv import parse_time


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of this clock's time."""
        ...

    @property
    def speedup(self) -> float: ...


class WallClock:
    speedup = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SimClock:
    def __init__(self, start: datetime, speedup: float, anchor: float | None = None):
        if speedup <= 0:
            raise ValueError("speedup must be above zero")
        self.start = start.astimezone(UTC)
        self._speedup = float(speedup)
        self.anchor = time.time() if anchor is None else float(anchor)

    @property
    def speedup(self) -> float:
        return self._speedup

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.anchor) * self._speedup)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._speedup)


class ManualClock:
    """A clock for tests: `advance` moves it and wakes sleepers whose time has come."""

    speedup = 1.0

    def __init__(self, start: datetime):
        self._now = start.astimezone(UTC)
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    def set(self, value: datetime) -> None:
        self._now = value.astimezone(UTC)
        self._wake()

    def advance(self, seconds: float) -> None:
        self.set(self._now + timedelta(seconds=seconds))

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        """Sleep until `seconds` after the time of the call, not of the first await: a task made from it
        (ensure_future) that first runs after an `advance` still wakes when its time has come."""
        return self._sleep_until(self._now + timedelta(seconds=max(seconds, 0.0)))

    async def _sleep_until(self, due: datetime) -> None:
        if due <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((due, fut))
        try:
            await fut
        finally:
            self._sleepers = [(t, f) for t, f in self._sleepers if f is not fut]

    def _wake(self) -> None:
        for due, fut in list(self._sleepers):
            if due <= self._now and not fut.done():
                fut.set_result(None)


@dataclass(frozen=True)
class ClockSettings:
    mode: str = setting("wall", one_of("wall", "sim"), "wall: real time; sim: simulated, accelerated time")
    start: str = setting("2023-06-01T00:00:00Z", None, "sim mode: the simulated time at the anchor")
    speedup: float = setting(720.0, positive, "sim mode: simulated seconds per real second")
    anchor: float | None = setting(None, None, "sim mode: unix time at which the sim clock read START")


def clock_from_settings(settings: ClockSettings) -> Clock:
    if settings.mode == "wall":
        return WallClock()
    return SimClock(parse_time(settings.start), settings.speedup, settings.anchor)


def load_clock_settings(env=None) -> ClockSettings:
    settings = load_settings(ClockSettings, "CASPIAN_CLOCK_", env)
    if settings.mode == "sim":
        try:
            parse_time(settings.start)
        except ValueError:
            from services.common.settings import SettingsError

            raise SettingsError(
                "CASPIAN_CLOCK_START", f"expected an ISO-8601 time, got {settings.start!r}"
            ) from None
    return settings

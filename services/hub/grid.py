"""The planning grid: the slots a cycle plans on, and cached intensities laid onto them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

from services.common.timeconv import TIME_TOLERANCE_SECONDS
from services.hub.store import IntensityRow
from services.optimizer import problem

_EPS = TIME_TOLERANCE_SECONDS


@dataclass(frozen=True)
class Grid:
    """Slot i covers [start + i*slot, start + (i+1)*slot)."""

    start: datetime
    slot_seconds: int
    slots: int

    @classmethod
    def at(cls, now: datetime, slot_seconds: int, slots: int) -> Grid:
        # The first slot starts at the next slot boundary, so no planned start lies in the past.
        start = math.ceil(now.timestamp() / slot_seconds - 1e-9) * slot_seconds
        return cls(datetime.fromtimestamp(start, UTC), slot_seconds, slots)

    # Read for every job of a cycle: computed once per grid (the grid never changes).
    @cached_property
    def start_s(self) -> float:
        return self.start.timestamp()

    @cached_property
    def end_s(self) -> float:
        return self.start_s + self.slots * self.slot_seconds

    def slot_start(self, index: int) -> datetime:
        return self.start + timedelta(seconds=index * self.slot_seconds)

    def first_start_at_or_after(self, t: float) -> float:
        """The earliest slot boundary (of this grid's alignment) at or after t, never before the grid."""
        boundary = math.ceil((t - self.start_s) / self.slot_seconds - 1e-9) * self.slot_seconds
        return self.start_s + max(0.0, boundary)

    def slot_index(self, t: float) -> int:
        return math.ceil((t - self.start_s) / self.slot_seconds - 1e-9)

    def span(self, t0: float, t1: float) -> tuple[int, int]:
        """The slots [first, end) that [t0, t1) touches, clipped to the grid; time before it counts as slot 0."""
        first = max(0, int((t0 - self.start_s) // self.slot_seconds))
        end = max(first + 1, -int(-(t1 - self.start_s - _EPS) // self.slot_seconds))
        return min(first, self.slots), min(end, self.slots)

    def domain(self) -> problem.Grid:
        """The same grid as the optimizer's domain type."""
        return problem.Grid(start=self.start, slot=timedelta(seconds=self.slot_seconds), slots=self.slots)


def align(rows: Sequence[IntensityRow], grid: Grid) -> list[float]:
    """Cached intensities onto the grid; slots the cache does not reach take the nearest known value."""
    values: list[float | None] = []
    for i in range(grid.slots):
        t0 = grid.start_s + i * grid.slot_seconds
        t1 = t0 + grid.slot_seconds
        weighted = covered = 0.0
        for row in rows:
            overlap = min(t1, row.start + row.seconds) - max(t0, row.start)
            if overlap > 0:
                weighted += overlap * row.gco2_per_kwh
                covered += overlap
        values.append(weighted / covered if covered else None)
    last = next((v for v in values if v is not None), 0.0)
    filled = []
    for v in values:
        last = v if v is not None else last
        filled.append(last)
    return filled

"""Carbon domain types and the resampling of step series onto a forecast grid. No gRPC here."""

from __future__ import annotations

import enum
import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from services.common.errors import InvalidArgument

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class SourceKind(enum.Enum):
    MEASURED = "measured"
    ESTIMATED = "estimated"
    FORECAST = "forecast"
    SYNTHETIC = "synthetic"


class Aggregation(enum.Enum):
    POINT = "point"
    MEAN = "mean"


@dataclass(frozen=True)
class Step:
    """A value that holds over [start, end): one row of a trace, one API data point, one synthetic hour."""

    start: datetime
    end: datetime
    value: float
    estimated: bool = False
    # True when the value is a prediction (it lies after the time it was issued).
    forecast: bool = False


@dataclass(frozen=True)
class Series:
    """Steps in time order covering a requested span, and the time of the newest real data behind them."""

    steps: list[Step]
    data_time: datetime
    detail: str = ""


@dataclass(frozen=True)
class Reading:
    """A zone's current value: the step that holds now."""

    step: Step
    data_time: datetime
    detail: str = ""


@dataclass(frozen=True)
class Point:
    zone: str
    time: datetime
    duration: timedelta
    value: float
    aggregation: Aggregation = Aggregation.MEAN
    estimated: bool = False


@dataclass(frozen=True)
class Source:
    provider: str
    kind: SourceKind
    synthetic: bool
    stale: bool
    age: timedelta
    detail: str = ""


@dataclass(frozen=True)
class Grid:
    """Slot i covers [start + i*slot, start + (i+1)*slot)."""

    start: datetime
    slot: timedelta
    slots: int

    @property
    def end(self) -> datetime:
        return self.start + self.slot * self.slots

    def slot_start(self, i: int) -> datetime:
        return self.start + self.slot * i


@dataclass(frozen=True)
class ZoneInfo:
    zone: str
    provider: str
    synthetic: bool
    detail: str


@dataclass(frozen=True)
class Forecast:
    zone: str
    points: list[Point]
    source: Source
    error_model: str
    # One per point: the forecast's typical relative error at that point's lead time (0: known).
    relative_spread: list[float] = field(default_factory=list)
    # One per point: the shrinkage estimate (services/carbon/estimate.py); the point's value where none.
    estimate: list[float] = field(default_factory=list)


def floor_time(t: datetime, step: timedelta) -> datetime:
    """The latest multiple of `step` since the Unix epoch at or before t (e.g. the current slot boundary)."""
    micros = (t - EPOCH) // timedelta(microseconds=1)
    unit = step // timedelta(microseconds=1)
    return EPOCH + timedelta(microseconds=(micros // unit) * unit)


def make_grid(
    start: datetime | None, slot: timedelta, slots: int, now: datetime, max_slots: int, max_horizon: timedelta
) -> Grid:
    """Check a forecast request's grid; unset start means the current slot boundary."""
    if slot <= timedelta(0):
        raise InvalidArgument("slot length must be above zero", field="slot")
    if slot < timedelta(seconds=1):
        raise InvalidArgument("slot length must be at least one second", field="slot")
    if slots <= 0:
        raise InvalidArgument(f"must be at least 1, got {slots}", field="slots")
    if slots > max_slots:
        raise InvalidArgument(f"must be at most {max_slots}, got {slots}", field="slots")
    if slot * slots > max_horizon:
        raise InvalidArgument(
            f"{slots} slots of {slot} span more than the maximum horizon of {max_horizon}", field="slots"
        )
    return Grid(floor_time(now, slot) if start is None else start.astimezone(UTC), slot, slots)


def mean_grid(zone: str, steps: Sequence[Step], grid: Grid) -> list[Point]:
    """Resample steps onto the grid: each point is the time-weighted mean over its slot.

    The weights are each step's share of the covered part of the slot, so a slot inside one step gets that
    step's value exactly. `estimated` is set when any step under the slot is estimated.
    """
    points: list[Point] = []
    j = 0
    n = len(steps)
    for i in range(grid.slots):
        a = grid.slot_start(i)
        b = a + grid.slot
        while j < n and steps[j].end <= a:
            j += 1
        parts: list[tuple[float, float]] = []
        estimated = False
        k = j
        while k < n and steps[k].start < b:
            overlap = (min(b, steps[k].end) - max(a, steps[k].start)).total_seconds()
            if overlap > 0:
                parts.append((steps[k].value, overlap))
                estimated = estimated or steps[k].estimated
            k += 1
        covered = math.fsum(w for _, w in parts)
        if covered <= 0:
            raise ValueError(f"no data for slot {i} [{a}, {b})")
        value = math.fsum(v * (w / covered) for v, w in parts)
        points.append(Point(zone, a, grid.slot, value, Aggregation.MEAN, estimated))
    return points


def clip_steps(steps: Sequence[Step], start: datetime, end: datetime) -> list[Step]:
    out = []
    for step in steps:
        if step.end <= start or step.start >= end:
            continue
        if step.start < start or step.end > end:
            step = replace(step, start=max(step.start, start), end=min(step.end, end))
        out.append(step)
    return out


def fill_gaps(
    steps: Sequence[Step], start: datetime, end: datetime, unit: timedelta = HOUR, period: timedelta = DAY
) -> list[Step]:
    """Cover [start, end) from `steps`, filling uncovered time unit by unit.

    A gap takes the value held one `period` earlier (or later, or k periods away) where the steps cover it:
    seasonal persistence. With no such time, the nearest covered value is used. Filled steps are flagged
    estimated and forecast. Raises ValueError when `steps` is empty.
    """
    ordered = sorted((s for s in steps if s.end > s.start), key=lambda s: s.start)
    if not ordered:
        raise ValueError("nothing to fill from")
    lo, hi = ordered[0].start, ordered[-1].end
    starts = [s.start for s in ordered]

    def at(t: datetime) -> Step | None:
        i = bisect_right(starts, t) - 1
        if i >= 0 and ordered[i].start <= t < ordered[i].end:
            return ordered[i]
        return None

    def filled(t: datetime) -> float:
        reach = max(1, math.ceil((hi - lo) / period) + 1)
        for k in range(1, reach + 1):
            for candidate in (t - period * k, t + period * k):
                found = at(candidate)
                if found is not None:
                    return found.value
        nearest = ordered[0] if t < lo else ordered[-1]
        if lo <= t < hi:
            nearest = min(ordered, key=lambda s: min(abs(s.start - t), abs(s.end - t)))
        return nearest.value

    out: list[Step] = []
    t = start
    while t < end:
        step = at(t)
        if step is not None:
            piece_end = min(step.end, end)
            out.append(replace(step, start=t, end=piece_end))
            t = piece_end
            continue
        nxt = min(floor_time(t, unit) + unit, end)
        i = bisect_right(starts, t)
        if i < len(starts):
            nxt = min(nxt, starts[i])
        out.append(Step(t, nxt, filled(t), estimated=True, forecast=True))
        t = nxt
    return out

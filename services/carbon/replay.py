"""Replay of Electricity Maps CSV exports, usable in-process (no server) by offline evaluations.

    trace = Trace.load("data/carbon/electricitymaps/KR_2023_hourly.csv")   # or Trace.bundled("KR")
    trace.mean(start, end)                       # time-weighted mean gCO2/kWh over [start, end)
    forecast_grid(trace, start, slot, slots, issued_at=now, error_model=EmpiricalForecastError.load(...))

A row holds its value from its `Datetime (UTC)` until the next row's (the last row for the median row
spacing): Electricity Maps hourly values are means over the hour that starts at the timestamp.

Clock mapping. Times inside the trace's span replay as they are (a simulated clock started in 2023 reads the
2023 trace directly). Any other time t keeps its offset from 1 January of its own year and moves to the trace's
first year: 2025-03-05T14:30Z reads the row of 2023-03-05T14:00Z. Where that still falls outside the trace
(31 December of a leap year, or a trace shorter than a year) it wraps around the trace's span.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from statistics import median

from services.carbon.forecast_error import (
    EmpiricalForecastError,
    ForecastErrorModel,
    PerfectForecast,
    load_error_model,
)
from services.carbon.model import Point, Step, make_grid, mean_grid
from services.carbon.zones import REPO_ROOT, display_path, resolve_data_path
from services.common.timeconv import parse_time

__all__ = [
    "EmpiricalForecastError",
    "PerfectForecast",
    "Trace",
    "TraceClockMap",
    "TraceStep",
    "apply_error_model",
    "forecast_grid",
    "load_error_model",
]

TIME_COLUMN = "Datetime (UTC)"
VALUE_COLUMNS = {
    "direct": "Carbon Intensity gCO₂eq/kWh (direct)",
    "lifecycle": "Carbon Intensity gCO₂eq/kWh (LCA)",
}
ESTIMATED_COLUMN = "Data Estimated"
ZONE_COLUMN = "Zone Id"
SOURCE_COLUMN = "Data Source"
BUNDLED_TRACES = REPO_ROOT / "data" / "carbon" / "electricitymaps"


@dataclass(frozen=True)
class TraceStep(Step):
    """A step of a replayed trace, in wall time; `row` is its row in the trace, `row_start` the wall time the
    row starts at (a step may be clipped to a requested span)."""

    row: int = -1
    row_start: datetime | None = None


class TraceClockMap:
    """Maps wall (or simulated) time into a trace spanning [first, end): see the module docstring."""

    def __init__(self, first: datetime, end: datetime):
        if end <= first:
            raise ValueError("a trace must span some time")
        self.first = first
        self.end = end
        self.span = end - first
        self._year_start = datetime(first.year, 1, 1, tzinfo=UTC)

    def to_trace(self, t: datetime) -> datetime:
        t = t.astimezone(UTC)
        if self.first <= t < self.end:
            return t
        moved = self._year_start + (t - datetime(t.year, 1, 1, tzinfo=UTC))
        return self.first + (moved - self.first) % self.span

    def pieces(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime, timedelta]]:
        """Split [start, end) into pieces on which trace time = wall time + a constant shift."""
        cur = start.astimezone(UTC)
        end = end.astimezone(UTC)
        while cur < end:
            mapped = self.to_trace(cur)
            candidates = [end, datetime(cur.year + 1, 1, 1, tzinfo=UTC), cur + (self.end - mapped)]
            candidates += [edge for edge in (self.first, self.end) if edge > cur]
            nxt = min(c for c in candidates if c > cur)
            yield cur, nxt, mapped - cur
            cur = nxt


@dataclass
class Trace:
    path: Path
    zone: str
    emission_factor: str
    starts: list[datetime]
    values: list[float]
    estimated: list[bool]
    resolution: timedelta
    data_source: str = ""

    @classmethod
    def load(cls, path: str | Path, emission_factor: str = "direct") -> Trace:
        """Read an Electricity Maps CSV export (the full export or the compact bundled copy).

        A content is parsed once: every service start, zone check and test reads the same bundled traces, and
        parsing is most of their cost. Each call gets its own lists."""
        if emission_factor not in VALUE_COLUMNS:
            raise ValueError(f"emission_factor must be one of {', '.join(VALUE_COLUMNS)}")
        resolved = resolve_data_path(path)
        text = resolved.read_bytes().decode("utf-8-sig")
        zone, source, starts, values, estimated, resolution = _parse(resolved, emission_factor, text)
        return cls(
            resolved, zone, emission_factor, list(starts), list(values), list(estimated), resolution, source
        )

    @classmethod
    def bundled(cls, zone: str, emission_factor: str = "direct") -> Trace:
        """A bundled 2023 trace by zone key: KR, JP-TK, US-CAL-CISO, DE-LU or GB."""
        return cls.load(BUNDLED_TRACES / f"{zone}_2023_hourly.csv", emission_factor)

    @property
    def first(self) -> datetime:
        return self.starts[0]

    @property
    def end(self) -> datetime:
        return self.starts[-1] + self.resolution

    @property
    def name(self) -> str:
        return display_path(self.path)

    @cached_property
    def clock_map(self) -> TraceClockMap:
        return TraceClockMap(self.first, self.end)

    def to_trace(self, t: datetime) -> datetime:
        return self.clock_map.to_trace(t)

    def row_end(self, row: int) -> datetime:
        return self.starts[row + 1] if row + 1 < len(self.starts) else self.end

    def row_at(self, trace_time: datetime) -> int:
        """The row holding at a time already in trace time."""
        return max(0, bisect_right(self.starts, trace_time) - 1)

    def step_at(self, t: datetime) -> TraceStep:
        """The whole row holding at wall time t, placed in wall time."""
        mapped = self.to_trace(t)
        row = self.row_at(mapped)
        start = t - (mapped - self.starts[row])
        return TraceStep(
            start,
            start + (self.row_end(row) - self.starts[row]),
            self.values[row],
            self.estimated[row],
            row=row,
            row_start=start,
        )

    def value_at(self, t: datetime) -> float:
        return self.values[self.row_at(self.to_trace(t))]

    def steps(self, start: datetime, end: datetime) -> list[TraceStep]:
        """Rows over wall time [start, end), clipped to it, in order."""
        out: list[TraceStep] = []
        for wall_a, wall_b, shift in self.clock_map.pieces(start, end):
            a, b = wall_a + shift, wall_b + shift
            row = self.row_at(a)
            while row < len(self.starts) and self.starts[row] < b:
                row_a, row_b = self.starts[row], self.row_end(row)
                lo, hi = max(row_a, a), min(row_b, b)
                if hi > lo:
                    out.append(
                        TraceStep(
                            lo - shift,
                            hi - shift,
                            self.values[row],
                            self.estimated[row],
                            row=row,
                            row_start=row_a - shift,
                        )
                    )
                row += 1
        return out

    def mean(self, start: datetime, end: datetime) -> float:
        """Time-weighted mean intensity over wall time [start, end)."""
        if end <= start:
            raise ValueError("end must be after start")
        steps = self.steps(start, end)
        total = (end - start).total_seconds()
        return math.fsum(s.value * ((s.end - s.start).total_seconds() / total) for s in steps)


def apply_error_model(
    steps: list[TraceStep], zone: str, issued_at: datetime, model: ForecastErrorModel
) -> list[TraceStep]:
    """Rows starting at or after `issued_at` become forecasts issued then; earlier rows stay as measured."""
    out = []
    for step in steps:
        row_start = step.row_start or step.start
        if row_start < issued_at:
            out.append(step)
            continue
        value = model.forecast_value(zone, step.row, step.value, row_start - issued_at)
        out.append(replace(step, value=value, forecast=True))
    return out


def forecast_grid(
    trace: Trace,
    start: datetime,
    slot: timedelta,
    slots: int,
    *,
    issued_at: datetime | None = None,
    error_model: ForecastErrorModel | None = None,
    zone: str | None = None,
) -> list[Point]:
    """Points on the grid [start + i*slot, start + (i+1)*slot), each the mean over its slot.

    With `issued_at` and an error model, rows from `issued_at` on carry that model's forecast error.
    """
    grid = make_grid(start, slot, slots, start, max_slots=slots, max_horizon=slot * slots)
    zone = zone or trace.zone
    steps = trace.steps(grid.start, grid.end)
    if issued_at is not None:
        steps = apply_error_model(steps, zone, issued_at, error_model or PerfectForecast())
    return mean_grid(zone, steps, grid)


@functools.lru_cache(maxsize=16)
def _parse(
    resolved: Path, emission_factor: str, text: str
) -> tuple[str, str, tuple[datetime, ...], tuple[float, ...], tuple[bool, ...], timedelta]:
    """The rows of a trace file's `text` as read by `Trace.load` (`resolved` names it in errors)."""
    value_column = VALUE_COLUMNS[emission_factor]
    rows: list[tuple[datetime, float | None, bool]] = []
    zone = source = ""
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {TIME_COLUMN, value_column} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{resolved}: not an Electricity Maps export, missing {sorted(missing)}")
        for line, record in enumerate(reader, start=2):
            try:
                when = parse_time(record[TIME_COLUMN])
            except (TypeError, ValueError):
                raise ValueError(f"{resolved}:{line}: bad time {record[TIME_COLUMN]!r}") from None
            raw = (record.get(value_column) or "").strip()
            value = float(raw) if raw else None
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{resolved}:{line}: bad intensity {raw!r}")
            flag = (record.get(ESTIMATED_COLUMN) or "").strip().lower() in {"true", "1", "yes"}
            rows.append((when, value, flag))
            zone = zone or (record.get(ZONE_COLUMN) or "").strip()
            source = source or (record.get(SOURCE_COLUMN) or "").strip()
    rows.sort(key=lambda r: r[0])
    if not rows or all(v is None for _, v, _ in rows):
        raise ValueError(f"{resolved}: no intensity values")
    starts: list[datetime] = []
    values: list[float] = []
    estimated: list[bool] = []
    previous = next(v for _, v, _ in rows if v is not None)
    for when, value, flag in rows:
        if starts and when == starts[-1]:
            raise ValueError(f"{resolved}: duplicate time {when.isoformat()}")
        # A row without a value carries the previous value forward, flagged estimated.
        starts.append(when)
        values.append(previous if value is None else value)
        estimated.append(flag or value is None)
        previous = values[-1]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    resolution = timedelta(seconds=median(g.total_seconds() for g in gaps)) if gaps else timedelta(hours=1)
    return zone or resolved.stem, source, tuple(starts), tuple(values), tuple(estimated), resolution

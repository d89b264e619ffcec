"""Forecast modes beyond `perfect` and `dacf`: real issued forecasts, stress modes, and the shrinkage estimate.

Every mode is a forecast-error model (`forecast_value(zone, row, actual, lead)`, `spread(lead)`) over the
instance's true traces, so the hub sees it through the same carbon port (`carbon.TraceCarbon`).

- `real`: the real day-ahead forecasts of the DACF files (`data/carbon/forecasts/*_dayahead_2021.csv.gz`),
  replayed as issued against the real actuals of the same file. DACF issues a UTC day's forecast at that
  day's 00:00 UTC (the convention of the bundled error profile), so a point of day D is known as forecast
  from D 00:00 on. A point of a later day, not forecast yet when the hub asks, gets the latest issued
  forecast for the same hour of day (seasonal persistence of the forecast, as the carbon service extends an
  API forecast beyond its end). Only the zones of these files (`CISO-2021`, `DE-2021`) have it.
- `dacf2x`: twice the dacf model's relative error (the same draws, doubled): a stress setting.
- `persistence`: tomorrow = today: the last measured value at the same hour of day.
- `<mode>+est`: the mode's forecast through `services.carbon.estimate.ShrinkageEstimate`, fitted on the
  tuning seeds' weeks of the same zones with the same mode (`estimates.py`), never on the reported weeks.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from services.carbon.estimate import ShrinkageEstimate, prior_days
from services.carbon.forecast_error import (
    EmpiricalForecastError,
    ForecastErrorModel,
    PerfectForecast,
    load_error_model,
)
from services.carbon.replay import Trace
from services.common.timeconv import parse_time

ROOT = Path(__file__).resolve().parents[2]
FORECAST_DIR = ROOT / "data" / "carbon" / "forecasts"
# Evaluation zone -> file region. The zones are named apart from the Electricity Maps ones: other data, 2021.
REAL_FORECAST_ZONES = {"CISO-2021": "CISO", "DE-2021": "DE"}
HOUR = timedelta(hours=1)
ERROR_PROFILE = FORECAST_DIR / "dacf_error_profile.json"
BASE_MODES = ("perfect", "dacf", "dacf2x", "persistence", "real")
ESTIMATE_SUFFIX = "+est"


@cache
def _dayahead(zone: str) -> tuple[tuple[datetime, ...], tuple[float, ...], tuple[float, ...]]:
    """(hour starts, actuals, day-ahead forecasts) of a zone's DACF file, in time order."""
    region = REAL_FORECAST_ZONES[zone]
    path = FORECAST_DIR / f"{region}_dayahead_2021.csv.gz"
    rows = []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        for record in csv.DictReader(fh):
            when = parse_time(record["UTC time"].replace(" ", "T").removesuffix("+00:00") + "Z")
            rows.append((when, float(record["carbon_intensity"]), float(record["carbon_from_src_forecasts"])))
    rows.sort(key=lambda r: r[0])
    for a, b in zip(rows, rows[1:], strict=False):
        if b[0] - a[0] != HOUR:
            raise ValueError(f"{path}: rows must be hourly without gaps ({a[0]} -> {b[0]})")
    return tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows)


@cache
def dayahead_trace(zone: str) -> Trace:
    """The real actuals of a DACF file as a replayable trace."""
    starts, actuals, _ = _dayahead(zone)
    return Trace(
        path=FORECAST_DIR / f"{REAL_FORECAST_ZONES[zone]}_dayahead_2021.csv.gz",
        zone=zone,
        emission_factor="direct",
        starts=list(starts),
        values=list(actuals),
        estimated=[False] * len(starts),
        resolution=HOUR,
        data_source="DACF",
    )


class RealDayAhead:
    """The DACF files' forecasts as issued (see the module docstring); the spread is the bundled profile's,
    which was measured on these same files."""

    name = "real-dayahead"

    def __init__(self, spread_model: ForecastErrorModel):
        self._spread = spread_model

    def forecast_value(self, zone: str, row: int, actual: float, lead: timedelta) -> float:
        if zone not in REAL_FORECAST_ZONES:
            raise ValueError(f"zone {zone!r} has no real forecasts; only {', '.join(REAL_FORECAST_ZONES)}")
        starts, _, forecasts = _dayahead(zone)
        target = starts[row]
        issued = target - lead
        issued_day = issued.replace(hour=0, minute=0, second=0, microsecond=0)
        days_ahead = (target.replace(hour=0, minute=0, second=0, microsecond=0) - issued_day).days
        # Day D's forecast exists from D 00:00; a later day takes the latest issued day's value at its hour.
        return forecasts[row - 24 * max(0, days_ahead)]

    def spread(self, lead: timedelta) -> float:
        return self._spread.spread(lead)


class ScaledError:
    """An empirical model's relative error times `factor` (same draws)."""

    def __init__(self, inner: EmpiricalForecastError, factor: float):
        self.inner = inner
        self.factor = factor
        self.name = f"{inner.name}x{factor:g}"
        self.bucket = inner.bucket  # its forecast depends on the lead only through the bucket

    def forecast_value(self, zone: str, row: int, actual: float, lead: timedelta) -> float:
        return max(0.0, actual * (1.0 + self.factor * self.inner.relative_error(zone, row, lead)))

    def spread(self, lead: timedelta) -> float:
        return self.factor * self.inner.spread(lead)


class Persistence:
    """Tomorrow = today: a point `lead` ahead gets the value measured whole days earlier at the same hour.
    Its spread is not modelled: it reports the dacf profile's."""

    name = "persistence"

    def __init__(self, trace_of: Callable[[str], Trace], spread_model: ForecastErrorModel):
        self.trace_of = trace_of
        self._spread = spread_model

    def forecast_value(self, zone: str, row: int, actual: float, lead: timedelta) -> float:
        values = self.trace_of(zone).values
        return values[(row - 24 * prior_days(lead)) % len(values)]

    def spread(self, lead: timedelta) -> float:
        return self._spread.spread(lead)


class Estimated:
    """A mode's forecast shrunk toward the seasonal-persistence prior by a fitted `ShrinkageEstimate`."""

    def __init__(
        self,
        inner: ForecastErrorModel,
        estimate_of: Callable[[str], ShrinkageEstimate],
        trace_of: Callable[[str], Trace],
    ):
        self.inner = inner
        self.estimate_of = estimate_of
        self.trace_of = trace_of
        self.name = f"{inner.name}+est"

    def forecast_value(self, zone: str, row: int, actual: float, lead: timedelta) -> float:
        values = self.trace_of(zone).values
        prior = values[(row - 24 * prior_days(lead)) % len(values)]
        forecast = self.inner.forecast_value(zone, row, actual, lead)
        return self.estimate_of(zone).value(forecast, prior, lead)

    def spread(self, lead: timedelta) -> float:
        return self.inner.spread(lead)


def base_model(mode: str, seed: int, trace_of: Callable[[str], Trace]) -> ForecastErrorModel:
    """The model of a mode without the estimate. dacf draws are seeded by the run's seed."""
    if mode == "perfect":
        return PerfectForecast()
    dacf = load_error_model("dacf-empirical", ERROR_PROFILE, seed)
    if mode == "dacf":
        return dacf
    if mode == "dacf2x":
        return ScaledError(dacf, 2.0)  # type: ignore[arg-type]
    if mode == "persistence":
        return Persistence(trace_of, dacf)
    if mode == "real":
        return RealDayAhead(dacf)
    raise ValueError(f"unknown forecast {mode!r}; expected one of {', '.join(forecast_names())}")


def forecast_model(name: str, seed: int, trace_of: Callable[[str], Trace]) -> ForecastErrorModel:
    """`name` is a base mode, or a base mode + `+est` (its shrinkage estimate, fitted on tuning weeks)."""
    mode = name.removesuffix(ESTIMATE_SUFFIX)
    inner = base_model(mode, seed, trace_of)
    if mode == name:
        return inner
    from .estimates import fitted

    def estimate_of(zone: str) -> ShrinkageEstimate:
        return fitted(mode, zone, "dayahead" if zone in REAL_FORECAST_ZONES else "default")

    return Estimated(inner, estimate_of, trace_of)


def forecast_names() -> tuple[str, ...]:
    return BASE_MODES + tuple(m + ESTIMATE_SUFFIX for m in BASE_MODES if m != "perfect")

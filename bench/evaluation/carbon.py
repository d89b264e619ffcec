"""Grid data for the evaluation: the true trace of every zone, the forecasts the hub sees, true emissions.

- Real zones replay the bundled Electricity Maps 2023 traces (`Trace.bundled`).
- CN has no real trace: it is the carbon service's synthetic provider (`SyntheticProvider.value_at`, seeded by
  the run's seed), written out hour by hour for 2023 as a Trace so both kinds of zone go through the same
  replay code.
- Forecasts: `forecast_grid` of the carbon service's replay, issued at the simulated now, with either no
  error (`perfect`) or the bundled day-ahead DACF profile (`dacf`: `load_error_model("dacf-empirical", ...)`,
  seeded by the run's seed). The carbon service serves its synthetic zones without error; here CN gets the
  same error model as the real zones, so a forecast-error run has error everywhere. The other modes (real
  issued forecasts, stress modes, the shrinkage estimate) are in `forecasts.py`.
- The `dayahead` set-up's zones (CISO-2021, DE-2021) replay the actuals of the DACF day-ahead files.
- Emissions are always integrated over the true trace, whatever forecast the scheduler saw.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from services.carbon.forecast_error import ForecastErrorModel, PerfectForecast, load_error_model, spreads
from services.carbon.providers.synthetic import SyntheticProvider
from services.carbon.replay import Trace, forecast_grid
from services.carbon.zones import SYNTHETIC_RANGES
from services.common.clock import Clock
from services.common.energy import energy_wh
from services.hub.ports import CarbonPort, Forecast, IntensitySample

from .forecasts import REAL_FORECAST_ZONES, dayahead_trace, forecast_model
from .workload import ClusterSpec, JobSpec

ROOT = Path(__file__).resolve().parents[2]
ERROR_PROFILE = ROOT / "data" / "carbon" / "forecasts" / "dacf_error_profile.json"
REAL_ZONES = ("KR", "JP-TK", "US-CAL-CISO", "DE-LU", "GB")


@cache
def _real_trace(zone: str) -> Trace:
    return Trace.bundled(zone)


@cache
def _synthetic_trace(zone: str, seed: int) -> Trace:
    low, high = SYNTHETIC_RANGES[zone.split("-")[0]]
    provider = SyntheticProvider(zone, low, high, seed, clock=None)  # type: ignore[arg-type]
    first = datetime(2023, 1, 1, tzinfo=UTC)
    starts = [first + timedelta(hours=h) for h in range(365 * 24)]
    values = [provider.value_at(t) for t in starts]
    return Trace(
        path=Path(f"synthetic-{zone}"),
        zone=zone,
        emission_factor="direct",
        starts=starts,
        values=values,
        estimated=[True] * len(starts),
        resolution=timedelta(hours=1),
        data_source="synthetic",
    )


def true_trace(zone: str, seed: int) -> Trace:
    """The intensity a zone really had: the bundled trace, the actuals of a DACF day-ahead file
    (`forecasts.REAL_FORECAST_ZONES`), or the seeded synthetic series for CN."""
    if zone in REAL_FORECAST_ZONES:
        return dayahead_trace(zone)
    return _real_trace(zone) if zone in REAL_ZONES else _synthetic_trace(zone, seed)


def error_model(forecast: str, seed: int) -> ForecastErrorModel:
    if forecast == "perfect":
        return PerfectForecast()
    if forecast == "dacf":
        return load_error_model("dacf-empirical", ERROR_PROFILE, seed)
    # The other modes (stress, real issued forecasts, the shrinkage estimate): forecasts.py.
    return forecast_model(forecast, seed, lambda zone: true_trace(zone, seed))


class _Rows:
    """Trace rows over a span of wall time, for lookups by time: (row start, row index, value)."""

    def __init__(self, steps: list):
        self.ends = [s.end.timestamp() for s in steps]
        self.starts = [(s.row_start or s.start).timestamp() for s in steps]
        self.rows = [s.row for s in steps]
        self.values = [s.value for s in steps]
        self.first = steps[0].start.timestamp()
        self._i = 0

    def covers(self, start: float, end: float) -> bool:
        return self.first <= start and end <= self.ends[-1]

    def at(self, t: float) -> tuple[float, int, float]:
        i = self._i if self._i < len(self.ends) and (self._i == 0 or self.ends[self._i - 1] <= t) else 0
        i = bisect_right(self.ends, t, lo=i)
        self._i = i
        return self.starts[i], self.rows[i], self.values[i]


class TraceCarbon(CarbonPort):
    """The hub's CarbonPort over replayed traces, in-process: forecasts issued at the clock's now.

    Grids whose slots each lie inside one trace row (the evaluation's 15-minute slots on hourly traces) take
    a fast path: a slot's forecast is its row's value, passed through the error model when the row starts
    at or after the issue time, exactly as `forecast_grid` computes it (a test checks the two agree). Any
    other grid goes to `forecast_grid` itself.
    """

    def __init__(self, traces: dict[str, Trace], model: ForecastErrorModel, clock: Clock):
        self.traces = traces
        self.model = model
        self.clock = clock
        self._forecasts: dict[tuple[str, int, int], float] = {}
        self._rows: dict[str, _Rows] = {}

    def forecast_values(self, zone: str, start: datetime, slot_seconds: float, slots: int) -> list[float]:
        issued = self.clock.now()
        trace = self.traces[zone]
        step = trace.resolution.total_seconds()
        if step % slot_seconds or (start.timestamp() - trace.first.timestamp()) % slot_seconds:
            points = forecast_grid(
                trace,
                start,
                timedelta(seconds=slot_seconds),
                slots,
                issued_at=issued,
                error_model=self.model,
                zone=zone,
            )
            return [p.value for p in points]
        return self._aligned(zone, trace, start.timestamp(), slot_seconds, slots, issued.timestamp())

    def _aligned(
        self, zone: str, trace: Trace, start: float, slot: float, slots: int, issued: float
    ) -> list[float]:
        rows = self._hourly(zone, trace, start, start + slots * slot)
        perfect = isinstance(self.model, PerfectForecast)
        bucket_of = getattr(self.model, "bucket", None)
        values = []
        last: tuple[int, float] = (-1, 0.0)
        for i in range(slots):
            row_start, row, value = rows.at(start + i * slot)
            if perfect or row_start < issued:
                values.append(value)
                continue
            if row == last[0]:  # slots of one row share its forecast
                values.append(last[1])
                continue
            lead = timedelta(seconds=row_start - issued)
            if bucket_of is None:
                forecast = self.model.forecast_value(zone, row, value, lead)
            else:
                # The empirical model's forecast depends on the lead only through its bucket.
                key = (zone, row, id(bucket_of(lead)))
                forecast = self._forecasts.get(key)
                if forecast is None:
                    forecast = self._forecasts[key] = self.model.forecast_value(zone, row, value, lead)
            values.append(forecast)
            last = (row, forecast)
        return values

    def _hourly(self, zone: str, trace: Trace, start: float, end: float) -> _Rows:
        rows = self._rows.get(zone)
        if rows is None or not rows.covers(start, end):
            # A week's worth at a time: the trace's rows over wall time, as flat lists.
            span_end = max(end, start + 8 * 86400)
            steps = trace.steps(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(span_end, UTC))
            rows = self._rows[zone] = _Rows(steps)
        return rows

    def forecast_spread(self, start: datetime, slot_seconds: float, slots: int) -> list[float]:
        """As the carbon service's GetForecast: each slot's typical relative error at its lead time."""
        starts = [start + timedelta(seconds=i * slot_seconds) for i in range(slots)]
        return spreads(self.model.spread, starts, self.clock.now())

    async def forecast(self, zone: str, start: datetime, slot_seconds: float, slots: int) -> Forecast:
        values = self.forecast_values(zone, start, slot_seconds, slots)
        spread = self.forecast_spread(start, slot_seconds, slots)
        return Forecast(
            zone,
            start,
            slot_seconds,
            tuple(values),
            provider="replay",
            stale=False,
            age_seconds=0.0,
            relative_spread=tuple(spread),
        )

    async def history(self, zone: str, start: datetime, end: datetime) -> list[IntensitySample]:
        if end <= start:
            end = start + timedelta(seconds=1)
        return [
            IntensitySample(s.start, (s.end - s.start).total_seconds(), s.value)
            for s in self.traces[zone].steps(start, end)
        ]


def job_grams(job: JobSpec, cluster: ClusterSpec, trace: Trace, start: float, end: float) -> float:
    """gCO2 of `job` running on `cluster` over [start, end), on the true trace."""
    if end <= start:
        return 0.0
    wh = energy_wh(job.cpu_millis, job.memory_bytes, 0, end - start, cluster.power, cluster.cpu_millis)
    mean = trace.mean(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC))
    return wh / 1000.0 * mean

"""A better estimate than the raw forecast: the forecast shrunk toward a seasonal-persistence prior by lead.

For a point `lead` ahead, the prior is the last measured value at the same hour of day (the value one, two, ...
days earlier, the first that is already known when the forecast is issued). The estimate is

    estimate = alpha_b * forecast + beta_b * prior

with (alpha_b, beta_b) per lead bucket b fitted by least squares on training samples (forecast, prior, actual):
the linear combination of the two with the least expected squared error. Where the forecast errs more (longer
leads), the fit leans on the prior more; alpha + beta != 1 also absorbs a forecast's systematic bias. A
perfect forecast fits alpha = 1, beta = 0, so the estimate never hides a good forecast.

The replay provider fits one per zone at start on the first `TRAINING_DAYS` of its trace, through its own
error model (`fit_on_trace`), and GetForecast serves it beside the raw forecast (`estimate`). Offline
evaluations fit it on tuning weeks only (bench/evaluation/estimates.py). No I/O, no clock, no grpc.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.carbon.forecast_error import ForecastErrorModel, PerfectForecast
from services.carbon.replay import Trace

DAY_HOURS = 24
BUCKET_HOURS = 6.0
MAX_LEAD_HOURS = 72.0
DAY = timedelta(days=1)
# The replay provider's training span: the first eight weeks of its trace.
TRAINING_DAYS = 56
ISSUE_EVERY_HOURS = 3


def prior_days(lead: timedelta) -> int:
    """How many whole days back the seasonal prior of a point `lead` ahead lies: the first day whose value at
    that hour was measured when the forecast was issued (a point starting at the issue time is not)."""
    hours = lead.total_seconds() / 3600
    return max(1, math.floor(hours / DAY_HOURS) + 1)


@dataclass(frozen=True)
class Sample:
    lead_hours: float
    forecast: float
    prior: float
    actual: float


@dataclass(frozen=True)
class ShrinkageEstimate:
    """(alpha, beta) per lead bucket [i * bucket_hours, (i + 1) * bucket_hours); the last bucket covers all
    longer leads."""

    bucket_hours: float
    alphas: tuple[float, ...]
    betas: tuple[float, ...]

    def bucket(self, lead: timedelta) -> int:
        hours = max(0.0, lead.total_seconds() / 3600)
        return min(int(hours // self.bucket_hours), len(self.alphas) - 1)

    def value(self, forecast: float, prior: float, lead: timedelta) -> float:
        b = self.bucket(lead)
        return max(0.0, self.alphas[b] * forecast + self.betas[b] * prior)

    @classmethod
    def identity(
        cls, bucket_hours: float = BUCKET_HOURS, max_hours: float = MAX_LEAD_HOURS
    ) -> ShrinkageEstimate:
        n = math.ceil(max_hours / bucket_hours)
        return cls(bucket_hours, (1.0,) * n, (0.0,) * n)

    @classmethod
    def fit(
        cls, samples: Iterable[Sample], bucket_hours: float = BUCKET_HOURS, max_hours: float = MAX_LEAD_HOURS
    ) -> ShrinkageEstimate:
        """Least squares of actual on (forecast, prior), no intercept, per lead bucket. A bucket without
        enough samples, or with forecast and prior collinear, keeps the raw forecast (alpha 1, beta 0)."""
        n = math.ceil(max_hours / bucket_hours)
        sums = [[0.0] * 5 for _ in range(n)]  # ff, fp, pp, fa, pa
        counts = [0] * n
        for s in samples:
            b = min(int(max(0.0, s.lead_hours) // bucket_hours), n - 1)
            acc = sums[b]
            acc[0] += s.forecast * s.forecast
            acc[1] += s.forecast * s.prior
            acc[2] += s.prior * s.prior
            acc[3] += s.forecast * s.actual
            acc[4] += s.prior * s.actual
            counts[b] += 1
        alphas, betas = [], []
        for (ff, fp, pp, fa, pa), count in zip(sums, counts, strict=True):
            det = ff * pp - fp * fp
            if count < 10 or det <= 1e-9 * ff * pp:
                alphas.append(1.0)
                betas.append(0.0)
                continue
            alphas.append((fa * pp - pa * fp) / det)
            betas.append((pa * ff - fa * fp) / det)
        return cls(bucket_hours, tuple(alphas), tuple(betas))


def rmse(pairs: Iterable[tuple[float, float]]) -> float:
    """Root mean squared difference of (estimate, actual) pairs."""
    total, count = 0.0, 0
    for estimate, actual in pairs:
        total += (estimate - actual) ** 2
        count += 1
    return math.sqrt(total / count) if count else 0.0


def trace_samples(
    trace: Trace,
    zone: str,
    model: ForecastErrorModel,
    first_row: int,
    days: int,
    excluded: Sequence[tuple[datetime, datetime]] = (),
) -> list[Sample]:
    """(lead, forecast, prior, actual) from an hourly trace: forecasts issued every `ISSUE_EVERY_HOURS`
    hours of `days` days from `first_row`, for each hourly lead below MAX_LEAD_HOURS, by `model`. Samples
    whose target hour falls in an `excluded` span are left out."""
    values, starts = trace.values, trace.starts
    out = []
    for issue in range(first_row, first_row + days * DAY_HOURS, ISSUE_EVERY_HOURS):
        for lead_h in range(int(MAX_LEAD_HOURS)):
            row = issue + lead_h
            lead = timedelta(hours=lead_h)
            back = row - DAY_HOURS * prior_days(lead)
            if row >= len(values) or back < 0:
                continue
            if any(lo <= starts[row] < hi for lo, hi in excluded):
                continue
            actual = values[row]
            out.append(Sample(lead_h, model.forecast_value(zone, row, actual, lead), values[back], actual))
    return out


def fit_on_trace(
    trace: Trace, zone: str, model: ForecastErrorModel, days: int = TRAINING_DAYS
) -> ShrinkageEstimate:
    """The estimate for `model`'s forecasts of `trace`, fitted on its first `days` days (identity for a perfect
    forecast, which needs no shrinking)."""
    if isinstance(model, PerfectForecast) or trace.resolution != timedelta(hours=1):
        return ShrinkageEstimate.identity()
    return ShrinkageEstimate.fit(trace_samples(trace, zone, model, 0, days))


def estimates(
    estimate: ShrinkageEstimate,
    times: Sequence[datetime],
    values: Sequence[float],
    slot: timedelta,
    issued: datetime,
    prior_mean: Callable[[datetime, datetime], float],
) -> list[float]:
    """The estimate of each forecast point (`values` at `times`, each `slot` long): a point begun by `issued`
    is measured and stays as it is; any other is shrunk toward the measured mean over the same slot whole
    days earlier (`prior_mean(start, end)`)."""
    out = []
    for time, value in zip(times, values, strict=True):
        if time < issued:
            out.append(value)
            continue
        lead = time - issued
        back = DAY * prior_days(lead)
        out.append(estimate.value(value, prior_mean(time - back, time - back + slot), lead))
    return out

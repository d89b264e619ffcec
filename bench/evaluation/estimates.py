"""Fitting the shrinkage estimate (`services.carbon.estimate`) for the evaluation, on tuning weeks only.

The seeds that tune are kept apart from the seeds that are reported: `TUNING_SEEDS` draw the training weeks;
every sample whose target hour falls in a reported seed's run span (its week start to `REPORTED_SPAN` later)
is dropped, so the reported weeks never inform the fit. `docs/evaluation.md` names both sets.

Samples: in each training week, forecasts issued at every `ISSUE_EVERY_HOURS`-th hour for each hourly lead
0..71 h, exactly as the hub's carbon port would see them (the mode's model, seeded by the tuning seed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import cache

from services.carbon.estimate import Sample, ShrinkageEstimate, prior_days, rmse
from services.carbon.forecast_error import ForecastErrorModel
from services.carbon.replay import Trace

TUNING_SEEDS = tuple(range(10, 18))
REPORTED_SEEDS = (0, 1, 2, 3, 4)
REPORTED_SPAN = timedelta(days=12)
ISSUE_EVERY_HOURS = 3
LEADS = range(72)


def samples(
    trace: Trace,
    zone: str,
    model: ForecastErrorModel,
    week: datetime,
    excluded: Iterable[tuple[datetime, datetime]] = (),
    days: int = 7,
) -> list[Sample]:
    """(lead, forecast, prior, actual) over one week of `trace`, issues at whole hours."""
    excluded = list(excluded)
    values = trace.values
    first = trace.starts.index(week) if week in trace.starts else None
    if first is None:
        raise ValueError(f"{zone}: week start {week} is not a row of its trace")
    out = []
    for issue in range(first, first + days * 24, ISSUE_EVERY_HOURS):
        for lead_h in LEADS:
            row = issue + lead_h
            if row >= len(values) or row - 24 * 3 < 0:
                continue
            when = trace.starts[row]
            if any(lo <= when < hi for lo, hi in excluded):
                continue
            lead = timedelta(hours=lead_h)
            actual = values[row]
            forecast = model.forecast_value(zone, row, actual, lead)
            prior = values[row - 24 * prior_days(lead)]
            out.append(Sample(lead_h, forecast, prior, actual))
    return out


def fit_zone(
    zone: str,
    trace_of: Callable[[str, int], Trace],
    model_of: Callable[[int], ForecastErrorModel],
    week_of: Callable[[int], datetime],
    tuning_seeds: Iterable[int] = TUNING_SEEDS,
    reported_seeds: Iterable[int] = REPORTED_SEEDS,
) -> tuple[ShrinkageEstimate, list[Sample]]:
    excluded = [(week_of(s), week_of(s) + REPORTED_SPAN) for s in reported_seeds]
    train: list[Sample] = []
    for seed in tuning_seeds:
        train += samples(trace_of(zone, seed), zone, model_of(seed), week_of(seed), excluded)
    return ShrinkageEstimate.fit(train), train


@cache
def fitted(mode: str, zone: str, setup: str) -> ShrinkageEstimate:
    """The estimate for forecast `mode` in `zone` (week draws of `setup`), fitted on the tuning seeds."""
    from .carbon import true_trace
    from .forecasts import base_model
    from .workload import week_start

    estimate, _ = fit_zone(
        zone,
        true_trace,
        lambda seed: base_model(mode, seed, lambda z: true_trace(z, seed)),
        lambda seed: week_start(seed, setup),
    )
    return estimate


def held_out_error(estimate: ShrinkageEstimate, held_out: list[Sample]) -> tuple[float, float]:
    """(RMSE of the raw forecast, RMSE of the estimate) over held-out samples, gCO2/kWh."""
    raw = rmse((s.forecast, s.actual) for s in held_out)
    shrunk = rmse(
        (estimate.value(s.forecast, s.prior, timedelta(hours=s.lead_hours)), s.actual) for s in held_out
    )
    return raw, shrunk

"""Fitting the shrinkage estimate (`services.carbon.estimate`) for the evaluation, on tuning weeks only.

The seeds that tune are kept apart from the seeds that are reported: `TUNING_SEEDS` draw the training weeks;
every sample whose target hour falls in a reported seed's run span (its week start to `REPORTED_SPAN` later)
is dropped, so the reported weeks never inform the fit. `docs/evaluation.md` names both sets.

Samples (`services.carbon.estimate.trace_samples`): in each training week, forecasts issued every 3 hours for
each hourly lead 0..71 h, as the hub's carbon port would see them (the mode's model, seeded by the tuning seed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import cache

from services.carbon.estimate import Sample, ShrinkageEstimate, rmse, trace_samples
from services.carbon.forecast_error import ForecastErrorModel
from services.carbon.replay import Trace

TUNING_SEEDS = tuple(range(10, 18))
REPORTED_SEEDS = (0, 1, 2, 3, 4)
REPORTED_SPAN = timedelta(days=12)
TUNING_NOTE = (
    f"Tuning seeds (the weeks the `+est` forecasts' shrinkage estimate is fitted on): "
    f"{TUNING_SEEDS[0]}-{TUNING_SEEDS[-1]}; reported seeds are kept apart ({', '.join(map(str, REPORTED_SEEDS))} "
    "are never fitted on: tuning samples in their weeks are dropped)."
)


def samples(
    trace: Trace,
    zone: str,
    model: ForecastErrorModel,
    week: datetime,
    excluded: Iterable[tuple[datetime, datetime]] = (),
    days: int = 7,
) -> list[Sample]:
    """(lead, forecast, prior, actual) over one week of `trace`, issues every 3 hours from the week start."""
    if week not in trace.starts:
        raise ValueError(f"{zone}: week start {week} is not a row of its trace")
    return trace_samples(trace, zone, model, trace.starts.index(week), days, list(excluded))


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

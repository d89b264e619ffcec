"""Keeping options open (services/hub/scheduling/hedging.py): far, uncertain slots valued at their expected
intensity given the forecast; exact slots, jobs and deadlines untouched."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import pytest

from caspian.v1 import common_pb2
from services.common.timeconv import to_timestamp
from services.hub.scheduling.hedging import hedged_forecasts, hedged_series
from services.optimizer.problem import Cluster, Forecast, Grid, Job, Options, Problem, Resources
from services.optimizer.solve import solve
from tests.hub.conftest import START

HOUR = 3600
Phase = common_pb2.AppWrapperPhase

# A day of a zone: clean at noon, dirty at night, one point per hour.
DAY = [
    500,
    480,
    470,
    460,
    450,
    430,
    400,
    360,
    320,
    300,
    290,
    280,
    280,
    290,
    310,
    350,
    400,
    450,
    480,
    500,
    510,
    520,
]
# Spread by lead, as the dacf profile's: 0 for the slot begun, then growing.
SPREAD = [0.0] + [min(0.167, 0.088 + 0.01 * i) for i in range(1, len(DAY))]


def test_off_exact_or_flat_leaves_the_forecast_as_it_is():
    assert hedged_series(DAY, SPREAD, 0.0) == DAY
    assert hedged_series(DAY, [0.0] * len(DAY), 2.0) == DAY  # exact everywhere (perfect forecasts)
    assert hedged_series(DAY, [], 2.0) == DAY  # no spread served
    assert hedged_series(DAY, SPREAD[:-1], 2.0) == DAY  # malformed: not one per slot
    assert hedged_series([300.0] * 5, [0.1] * 5, 2.0) == [300.0] * 5  # flat: nothing to shrink


def test_each_slot_moves_toward_the_mean_and_more_the_noisier_it_is():
    mean = sum(DAY) / len(DAY)
    hedged = hedged_series(DAY, SPREAD, 1.0)
    assert hedged[0] == DAY[0]  # begun: its value is known
    for value, raw in zip(hedged[1:], DAY[1:], strict=True):
        assert min(raw, mean) - 1e-9 <= value <= max(raw, mean) + 1e-9  # between the forecast and the mean
    # Two slots with the same forecast: the one further ahead (larger spread) is valued nearer the mean.
    near, far = hedged_series([300.0, 300.0, 500.0, 500.0], [0.05, 0.3, 0.05, 0.05], 1.0)[:2]
    assert abs(far - 387.5) < abs(near - 387.5)
    # A larger k shrinks more; the order of slots with the same spread is kept.
    stronger = hedged_series(DAY, SPREAD, 3.0)
    assert sum(abs(v - mean) for v in stronger) < sum(abs(v - mean) for v in hedged)
    same = [0.1] * len(DAY)
    ranked = hedged_series(DAY, same, 2.0)
    assert sorted(range(len(DAY)), key=lambda i: (DAY[i], i)) == sorted(
        range(len(DAY)), key=lambda i: (ranked[i], i)
    )


def test_deterministic_and_per_zone():
    series = {"KR": list(map(float, DAY)), "JP-TK": [float(v) + 50 for v in reversed(DAY)]}
    spread = {"KR": SPREAD}
    once = hedged_forecasts(series, spread, 1.5)
    assert once == hedged_forecasts(series, spread, 1.5)
    assert once["JP-TK"] == series["JP-TK"]  # no spread for that zone: its forecast as it is
    assert once["KR"] == hedged_series(DAY, SPREAD, 1.5)


def _problem(values: list[float], spread: tuple[float, ...], deadline_slots: int) -> Problem:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    slot = timedelta(minutes=15)
    job = Job(
        id="j",
        resources=Resources(cpu_millis=1000),
        runtime=timedelta(hours=1),
        earliest_start=start,
        deadline=start + deadline_slots * slot,
        home_cluster="a",
    )
    cluster = Cluster(name="a", zone="Z", capacity=Resources(cpu_millis=4000))
    return Problem(
        jobs=(job,),
        clusters=(cluster,),
        grid=Grid(start, slot, len(values)),
        forecasts=(Forecast("a", tuple(values), spread),),
    )


def test_a_far_uncertain_dip_no_longer_draws_the_job_and_no_deadline_moves():
    # Now: 300 for the first hour; 10 h ahead a dip to 270 that the forecast may miss by 17%.
    values = [300.0] * 4 + [420.0] * 36 + [270.0] * 4 + [420.0] * 4
    spread = tuple([0.0] + [0.088] * 23 + [0.167] * 24)
    raw = solve(_problem(values, spread, len(values)), Options())
    [placed] = raw.placements
    assert placed.start_slot == 40  # the raw forecast defers 10 hours for a 10% dip
    hedged = hedged_series(values, spread, 1.0)
    problem = _problem(hedged, spread, len(values))
    [kept] = solve(problem, Options()).placements
    assert kept.start_slot == 0  # valued at what it can be expected to deliver, the dip is not worth the wait
    # Only slot values changed: the job, its window and its deadline are the same.
    assert problem.jobs == _problem(values, spread, len(values)).jobs
    # Whatever the weights, a plan on hedged values still ends by the deadline.
    for k in (0.5, 1.0, 4.0):
        tight = _problem(hedged_series(values, spread, k), spread, 8)
        [job] = solve(tight, Options()).placements
        assert job.placed and job.start_slot + 4 <= 8


async def test_the_hub_sends_hedged_values_only_when_asked(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    # KR: a daily curve (clean at noon UTC) with a spread after the first slot; JP-TK: no spread.
    fakes.carbon.profile = {"KR": lambda t: 400.0 + 100.0 * math.cos(2 * math.pi * (t / 86400.0 - 0.5))}
    fakes.carbon.spread = {"KR": lambda i: 0.0 if i == 0 else 0.15}
    await harness.submit(
        id="job", earliest_start=to_timestamp(START + timedelta(hours=2)), deadline_in=12 * HOUR
    )
    assert harness.hub.scheduler.config.hedge_far_slots == 0.0  # the default: the forecast as it is
    await harness.cycle()
    raw = {f.cluster: list(f.gco2_per_kwh) for f in fakes.optimizer.requests[-1].forecasts}
    config = harness.hub.scheduler.config
    harness.hub.scheduler.config = dataclasses.replace(config, hedge_far_slots=1.0)
    await harness.cycle()
    request = fakes.optimizer.requests[-1]
    hedged = {f.cluster: list(f.gco2_per_kwh) for f in request.forecasts}
    spread = [0.0] + [0.15] * (len(raw["carbon-kr"]) - 1)
    assert hedged["carbon-kr"] == pytest.approx(hedged_series(raw["carbon-kr"], spread, 1.0))
    assert hedged["carbon-kr"] != raw["carbon-kr"]
    assert hedged["carbon-jp"] == raw["carbon-jp"]  # no spread served: planned as exact
    # The raw spread still reaches the optimizer, and the job's deadline is the one submitted.
    sent_spread = {f.cluster: list(f.relative_spread) for f in request.forecasts}
    assert sent_spread["carbon-kr"] == pytest.approx(spread)
    assert (await harness.get("job")).deadline == request.jobs[0].deadline

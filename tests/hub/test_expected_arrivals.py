"""Expected arrivals (services/hub/scheduling/expected_arrivals.py): the demand model from the hub's own
history, the displacement price of clean slots, and that no job is ever made late by it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from services.hub.scheduling.expected_arrivals import (
    DAY,
    HOUR,
    Arrival,
    ArrivalHistory,
    DemandModel,
    arrival_prices,
)
from services.optimizer.problem import Cluster, Forecast, Grid, Job, Options, Problem, Resources
from services.optimizer.solve import solve

T0 = 1_700_006_400.0  # a UTC midnight
SLOT = 900


def _arrival(at: float, cpu: int = 1000, runtime: float = 3600.0, window: float = 4 * 3600.0) -> Arrival:
    return Arrival(at_s=at, cpu_millis=cpu, runtime_s=runtime, window_s=window)


def test_no_forecast_before_six_hours_then_the_overall_rate():
    history = ArrivalHistory()
    history.observe(T0, [])
    history.observe(T0 + 5 * HOUR, [(f"j{i}", _arrival(T0 + i * 600)) for i in range(30)])
    assert history.model(T0 + 5 * HOUR) is None
    history.observe(T0 + 10 * HOUR, [(f"j{i}", _arrival(T0 + i * 600)) for i in range(60)])
    model = history.model(T0 + 10 * HOUR)
    assert model is not None
    # 60 arrivals in 10 hours, the same every hour of the day before two days are seen.
    assert model.rate_by_hour == tuple([60 / (10 * HOUR)] * 24)
    assert abs(model.expected_count(T0 + 10 * HOUR, T0 + 12 * HOUR) - 12) < 1e-9
    assert abs(model.expected_work(T0, T0 + HOUR) - 6 * 1000 * 3600.0) < 1e-6


def test_each_id_counts_once_and_a_week_is_kept():
    history = ArrivalHistory()
    history.observe(T0, [("a", _arrival(T0))])
    history.observe(T0 + HOUR, [("a", _arrival(T0)), ("b", _arrival(T0 + HOUR))])
    assert len(history.arrivals()) == 2
    history.observe(T0 + 8 * DAY, [("c", _arrival(T0 + 8 * DAY))])
    assert [a.at_s for a in history.arrivals()] == [T0 + 8 * DAY]


def test_the_hour_of_day_profile_after_two_days():
    # Three days: four arrivals each day between 09:00 and 10:00 UTC, one at 21:00.
    seen = [_arrival(T0 + d * DAY + 9 * HOUR + i * 600) for d in range(3) for i in range(4)]
    seen += [_arrival(T0 + d * DAY + 21 * HOUR) for d in range(3)]
    model = DemandModel.fit(sorted(seen, key=lambda a: a.at_s), T0, T0 + 3 * DAY)
    assert model is not None
    assert model.rate_by_hour[9] > 2 * model.rate_by_hour[21] > 2 * model.rate_by_hour[3]
    # Shrunk toward the overall rate: an hour with no arrivals is not forecast at zero.
    assert model.rate_by_hour[3] > 0
    # The count over a day is what was seen per day (5): shrinking keeps the total.
    assert abs(model.expected_count(T0 + 3 * DAY, T0 + 4 * DAY) - 5) < 1e-9


def test_the_mix_sorts_work_by_window():
    seen = [_arrival(T0 + i * 60, window=(i % 4 + 1) * HOUR, cpu=1000 * (i % 4 + 1)) for i in range(40)]
    model = DemandModel.fit(seen, T0, T0 + 7 * HOUR)
    assert model is not None
    assert [c.window_s for c in model.mix] == [HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR]
    assert [c.cpu_slot_seconds for c in model.mix] == [1000 * 3600.0 * k for k in (1, 2, 3, 4)]
    assert abs(sum(c.share for c in model.mix) - 1) < 1e-9


def _model(per_hour: float, window_h: float, cpu: int = 1000, runtime_h: float = 1.0) -> DemandModel:
    seen = [_arrival(T0 + i * 3600 / per_hour, cpu, runtime_h * HOUR, window_h * HOUR) for i in range(48)]
    model = DemandModel.fit(seen, T0, T0 + 48 * HOUR / per_hour)
    assert model is not None
    return model


# 8 hours of 15-minute slots: a clean hour from slot 2, dirty otherwise.
VALUES = {"a": [400.0] * 2 + [100.0] * 4 + [400.0] * 26}


def test_a_clean_slot_that_future_work_fills_is_priced_at_its_water_level():
    # Eight 1-CPU-hour jobs an hour, each free to run in the next 4 hours; the cluster has 2 CPUs: the
    # first slot's arrivals fill the valley and the next ones, finding no room in it, pay 400.
    model = _model(per_hour=8, window_h=4)
    free = {"a": [2000.0] * 32}
    priced = arrival_prices(VALUES, free, model, T0, SLOT, 1.0)
    assert priced["a"][2:6] == [400.0] * 4  # the valley is worth the dirty slot it spares future work
    assert priced["a"][:2] == VALUES["a"][:2]  # dirty slots keep their value
    half = arrival_prices(VALUES, free, model, T0, SLOT, 0.5)
    assert half["a"][2:6] == [250.0] * 4
    assert arrival_prices(VALUES, free, model, T0, SLOT, 0.0) == VALUES


def test_no_price_when_there_is_room_for_everyone():
    # One small job an hour on 64 CPUs: the valley never fills, so it is worth no more than it shows.
    model = _model(per_hour=1, window_h=4, cpu=100)
    priced = arrival_prices(VALUES, {"a": [64000.0] * 32}, model, T0, SLOT, 1.0)
    assert priced == VALUES


def test_reserved_capacity_counts_and_the_prices_are_deterministic():
    model = _model(per_hour=1, window_h=4, cpu=500)
    roomy = arrival_prices(VALUES, {"a": [8000.0] * 32}, model, T0, SLOT, 1.0)
    assert roomy == VALUES
    # The valley already held by running work: what arrives is priced out of what is left of it.
    held = [8000.0] * 2 + [100.0] * 4 + [8000.0] * 26
    once = arrival_prices(VALUES, {"a": held}, model, T0, SLOT, 1.0)
    assert once["a"][2:6] == [400.0] * 4
    assert once == arrival_prices(VALUES, {"a": held}, model, T0, SLOT, 1.0)


def _problem(values: list[float], deadline_slots: int, earliest_slot: int = 0) -> Problem:
    start = datetime.fromtimestamp(T0, UTC)
    slot = timedelta(seconds=SLOT)
    job = Job(
        id="j",
        resources=Resources(cpu_millis=1000),
        runtime=timedelta(hours=1),
        earliest_start=start + earliest_slot * slot,
        deadline=start + deadline_slots * slot,
        home_cluster="a",
    )
    cluster = Cluster(name="a", zone="Z", capacity=Resources(cpu_millis=2000))
    return Problem(
        jobs=(job,),
        clusters=(cluster,),
        grid=Grid(start, slot, len(values)),
        forecasts=(Forecast("a", tuple(values)),),
    )


def test_work_in_hand_is_never_made_late_for_work_not_arrived():
    model = _model(per_hour=8, window_h=4)
    priced = arrival_prices(VALUES, {"a": [2000.0] * 32}, model, T0, SLOT, 1.0)["a"]
    # A job free to wait leaves the priced valley to the expected arrivals ...
    [roomy] = solve(_problem(priced, 32), Options()).placements
    assert roomy.placed and roomy.start_slot != 2
    # ... and without the price it would have taken it.
    [raw] = solve(_problem(VALUES["a"], 32), Options()).placements
    assert raw.start_slot == 2
    # A job that needs the valley to meet its deadline still gets it: the price changes values only,
    # never capacity, windows or deadlines, so every plan possible without it is possible with it.
    for beta in (0.25, 0.5, 1.0):
        values = arrival_prices(VALUES, {"a": [2000.0] * 32}, model, T0, SLOT, beta)["a"]
        tight = _problem(values, deadline_slots=6, earliest_slot=2)
        [job] = solve(tight, Options()).placements
        assert job.placed and job.start_slot == 2
        assert dataclasses.replace(tight, forecasts=()) == dataclasses.replace(
            _problem(VALUES["a"], 6, 2), forecasts=()
        )


async def test_the_hub_prices_for_expected_arrivals_only_when_asked(harness):
    fakes = harness.fakes
    await harness.register_clusters(cpu_millis=2000)
    # KR clean, the other zones dirty: 2 clean CPUs for 8 CPU-hours of work arriving every hour.
    fakes.carbon.levels = {"KR": 100.0, "JP-TK": 600.0, "CN": 600.0}
    scheduler = harness.hub.scheduler
    assert scheduler.config.expected_arrivals == 0.0  # the default: no price
    scheduler.config = dataclasses.replace(scheduler.config, expected_arrivals=1.0)
    # Eight hours of history: eight 1-CPU, 1-hour jobs an hour, each with 2 hours to its deadline.
    for hour in range(8):
        for i in range(8):
            await harness.submit(id=f"h{hour}-{i}", runtime=3600, deadline_in=2 * 3600)
            harness.clock.advance(450)
        await harness.cycle()
    model = scheduler.arrivals.model(harness.clock.now().timestamp())
    assert model is not None and abs(model.rate_by_hour[0] * 3600 - 8) < 1.1
    request = fakes.optimizer.requests[-1]
    priced = {f.cluster: list(f.gco2_per_kwh) for f in request.forecasts}
    scheduler.config = dataclasses.replace(scheduler.config, expected_arrivals=0.0)
    await harness.cycle()
    raw = {f.cluster: list(f.gco2_per_kwh) for f in fakes.optimizer.requests[-1].forecasts}
    assert raw["carbon-kr"][0] == 100.0
    assert max(priced["carbon-kr"]) == 600.0  # the clean cluster is worth the dirty one it spares arrivals
    # Only slots cleaner than the work's level are raised, and never above the dirtiest value.
    assert all(r <= p <= 600.0 for r, p in zip(raw["carbon-kr"], priced["carbon-kr"], strict=True))
    # Deadlines are the ones submitted.
    for job in request.jobs:
        assert job.deadline == (await harness.get(job.id)).deadline

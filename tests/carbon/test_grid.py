"""Forecast grids: exactly the requested slots, each the time-weighted mean over its slot."""

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caspian.v1 import carbon_pb2, common_pb2
from services.carbon.model import Grid, Step, fill_gaps, floor_time, mean_grid
from services.carbon.replay import Trace, forecast_grid
from services.common.timeconv import from_timestamp, to_timestamp
from tests.carbon.support import TRACES, csv_value

KR = Trace.load(TRACES / "KR_2023_hourly.csv")


def expected_mean(zone: str, start: datetime, end: datetime) -> float:
    """Minute by minute from the CSV: independent of the resampler."""
    total, t, minutes = 0.0, start, 0
    while t < end:
        total += csv_value(zone, t.replace(minute=0, second=0))
        t += timedelta(minutes=1)
        minutes += 1
    return total / minutes


async def forecast(run, zone, start, slot_seconds, slots):
    request = carbon_pb2.GetForecastRequest(zone=zone, slot=Duration(seconds=slot_seconds), slots=slots)
    if start is not None:
        request.start.CopyFrom(to_timestamp(start))
    return await run.stub.GetForecast(request, timeout=5)


@pytest.mark.parametrize(
    "start, slot_minutes, slots",
    [
        (datetime(2023, 3, 5, 10, 15, tzinfo=UTC), 90, 8),  # a non-hour slot, off the hour
        (datetime(2023, 3, 5, 10, 5, tzinfo=UTC), 15, 12),  # sub-hour slots straddling hour edges
        (datetime(2023, 3, 5, 13, 0, tzinfo=UTC), 7, 30),  # slots that never line up with hours
        (datetime(2023, 3, 4, 23, 30, tzinfo=UTC), 240, 6),  # across midnight
    ],
)
async def test_grid_points_are_slot_means(start_carbon, start, slot_minutes, slots):
    run = await start_carbon()
    response = await forecast(run, "KR", start, slot_minutes * 60, slots)
    assert len(response.points) == slots
    slot = timedelta(minutes=slot_minutes)
    for i, point in enumerate(response.points):
        a = start + i * slot
        assert from_timestamp(point.time) == a
        assert point.duration.ToTimedelta() == slot
        assert point.aggregation == common_pb2.AGGREGATION_MEAN
        assert point.gco2_per_kwh == pytest.approx(expected_mean("KR", a, a + slot), rel=1e-9)


async def test_unset_start_is_the_current_slot_boundary(start_carbon):
    run = await start_carbon()  # now 2023-03-05T14:30Z
    response = await forecast(run, "KR", None, 90 * 60, 3)
    now = datetime(2023, 3, 5, 14, 30, tzinfo=UTC)
    epoch_seconds = int(now.timestamp())
    boundary = datetime.fromtimestamp(epoch_seconds - epoch_seconds % 5400, UTC)
    assert from_timestamp(response.points[0].time) == boundary == datetime(2023, 3, 5, 13, 30, tzinfo=UTC)
    hourly = await forecast(run, "KR", None, 3600, 1)
    assert from_timestamp(hourly.points[0].time) == datetime(2023, 3, 5, 14, tzinfo=UTC)
    assert hourly.points[0].gco2_per_kwh == csv_value("KR", datetime(2023, 3, 5, 14, tzinfo=UTC))


async def test_sub_second_start_is_kept(start_carbon):
    run = await start_carbon()
    start = datetime(2023, 3, 5, 15, 0, 0, 250000, tzinfo=UTC)
    response = await forecast(run, "JP-TK", start, 1800, 2)
    assert from_timestamp(response.points[0].time) == start
    assert response.points[1].gco2_per_kwh == pytest.approx(
        csv_value("JP-TK", datetime(2023, 3, 5, 15, tzinfo=UTC)) * (1 - 0.25 / 1800)
        + csv_value("JP-TK", datetime(2023, 3, 5, 16, tzinfo=UTC)) * (0.25 / 1800)
    )


async def test_synthetic_grid_is_labelled_and_in_range(start_carbon):
    run = await start_carbon()
    response = await forecast(run, "CN", datetime(2023, 3, 5, 14, 10, tzinfo=UTC), 20 * 60, 72)
    assert len(response.points) == 72
    assert all(500 <= p.gco2_per_kwh <= 750 for p in response.points)
    assert response.source.synthetic and response.source.kind == common_pb2.SOURCE_KIND_SYNTHETIC
    values = [p.gco2_per_kwh for p in response.points]
    assert max(values) - min(values) > 50  # a diurnal shape, not a constant


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offset_minutes=st.integers(0, 60 * 24 * 360),
    slot_minutes=st.integers(1, 600),
    slots=st.integers(1, 40),
)
def test_in_process_grid_conserves_the_integral(offset_minutes, slot_minutes, slots):
    start = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(minutes=offset_minutes)
    slot = timedelta(minutes=slot_minutes)
    points = forecast_grid(KR, start, slot, slots)
    assert len(points) == slots
    end = start + slot * slots
    # Sum of slot means x slot length = integral over the whole span, computed hour by hour.
    integral, t = 0.0, start
    while t < end:
        nxt = min(end, floor_time(t, timedelta(hours=1)) + timedelta(hours=1))
        integral += KR.value_at(t) * (nxt - t).total_seconds()
        t = nxt
    assert sum(p.value for p in points) * slot.total_seconds() == pytest.approx(integral, rel=1e-9)
    # Splitting each slot in two keeps its mean.
    if slot_minutes % 2 == 0:
        halves = forecast_grid(KR, start, slot / 2, slots * 2)
        for i, p in enumerate(points):
            assert p.value == pytest.approx((halves[2 * i].value + halves[2 * i + 1].value) / 2, rel=1e-9)


def test_mean_grid_weights_by_overlap():
    t0 = datetime(2023, 1, 1, tzinfo=UTC)
    steps = [
        Step(t0, t0 + timedelta(minutes=10), 100.0),
        Step(t0 + timedelta(minutes=10), t0 + timedelta(minutes=40), 400.0, estimated=True),
        Step(t0 + timedelta(minutes=40), t0 + timedelta(hours=1), 10.0),
    ]
    points = mean_grid("Z", steps, Grid(t0, timedelta(minutes=30), 2))
    assert points[0].value == pytest.approx((100 * 10 + 400 * 20) / 30)
    assert points[1].value == pytest.approx((400 * 10 + 10 * 20) / 30)
    assert points[0].estimated and points[1].estimated
    single = mean_grid("Z", steps, Grid(t0 + timedelta(minutes=12), timedelta(minutes=7), 1))
    assert single[0].value == 400.0 and single[0].estimated


def test_fill_gaps_uses_the_value_a_day_earlier():
    t0 = datetime(2023, 1, 1, tzinfo=UTC)
    steps = [Step(t0 + timedelta(hours=h), t0 + timedelta(hours=h + 1), float(h)) for h in range(24)]
    filled = fill_gaps(steps, t0 + timedelta(hours=20), t0 + timedelta(hours=30))
    assert [s.value for s in filled] == [20, 21, 22, 23, 0, 1, 2, 3, 4, 5]
    assert [s.estimated for s in filled] == [False] * 4 + [True] * 6
    assert all(s.forecast for s in filled[4:])


async def test_a_year_long_grid_is_served(start_carbon):
    run = await start_carbon()
    start = datetime(2023, 1, 1, tzinfo=UTC)
    response = await forecast(run, "KR", start, 4 * 3600, 2016)  # 336 days: computed off the event loop
    assert len(response.points) == 2016
    for i in (0, 1000, 2015):
        a = start + timedelta(hours=4 * i)
        assert response.points[i].gco2_per_kwh == pytest.approx(
            expected_mean("KR", a, a + timedelta(hours=4))
        )
